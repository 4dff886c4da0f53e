"""Imports from WordPress and Disqus sample exports, and our own JSON export and import."""
import json
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from moderation import importers, sanitize, search
from moderation.extensions import db
from moderation.models import Article, AuditEvent, Comment, Site
from moderation.rules import Status

from .conftest import ARTICLE, ORIGIN, count
from .data_helpers import store_comment

DATA = Path(__file__).parent / "data"
FERRY = ORIGIN + "/2026/11/ferry.html"


def line_of(name: str, needle: str) -> int:
    return next(n for n, line in enumerate((DATA / name).read_text().splitlines(), 1) if needle in line)


def comments_by_ref(app, site) -> dict[str, Comment]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Comment).where(Comment.site_id == site.id)).all()
        by_id = {row.id: row for row in rows}
        out = {}
        for row in rows:
            row.parent_ref = by_id[row.parent_id].import_ref if row.parent_id else None
            row.url = db.session.get(Article, row.article_id).url
            db.session.expunge(row)
            out[row.import_ref] = row
        return out


def run_import(runner, kind, name, site):
    return runner.invoke(args=["import", kind, str(DATA / name), "--site", site.key])


def test_wordpress_import_keeps_threads_dates_authors_and_states(app, runner, site):
    result = run_import(runner, "wordpress", "wordpress.xml", site)
    assert result.exit_code == 0, result.output
    assert "Imported 7 comment(s) on 2 new article(s); 0 were already here." in result.output
    assert "Skipped 1 pingback(s)" in result.output
    got = comments_by_ref(app, site)
    ref = "wordpress:news.example.org:{}".format
    assert set(got) == {ref(n) for n in (101, 102, 103, 104, 110, 111, 112)}
    ada = got[ref(101)]
    assert (ada.author_name, ada.author_email, ada.author_website, ada.ip) == (
        "Ada Lovelace", "ada@example.org", "https://ada.example.org/", "203.0.113.7")
    assert ada.created_at == datetime(2026, 11, 2, 9, 15) and ada.url == ARTICLE
    assert "<strong>old mill</strong>" in ada.body_html and ada.status == Status.APPROVED
    grace = got[ref(102)]
    assert grace.parent_ref == ref(101) and grace.ip == "2001:db8::42"
    assert grace.author_website == "" and "<script" not in grace.body_html
    assert got[ref(103)].status == Status.PENDING and got[ref(103)].created_at == datetime(2026, 11, 3, 7, 30)
    assert got[ref(104)].status == Status.REJECTED and got[ref(111)].status == Status.REJECTED
    assert got[ref(111)].ip is None
    # 110 answers 112, which comes later in the file.
    assert got[ref(110)].parent_ref == ref(112) and got[ref(110)].url == FERRY
    with app.app_context():
        ferry = db.session.scalar(sa.select(Article).where(Article.url == FERRY))
        assert ferry.title == "Ferry timetable changes" and ferry.created_at == datetime(2026, 11, 4, 12)


def test_imported_thread_is_public_with_its_replies(app, runner, client, site):
    run_import(runner, "wordpress", "wordpress.xml", site)
    thread = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}).get_json()
    assert [c["author"] for c in thread["comments"]] == ["Ada Lovelace", "Grace Hopper"]
    assert thread["comments"][1]["parent_id"] == thread["comments"][0]["id"]


@pytest.mark.parametrize("kind,name", [("wordpress", "wordpress.xml"), ("disqus", "disqus.xml")])
def test_importing_the_same_file_twice_adds_nothing(app, runner, site, kind, name):
    first = run_import(runner, kind, name, site)
    assert first.exit_code == 0, first.output
    with app.app_context():
        before = count(Comment), count(Article)
    second = run_import(runner, kind, name, site)
    assert second.exit_code == 0, second.output
    assert "Imported 0 comment(s) on 0 new article(s)" in second.output
    with app.app_context():
        assert (count(Comment), count(Article)) == before


def test_disqus_import_keeps_threads_dates_authors_and_states(app, runner, site):
    result = run_import(runner, "disqus", "disqus.xml", site)
    assert result.exit_code == 0, result.output
    got = comments_by_ref(app, site)
    assert len(got) == 5
    ada, grace = got["disqus:4100001"], got["disqus:4100002"]
    assert (ada.author_name, ada.author_email, ada.ip, ada.url) == ("Ada Lovelace", "ada@example.org", "203.0.113.7", ARTICLE)
    assert ada.created_at == datetime(2026, 11, 2, 9, 15) and "<b>old mill</b>" in ada.body_html
    assert grace.parent_ref == "disqus:4100001"
    assert got["disqus:4100003"].status == Status.REJECTED  # spam
    assert got["disqus:4100004"].status == Status.REJECTED  # deleted
    assert got["disqus:4100005"].status == Status.PENDING and got["disqus:4100005"].url == FERRY
    assert all(c.status == Status.APPROVED for c in (ada, grace))


def test_import_is_audit_logged(app, runner, site):
    run_import(runner, "wordpress", "wordpress.xml", site)
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "import"))
        assert event.site_id == site.id and event.detail["added"] == 7 and "wordpress.xml" in event.detail["source"]


@pytest.mark.parametrize("kind,name,needle,words", [
    ("wordpress", "wordpress-malformed.xml", "</wp:comment>", "not well-formed XML"),
    ("wordpress", "wordpress-bad-status.xml", "maybe", "comment 111 has <wp:comment_approved> 'maybe'"),
    ("disqus", "disqus-malformed.xml", "<createdAt>2026-11-05T11:00:00Z</createdAt", "not well-formed XML"),
    ("disqus", "disqus-unknown-thread.xml", '<post dsq:id="4100004">', "thread '7799999'"),
])
def test_a_bad_file_names_the_line_and_changes_nothing(app, runner, site, kind, name, needle, words):
    store_comment(app, site, body="Already here before the import.")
    result = run_import(runner, kind, name, site)
    assert result.exit_code == 1
    assert words in result.output and "Nothing was imported." in result.output
    assert "Traceback" not in result.output
    if "malformed" in name:
        assert "line " in result.output
    else:
        wanted = next(n for n, line in enumerate((DATA / name).read_text().splitlines(), 1) if needle in line)
        if kind == "wordpress":  # the error is reported at the <wp:comment> that holds the bad value
            wanted = max(n for n, line in enumerate((DATA / name).read_text().splitlines()[:wanted], 1)
                         if "<wp:comment>" in line)
        assert f"line {wanted}:" in result.output
    with app.app_context():
        assert count(Comment) == 1 and count(Article) == 1
        assert not db.session.scalar(sa.select(sa.exists().where(AuditEvent.action == "import")))


def test_malformed_xml_error_names_the_right_line(app, runner, site):
    result = run_import(runner, "disqus", "disqus-malformed.xml", site)
    broken = line_of("disqus-malformed.xml", "<createdAt>2026-11-05T11:00:00Z</createdAt")
    assert f"line {broken}" in result.output or f"line {broken + 1}" in result.output


def test_import_refuses_an_unknown_site(runner):
    result = runner.invoke(args=["import", "wordpress", str(DATA / "wordpress.xml"), "--site", "nosuchsite1"])
    assert result.exit_code != 0 and "nosuchsite1" in result.output


def test_import_does_not_resolve_external_entities(app, runner, site, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    evil = (DATA / "wordpress.xml").read_text().replace(
        '<?xml version="1.0" encoding="UTF-8" ?>',
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    ).replace("Good to see the footpath finally funded.", "&xxe;")
    path = tmp_path / "evil.xml"
    path.write_text(evil)
    runner.invoke(args=["import", "wordpress", str(path), "--site", site.key])
    with app.app_context():
        assert not db.session.scalar(sa.select(sa.exists().where(Comment.body.contains("TOP-SECRET"))))


def test_reading_is_streamed(tmp_path):
    """Memory while reading stays far below the file's size."""
    item = (DATA / "wordpress.xml").read_text()
    head, _, rest = item.partition("<item>")
    one_item, _, tail = rest.partition("</item>")
    path = tmp_path / "big.xml"
    with open(path, "w") as out:
        out.write(head)
        for n in range(400):
            out.write("<item>" + one_item.replace("<wp:comment_id>1", f"<wp:comment_id>{n}1") + "</item>")
        out.write("</channel></rss>")
    size = path.stat().st_size
    tracemalloc.start()
    with open(path, "rb") as file:
        read = sum(1 for item in importers.wordpress(file) if item)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert read == 400 * 4  # five comments an item, one of them a pingback
    assert size > 2_000_000 and peak < size / 4


# --- our own JSON --------------------------------------------------------------------


def normalised(export: dict) -> dict:
    """An export with ids replaced by positions, so two sites' exports can be compared."""
    articles = {a["id"]: n for n, a in enumerate(export["articles"])}
    comments = {c["id"]: n for n, c in enumerate(export["comments"])}
    return {
        "rules": export["site"]["rules"],
        # thread_version / thread_changed_at only tell caches that a thread changed (an import is a change)
        "articles": [{**{k: v for k, v in a.items() if not k.startswith("thread_")}, "id": articles[a["id"]]}
                     for a in export["articles"]],
        "comments": [{**c, "id": comments[c["id"]], "article_id": articles[c["article_id"]],
                      "parent_id": comments.get(c["parent_id"]), "import_ref": None} for c in export["comments"]],
        "audit_log": [{**e, "id": None, "comment_id": comments.get(e["comment_id"])}
                      for e in export["audit_log"] if e["action"] != "import"],
    }


def waiting_for_the_index(app) -> int:
    """Comments SQLite's search index has not taken yet (PostgreSQL's takes each at once)."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return 0
        return db.session.scalar(sa.select(sa.func.count()).where(Comment.id > sa.text(search.INDEXED_UP_TO)))


def test_json_export_round_trips_without_loss(app, runner, make_site, make_user, tmp_path):
    source = make_site("Riverside Gazette", moderation_mode="known_authors", held_words=["refund"])
    target = make_site("Restored Gazette", origins=["https://other.example"])
    run_import(runner, "wordpress", "wordpress.xml", source)
    store_comment(app, source, body="Flagged one", status=Status.FLAGGED, reasons=["held word: refund"], notify=True)
    make_user("mod@example.org", all_sites=True)
    with app.app_context():
        first = db.session.scalar(sa.select(Comment).where(Comment.status == Status.PENDING))
        db.session.add(AuditEvent(site_id=source.id, comment_id=first.id, actor="mod@example.org", action="approve",
                                  from_status="pending", to_status="approved", detail={"note": "ok"}))
        db.session.commit()
    exported = runner.invoke(args=["export", source.key])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.stdout)
    assert {"site", "articles", "comments", "audit_log"} <= set(data)
    assert data["site"]["rules"]["held_words"] == ["refund"]
    path = tmp_path / "export.json"
    path.write_text(exported.stdout)
    loaded = runner.invoke(args=["import", "json", str(path), "--site", target.key])
    assert loaded.exit_code == 0, loaded.output
    assert waiting_for_the_index(app) == 0
    again = runner.invoke(args=["import", "json", str(path), "--site", target.key])
    assert "Imported 0 comment(s)" in again.output
    restored = json.loads(runner.invoke(args=["export", target.key]).stdout)
    assert len(restored["comments"]) == len(data["comments"]) == 8
    assert normalised(restored) == normalised(data)


def test_json_import_refuses_a_bad_file_and_changes_nothing(app, runner, site, tmp_path):
    data = {"format": importers.EXPORT_FORMAT, "version": 1, "site": {"key": "x", "rules": {"max_links": "many"}},
            "articles": [], "comments": [], "audit_log": []}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(args=["import", "json", str(path), "--site", site.key])
    assert result.exit_code == 1 and "max_links" in result.output and "Nothing was imported." in result.output
    assert json.loads(runner.invoke(args=["site-rules", site.key]).stdout) == site.rules
    path.write_text("{not json")
    assert "not valid JSON" in runner.invoke(args=["import", "json", str(path), "--site", site.key]).output


def test_a_comment_repeated_in_the_file_is_stored_once(app, runner, site, tmp_path):
    text = (DATA / "wordpress.xml").read_text()
    start, end = text.index("\t<item>"), text.index("</item>") + len("</item>")
    path = tmp_path / "twice.xml"
    path.write_text(text[:end] + "\n" + text[start:end] + text[end:])
    result = runner.invoke(args=["import", "wordpress", str(path), "--site", site.key])
    assert result.exit_code == 0, result.output
    assert "Imported 7 comment(s)" in result.output and "4 were already here" in result.output


def test_an_unreadable_date_names_the_comment_and_line(app, runner, site, tmp_path):
    text = (DATA / "wordpress.xml").read_text().replace("2026-11-04 12:00:00]]></wp:comment_date_gmt>",
                                                       "yesterday at noon]]></wp:comment_date_gmt>")
    path = tmp_path / "date.xml"
    path.write_text(text)
    result = runner.invoke(args=["import", "wordpress", str(path), "--site", site.key])
    assert result.exit_code == 1 and "comment 112 has the date 'yesterday at noon'" in result.output
    with app.app_context():
        assert count(Comment) == 0


def searchable(app, words: str) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(sa.select(Comment.author_name).where(search.matching(words))))


@pytest.mark.parametrize("bad_file", [None, "wordpress-bad-status.xml"])
def test_imported_comments_are_searchable_and_new_ones_still_indexed(app, runner, site, post_comment, bad_file):
    if bad_file:  # a failed import leaves the index as it was
        assert run_import(runner, "wordpress", bad_file, site).exit_code == 1
    else:
        assert run_import(runner, "wordpress", "wordpress.xml", site).exit_code == 0
        assert waiting_for_the_index(app) == 0
        assert searchable(app, "Lovelace") == {"Ada Lovelace"}
        assert "Ada Lovelace" in searchable(app, "example org")  # every column: the email too
    post_comment(site, name="Posted Afterwards", body="Comments posted after an import are found too.")
    assert searchable(app, "afterwards") == {"Posted Afterwards"}


def test_worker_processes_render_the_same_html(app, site):
    """Big files render comment HTML in spawned worker processes; the result is the same."""
    with app.app_context(), open(DATA / "wordpress.xml", "rb") as file:
        report = importers.import_file(db.session.get(Site, site.id), "wordpress", file, "test", "sample", workers=2)
        db.session.commit()
        stored = db.session.scalars(sa.select(Comment)).all()
        assert report.added == len(stored) == 7
        assert all(comment.body_html == sanitize.render(comment.body) for comment in stored)
