"""The moderator's workspace: tabs and filters, search, the card, decisions with reasons, edit,
ban, bulk, undo, the audit log and its CSV, review claims, reader reports, live feed, stats."""
import csv
import html
import io
import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from .conftest import ARTICLE, ORIGIN, comment_fields
from .test_moderate import CARD, OTHER_ORIGIN, add_comment, comment, decide, flashes, page_of
from moderation import create_app, search, tokens
from moderation.extensions import db
from moderation.models import AuditEvent, Ban, Claim, Comment, Report, Site, utcnow
from moderation.rules import Status

OTHER_ARTICLE = ORIGIN + "/2026/11/bridge-tolls.html"


@pytest.fixture
def moderator(make_user, auth, site):
    user_id = make_user(sites=[site])
    assert auth.login().status_code == 302
    return user_id


@pytest.fixture
def admin(make_user, auth):
    user_id = make_user("admin@example.org", role="admin")
    assert auth.login("admin@example.org").status_code == 302
    return user_id


def cards(page: str) -> list[int]:
    return [int(found) for found in CARD.findall(page)]


def card_of(page: str, comment_id: int) -> str:
    start = page.index(f'id="c{comment_id}"')
    end = page.find('<li class="card', start + 10)
    return page[start:end if end > 0 else None]


def tab_counts(page: str) -> dict[str, int]:
    return {tab: int(n) for tab, n in re.findall(r'data-tab="(\w+)">(\d+)</span>', page)}


def set_fields(app, comment_id, **values):
    with app.app_context():
        db.session.execute(sa.update(Comment).where(Comment.id == comment_id).values(**values))
        db.session.commit()


def audit_events(app, action=None) -> list[AuditEvent]:
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        events = list(db.session.scalars(query))
        db.session.expunge_all()
        return events


# --- tabs, filters, search ---------------------------------------------------


def test_six_tabs_with_counts(app, client, site, moderator):
    pending = add_comment(app, client, site, body="Pending one.")
    add_comment(app, client, site, status=Status.FLAGGED, body="Flagged one.")
    approved = add_comment(app, client, site, status=Status.APPROVED, body="Approved one.")
    add_comment(app, client, site, status=Status.REJECTED, body="Rejected one.")
    set_fields(app, approved, reports=2)
    page = page_of(client.get("/moderate/"))
    assert tab_counts(page) == {"pending": 1, "flagged": 1, "reported": 1, "approved": 1, "rejected": 1, "all": 4}
    assert cards(page) == [pending]
    assert cards(page_of(client.get("/moderate/reported"))) == [approved]
    assert len(cards(page_of(client.get("/moderate/all")))) == 4


def test_site_filter_for_a_moderator_of_two_sites(app, client, make_site, make_user, auth):
    site_a, site_b = make_site("Site A"), make_site("Site B", origins=[OTHER_ORIGIN])
    a = add_comment(app, client, site_a, body="On A.")
    b = add_comment(app, client, site_b, url=OTHER_ORIGIN + "/x.html", body="On B.")
    outsider = make_site("Site C", origins=["https://c.example"])
    add_comment(app, client, outsider, url="https://c.example/x.html", body="On C.")
    make_user(sites=[site_a, site_b])
    auth.login()
    page = page_of(client.get("/moderate/"))
    assert sorted(cards(page)) == sorted([a, b])
    assert "Site C" not in page and ">Site A</option>" in page
    assert cards(page_of(client.get(f"/moderate/?site={site_b.id}"))) == [b]
    assert tab_counts(page_of(client.get(f"/moderate/?site={site_b.id}")))["pending"] == 1
    # a site the moderator does not have is ignored, never shown
    assert sorted(cards(page_of(client.get(f"/moderate/?site={outsider.id}")))) == sorted([a, b])


def test_reason_filter(app, client, make_site, make_user, auth):
    site = make_site(held_words=["refund"], max_links=0)
    make_user(sites=[site])
    auth.login()
    worded = add_comment(app, client, site, body="Ask for a refund today.")
    linked = add_comment(app, client, site, body="See https://example.com/page please.", email="b@example.org")
    plain = add_comment(app, client, site, body="Nothing special here.", email="c@example.org")
    assert cards(page_of(client.get("/moderate/?reason=words"))) == [worded]
    assert cards(page_of(client.get("/moderate/?reason=links"))) == [linked]
    set_fields(app, plain, reports=1)
    assert cards(page_of(client.get("/moderate/all?reason=reported"))) == [plain]


@pytest.mark.parametrize(("query", "field"), [
    ("footpath", "body"), ("Hopper", "name"), ("grace@example.org", "email"), ("grace.example", "website"),
    ("203.0.113.9", "ip"), ("riverside-park", "article url"), ("foot", "a word's beginning"),
])
def test_full_text_search_covers_every_field(app, client, site, moderator, query, field):
    wanted = add_comment(app, client, site, body="Is the footpath lit at night?", name="Grace Hopper",
                         email="grace@example.org", website="https://grace.example.org/", ip="203.0.113.9")
    add_comment(app, client, site, url=OTHER_ARTICLE, body="Tolls are too high.", name="Alan Turing",
                email="alan@example.net", ip="198.51.100.7")
    assert cards(page_of(client.get("/moderate/", query_string={"q": query}))) == [wanted], field


def indexed_comments(app) -> int:
    with app.app_context():
        table = "comments_fts" if db.engine.dialect.name == "sqlite" else "comment_search"
        return db.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))


def index_waiting(app) -> None:
    with app.app_context():
        search.index_waiting()
        db.session.commit()


@pytest.mark.parametrize("indexed", [False, True])
def test_search_uses_the_engines_index_and_follows_edits(app, client, site, moderator, indexed):
    found = add_comment(app, client, site, body="Original words about ferries.")
    if indexed:  # on SQLite a new comment waits for its batch; PostgreSQL indexes it at once
        index_waiting(app)
    set_fields(app, found, body="Rewritten about trams.")
    assert cards(page_of(client.get("/moderate/?q=trams"))) == [found]
    assert cards(page_of(client.get("/moderate/?q=ferries"))) == []
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    assert indexed_comments(app) == (1 if indexed or not sqlite else 0)  # an edit does not index a waiting one


def test_an_edit_keeps_indexed_comments_indexed(app, client, site, moderator):
    older, newest = (add_comment(app, client, site, body=f"About ferries, part {n}.", email=f"{n}@example.org")
                     for n in (1, 2))
    index_waiting(app)
    for comment_id in (older, newest):
        set_fields(app, comment_id, body=f"Rewritten about trams, comment {comment_id}.")
    assert sorted(cards(page_of(client.get("/moderate/?q=trams")))) == [older, newest]
    assert cards(page_of(client.get("/moderate/?q=ferries"))) == []
    assert indexed_comments(app) == 2


def test_sqlite_indexes_new_comments_in_batches(app, client, site, moderator):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL indexes every comment in its own insert's transaction")
    ids = [add_comment(app, client, site, body=f"Tram stop number {n}.", email=f"r{n}@example.org")
           for n in range(search.INDEX_BATCH - 1)]
    assert ids[-1] == search.INDEX_BATCH - 1 and indexed_comments(app) == 0
    assert len(cards(page_of(client.get("/moderate/?q=tram")))) == min(len(ids), 25)  # waiting, still found
    ids.append(add_comment(app, client, site, body="Tram stop number last.", email="last@example.org"))
    assert indexed_comments(app) == search.INDEX_BATCH  # the post with the batch's last id indexed all of them
    assert cards(page_of(client.get("/moderate/?q=last"))) == [ids[-1]]
    waiting = add_comment(app, client, site, body="A tram after the batch.", email="after@example.org")
    assert indexed_comments(app) == search.INDEX_BATCH
    assert cards(page_of(client.get("/moderate/?q=after"))) == [waiting]


# Accents, scripts and punctuation: FTS5's unicode61 folds Latin accents only, splits Devanagari
# at its combining marks, and keeps ß; a waiting comment must match exactly as an indexed one.
TRICKY_BODY = "Café crème, Straße Ærøskøbing. Ελληνικά Ёлка हिन्दी ﬁne a_b x@y.org 2026-12-02"
TRICKY_QUERIES = ["cafe", "CAFÉ", "creme", "strasse", "straße", "aerø", "ærø", "ελληνικα", "ελληνικά", "ёлка",
                  "елка", "हिन्दी", "न्द", "fine", "ﬁne", "a_b", "b", "y org", "2026 02", "12-0", "ferry"]


def test_waiting_and_indexed_comments_match_the_same_words(app, client, site, moderator):
    found = add_comment(app, client, site, body=TRICKY_BODY)

    def matched() -> dict[str, bool]:
        return {query: cards(page_of(client.get("/moderate/", query_string={"q": query}))) == [found]
                for query in TRICKY_QUERIES}

    waiting = matched()
    index_waiting(app)
    assert indexed_comments(app) == 1
    assert matched() == waiting
    assert waiting["CAFÉ"] and waiting["2026 02"] and not waiting["ferry"]


def test_the_one_comment_index_is_built_like_the_real_one(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only")
        stored = db.session.scalar(sa.text("SELECT sql FROM sqlite_master WHERE name = 'comments_fts'"))
    assert " ".join(stored.split()).replace("( ", "(") == search.FTS_TABLE


@pytest.mark.parametrize("query", ['"', "foo OR", "NEAR(a b)", "a:*&!", "'; DROP TABLE comments; --", "*"])
def test_search_never_breaks_on_odd_input(app, client, site, moderator, query):
    add_comment(app, client, site)
    assert client.get("/moderate/", query_string={"q": query}).status_code == 200


def test_filters_survive_paging(app, client, site, moderator):
    app.config["QUEUE_PAGE_SIZE"] = 2
    ids = [add_comment(app, client, site, body=f"Tram number {n}.", email=f"r{n}@example.org") for n in range(3)]
    add_comment(app, client, site, body="Something else.", email="other@example.org")
    page = page_of(client.get("/moderate/?q=tram"))
    assert cards(page) == [ids[2], ids[1]]
    older = re.search(r'<a href="([^"]+)" rel="next">Older comments</a>', page).group(1)
    assert "q=tram" in older
    assert cards(page_of(client.get(older.replace("&amp;", "&")))) == [ids[0]]


# --- the card ----------------------------------------------------------------


def test_matched_words_are_highlighted_inside_the_sanitized_html(app, client, make_site, make_user, auth):
    site = make_site(held_words=["refund", "buy now"])
    make_user(sites=[site])
    auth.login()
    found = add_comment(app, client, site, body="Please <em>REFUND</em> me & buy  now <b>x</b> <script>x</script>")
    body = card_of(page_of(client.get("/moderate/")), found)
    assert "<em><mark>REFUND</mark></em>" in body
    assert "<mark>buy  now</mark>" in body
    assert "&amp;" in body and "<script>" not in body


def test_highlighting_never_marks_inside_tags(app, client, make_site, make_user, auth):
    site = make_site(held_words=["example", "href"])
    make_user(sites=[site])
    auth.login()
    found = add_comment(app, client, site, body="see https://example.com/a")
    body = card_of(page_of(client.get("/moderate/")), found)
    assert re.search(r'<a href="https://example.com/a"[^>]*>https://<mark>example</mark>.com/a</a>', body)


def test_a_reply_shows_its_parent(app, client, site, moderator):
    parent = add_comment(app, client, site, status=Status.APPROVED, body="The parent says hello.")
    reply = add_comment(app, client, site, parent_id=parent, body="The reply.", email="r@example.org")
    card = card_of(page_of(client.get("/moderate/")), reply)
    assert "In reply to Ada Lovelace" in card and "The parent says hello." in card


def test_card_shows_the_authors_record_and_the_history_page(app, client, site, moderator):
    for status in (Status.APPROVED, Status.APPROVED, Status.REJECTED):
        add_comment(app, client, site, status=status, body=f"Earlier {status.value} {utcnow()}.")
    by_ip = add_comment(app, client, site, status=Status.FLAGGED, email="alias@example.org", body="Same IP.")
    current = add_comment(app, client, site, body="The latest one.")
    card = card_of(page_of(client.get("/moderate/")), current)
    assert "2 approved · 1 rejected · 1 flagged · 0 pending" in card  # the others, not this one
    history = page_of(client.get(f"/moderate/comments/{current}"))
    tally = dict((s, int(n)) for n, s in re.findall(r"<strong>(\d+)</strong> (\w+)", history))
    assert tally == {"approved": 2, "rejected": 1, "flagged": 1, "pending": 0}
    assert f'/moderate/comments/{by_ip}"' in history
    assert f'<a href="/moderate/comments/{current}#history" class="record">2 approved' in card  # one click away


def test_card_counts_the_authors_comments_by_ip_and_by_token_as_the_comment_page_does(
        app, client, site, make_site, moderator):
    by_ip = add_comment(app, client, site, status=Status.APPROVED, email="one@example.org", ip="203.0.113.5",
                        body="Shares the IP address only.")
    by_token = add_comment(app, client, site, status=Status.REJECTED, email="two@example.org", ip="198.51.100.9",
                           body="Shares the browser token only.")
    stranger = add_comment(app, client, site, status=Status.FLAGGED, email="three@example.org", ip="198.51.100.10",
                           body="Shares nothing.")
    elsewhere = make_site(name="Other Paper", origins=(OTHER_ORIGIN,))
    add_comment(app, client, elsewhere, status=Status.APPROVED, url=OTHER_ORIGIN + "/a.html", ip="203.0.113.5",
                email="four@example.org", body="Same IP, another site.")
    current = add_comment(app, client, site, email="four@example.org", ip="203.0.113.5", body="The one in question.")
    set_fields(app, by_token, author_key="k" * 32)
    set_fields(app, current, author_key="k" * 32)
    card = card_of(page_of(client.get("/moderate/")), current)
    assert "1 approved · 1 rejected · 0 flagged · 0 pending" in card
    history = page_of(client.get(f"/moderate/comments/{current}"))
    tally = dict((s, int(n)) for n, s in re.findall(r"<strong>(\d+)</strong> (\w+)", history))
    assert tally == {"approved": 1, "rejected": 1, "flagged": 0, "pending": 0}
    latest = [int(n) for n in re.findall(r'<li><a href="/moderate/comments/(\d+)"', history)]
    assert latest == [by_token, by_ip]  # newest first, and not the stranger


def test_the_authors_records_of_a_page_are_the_union_of_email_ip_and_token_matches(app, make_site):
    """history_counts, counted by inclusion and exclusion, against the definition itself: for
    each comment, the other comments of its site alike in email, IP or token, by status."""
    import random

    from moderation import queue
    from moderation.models import Article

    chance = random.Random(7)
    sites = [make_site(name="Riverside Gazette"), make_site(name="Other Paper", origins=(OTHER_ORIGIN,))]
    with app.app_context():
        articles = [Article(site_id=site.id, url=f"{ORIGIN}/{site.id}.html", title="") for site in sites]
        db.session.add_all(articles)
        db.session.flush()
        for n in range(160):  # small pools, so that every overlap of email, IP and token occurs
            article = chance.choice(articles)
            db.session.add(Comment(
                site_id=article.site_id, article_id=article.id, author_name="A", body=f"Comment {n}.",
                body_html=f"<p>Comment {n}.</p>", author_email=chance.choice(["a@x.org", "b@x.org", "c@x.org"]),
                ip=chance.choice(["192.0.2.1", "192.0.2.2", "2001:db8::1", None]),
                author_key=chance.choice(["k1", "k2", None]), status=chance.choice(list(Status))))
        db.session.commit()
        everyone = list(db.session.scalars(sa.select(Comment)))
        page = chance.sample(everyone, 40)

        def alike(one: Comment, other: Comment) -> bool:
            return other.id != one.id and other.site_id == one.site_id and any(
                mine is not None and mine == theirs for mine, theirs in (
                    (one.author_email, other.author_email), (one.ip, other.ip), (one.author_key, other.author_key)))

        expected = {}
        for one in page:
            tally = expected[one.id] = {}
            for other in everyone:
                if alike(one, other):
                    tally[other.status.value] = tally.get(other.status.value, 0) + 1
        assert queue.history_counts(page) == expected
        assert any(len(tally) > 2 for tally in expected.values())  # the data is not trivially sparse


def test_a_first_time_author_has_no_record(app, client, site, moderator):
    current = add_comment(app, client, site, body="Hello for the first time.")
    card = card_of(page_of(client.get("/moderate/")), current)
    assert "No other comments by this author" in card and "#history" not in card


def statements_for(app, client, path: str) -> int:
    seen = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: seen.append(1)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return len(seen)


def test_a_page_of_50_cards_costs_the_statements_of_a_page_of_1(app, client, site, moderator):
    """Replies, reports and authors with a record on every card: still no query per card."""
    parent = add_comment(app, client, site, status=Status.APPROVED, body="A parent.")
    with app.app_context():
        article_id = db.session.get(Comment, parent).article_id
        db.session.execute(sa.insert(Comment), [
            {"site_id": site.id, "article_id": article_id, "parent_id": parent, "author_name": f"Reader {n}",
             "author_email": f"reader{n % 7}@example.org", "author_website": "", "author_key": f"key{n % 5}",
             "body": f"Comment {n}.", "body_html": f"<p>Comment {n}.</p>", "reasons": ["held: new author"],
             "status": Status.APPROVED if n % 3 == 0 else Status.PENDING, "ip": f"192.0.2.{n % 11}",
             "reports": 1, "version": 1, "sanitizer_version": 1} for n in range(120)])
        db.session.commit()
    counted = {}
    for size in (1, 50):
        app.config["QUEUE_PAGE_SIZE"] = size
        page = page_of(client.get("/moderate/reported"))
        assert len(cards(page)) == size and "In reply to" in page and "Author's other comments" in page
        counted[size] = statements_for(app, client, "/moderate/reported")
    assert counted[50] == counted[1]


# --- decisions ---------------------------------------------------------------


def test_reject_with_a_reason_and_flag_with_a_note_are_audited(app, client, site, moderator):
    first, second = add_comment(app, client, site, body="One."), add_comment(app, client, site, body="Two.")
    client.post(f"/moderate/comments/{first}/reject", data={"version": 1, "reason": "Spam", "note": "bot ring"})
    client.post(f"/moderate/comments/{second}/flag", data={"version": 1, "note": "check the facts"})
    reject, flag = audit_events(app, "reject")[0], audit_events(app, "flag")[0]
    assert (reject.from_status, reject.to_status, reject.detail) == ("pending", "rejected",
                                                                     {"reason": "Spam", "note": "bot ring"})
    assert reject.actor == "mod@example.org" and reject.created_at is not None
    assert flag.detail == {"note": "check the facts"}


def test_a_reason_not_in_the_list_is_refused(app, client, site, moderator):
    found = add_comment(app, client, site)
    client.post(f"/moderate/comments/{found}/reject", data={"version": 1, "reason": "<made up>"})
    assert comment(app, found).status == Status.PENDING


def test_decision_goes_back_to_the_next_card(app, client, site, moderator):
    older, newer = add_comment(app, client, site, body="Older."), add_comment(app, client, site, body="Newer.")
    page = page_of(client.get("/moderate/"))
    assert re.search(rf'name="next" value="{older}"', card_of(page, newer))
    response = client.post(f"/moderate/comments/{newer}/approve", data={"version": 1, "back": "/moderate/?",
                                                                         "next": older})
    assert response.location.endswith(f"#c{older}")


def test_stale_decision_says_who_decided_and_applies_nothing(app, client, site, moderator, make_user):
    found = add_comment(app, client, site)
    decide(client, app, found, "approve")
    response = client.post(f"/moderate/comments/{found}/reject", data={"version": 1}, follow_redirects=True)
    assert response.status_code == 200
    assert any("already approved by mod@example.org" in text for text in flashes(page_of(response)))
    assert comment(app, found).status == Status.APPROVED
    (refused,) = audit_events(app, "reject-refused")
    assert (refused.actor, refused.from_status, refused.to_status) == ("mod@example.org", "approved", "rejected")
    assert refused.detail["seen_version"] == 1 and "already approved by mod@example.org" in refused.detail["why"]


def test_edit_rerenders_and_keeps_the_original_in_the_audit_log(app, client, site, moderator):
    found = add_comment(app, client, site, status=Status.APPROVED, body="Call me on 555-0123 <b>now</b>")
    version = comment(app, found).version
    client.post(f"/moderate/comments/{found}/edit",
                data={"edit-version": version, "edit-body": "Call me on [redacted] <script>x</script>",
                      "edit-note": "phone"})
    edited = comment(app, found)
    assert edited.body == "Call me on [redacted] <script>x</script>"
    assert "<script>" not in edited.body_html and "[redacted]" in edited.body_html
    assert edited.version == version + 1
    event = audit_events(app, "edit")[0]
    assert event.detail["original"] == "Call me on 555-0123 <b>now</b>" and event.detail["note"] == "phone"
    thread = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}).get_json()
    assert "555-0123" not in str(thread)


def test_edit_on_a_stale_version_changes_nothing(app, client, site, moderator):
    found = add_comment(app, client, site, body="Before.")
    response = client.post(f"/moderate/comments/{found}/edit", data={"edit-version": 99, "edit-body": "After."},
                           follow_redirects=True)
    assert comment(app, found).body == "Before."
    assert any("your decision was not applied" in text for text in flashes(page_of(response)))
    (refused,) = audit_events(app, "edit-refused")
    assert (refused.actor, refused.comment_id, refused.from_status) == ("mod@example.org", found, "pending")
    assert refused.detail["seen_version"] == 99 and refused.detail["version"] == 1
    assert refused.detail["edited"] == "After." and "was already pending" in refused.detail["why"]
    assert audit_events(app, "edit") == []


@pytest.mark.parametrize(("kind", "new_email", "new_ip", "banned"), [
    ("email", "ada@example.org", "198.51.100.1", True),
    ("email", "someone@example.org", "192.0.2.10", False),
    ("ip", "someone@example.org", "192.0.2.10", True),
    ("ip", "someone@example.org", "192.0.2.11", False),
    ("range", "someone@example.org", "192.0.2.200", True),
    ("range", "someone@example.org", "192.0.3.1", False),
])
def test_ban_rejects_later_comments_with_the_date(app, client, site, moderator, kind, new_email, new_ip, banned):
    found = add_comment(app, client, site, ip="192.0.2.10")
    client.post(f"/moderate/comments/{found}/ban", data={"ban-kind": kind, "ban-days": "7", "ban-cidr": 24, "ban-note": "troll"})
    later = add_comment(app, client, site, email=new_email, ip=new_ip, body="Back again.")
    got = comment(app, later)
    if banned:
        assert got.status == Status.REJECTED
        assert re.fullmatch(r"rejected: banned until \d{4}-\d\d-\d\d \d\d:\d\d UTC", got.reasons[0])
    else:
        assert got.status == Status.PENDING
    assert audit_events(app, "ban")[0].detail["note"] == "troll"


def test_an_expired_ban_no_longer_applies(app, client, site, moderator):
    found = add_comment(app, client, site)
    client.post(f"/moderate/comments/{found}/ban", data={"ban-kind": "email", "ban-days": "1"})
    with app.app_context():
        db.session.execute(sa.update(Ban).values(until=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert comment(app, add_comment(app, client, site, body="Later.")).status == Status.PENDING


def test_bulk_decides_the_selection_only_if_unchanged(app, client, site, moderator):
    a, b, c = (add_comment(app, client, site, body=f"Bulk {n}.") for n in "abc")
    set_fields(app, b, version=5)  # someone changed b since the page was shown
    response = client.post("/moderate/pending/bulk/reject", data={"ids": [f"{a}:1", f"{b}:1"], "reason": "Spam"},
                           follow_redirects=True)
    assert flashes(page_of(response)) == ["1 comment rejected. 1 had changed meanwhile and were left alone."]
    assert [comment(app, x).status for x in (a, b, c)] == [Status.REJECTED, Status.PENDING, Status.PENDING]
    assert audit_events(app, "reject")[0].detail == {"bulk": True, "reason": "Spam"}
    (refused,) = audit_events(app, "reject-refused")
    assert (refused.actor, refused.comment_id, refused.from_status, refused.to_status) == (
        "mod@example.org", b, "pending", "rejected")
    assert refused.detail["seen_version"] == 1 and refused.detail["bulk"] is True
    assert refused.detail["why"].startswith(f"Comment {b} was already pending")


def test_bulk_on_comments_decided_meanwhile_audits_each_refusal(app, client, site, moderator, make_user):
    a, b = add_comment(app, client, site, body="Bulk a."), add_comment(app, client, site, body="Bulk b.")
    other = app.test_client()
    make_user("other@example.org", sites=[site])
    other.post("/moderate/login", data={"email": "other@example.org", "password": "correct horse battery"})
    decide(other, app, a, "approve")
    response = client.post("/moderate/pending/bulk/flag", data={"ids": [f"{a}:1", f"{b}:1"]}, follow_redirects=True)
    assert flashes(page_of(response)) == ["1 comment flagged. 1 had changed meanwhile and were left alone."]
    (refused,) = audit_events(app, "flag-refused")
    assert (refused.actor, refused.comment_id, refused.from_status, refused.to_status) == (
        "mod@example.org", a, "approved", "flagged")
    assert "already approved by other@example.org" in refused.detail["why"]


def test_bulk_everything_matching_the_filter(app, client, site, moderator):
    trams = [add_comment(app, client, site, body=f"Trams {n}.", email=f"t{n}@example.org") for n in range(3)]
    other = add_comment(app, client, site, body="Buses.", email="bus@example.org")
    client.post("/moderate/pending/bulk/approve?q=trams", data={"everything": "y"})
    assert all(comment(app, x).status == Status.APPROVED for x in trams)
    assert comment(app, other).status == Status.PENDING


def test_bulk_cannot_reach_another_sites_comments(app, client, site, make_site, moderator):
    other = make_site("Other", origins=[OTHER_ORIGIN])
    theirs = add_comment(app, client, other, url=OTHER_ORIGIN + "/x.html")
    client.post("/moderate/pending/bulk/approve", data={"ids": [f"{theirs}:1"]})
    assert comment(app, theirs).status == Status.PENDING


def test_reject_all_pending_from_this_author(app, client, site, moderator):
    spam = [add_comment(app, client, site, body=f"Spam {n}.", ip="198.51.100.66", email=f"s{n}@example.org")
            for n in range(3)]
    kept = add_comment(app, client, site, body="Innocent.", email="ok@example.org", ip="192.0.2.1")
    client.post(f"/moderate/comments/{spam[0]}/reject-author")
    assert [comment(app, x).status for x in spam] == [Status.REJECTED] * 3
    assert comment(app, kept).status == Status.PENDING


# --- undo and the audit log ----------------------------------------------------


def test_undo_puts_back_the_last_decisions_in_turn(app, client, site, moderator):
    first, second = add_comment(app, client, site, body="First."), add_comment(app, client, site, body="Second.")
    decide(client, app, first, "approve")
    decide(client, app, second, "reject")
    client.post("/moderate/undo", data={"back": "/moderate/"})
    assert comment(app, second).status == Status.PENDING and comment(app, first).status == Status.APPROVED
    client.post("/moderate/undo")
    assert comment(app, first).status == Status.PENDING
    response = client.post("/moderate/undo", follow_redirects=True)
    assert flashes(page_of(response))[-1] == "There is nothing of yours to undo."
    undos = audit_events(app, "undo")
    assert [(e.from_status, e.to_status) for e in undos] == [("rejected", "pending"), ("approved", "pending")]


def test_undo_refuses_when_someone_else_decided_since(app, client, site, moderator, make_user, auth):
    found = add_comment(app, client, site)
    decide(client, app, found, "approve")
    other_client = app.test_client()
    make_user("other@example.org", sites=[site])
    other_client.post("/moderate/login", data={"email": "other@example.org", "password": "correct horse battery"})
    decide(other_client, app, found, "reject")
    response = client.post("/moderate/undo", follow_redirects=True)
    assert "Cannot undo" in flashes(page_of(response))[-1]
    assert comment(app, found).status == Status.REJECTED
    approve, = audit_events(app, "approve")
    (refused,) = audit_events(app, "undo-refused")
    assert (refused.actor, refused.comment_id, refused.from_status, refused.to_status) == (
        "mod@example.org", found, "rejected", "pending")
    assert refused.detail["undoes"] == approve.id
    assert "already rejected by other@example.org" in refused.detail["why"]
    assert audit_events(app, "undo") == []


def test_audit_log_is_for_admins_with_filters_and_csv(app, client, site, make_user, auth):
    found = add_comment(app, client, site)
    make_user(sites=[site])
    auth.login()
    assert client.get("/moderate/audit").status_code == 403
    client.post(f"/moderate/comments/{found}/reject", data={"version": 1, "reason": "Spam", "note": "=cmd|x"})
    auth.logout()
    make_user("admin@example.org", role="admin")
    auth.login("admin@example.org")
    page = page_of(client.get(f"/moderate/audit?site={site.id}&action=reject"))
    assert "mod@example.org" in page and "Spam" in page
    assert "mod@example.org" not in page_of(client.get("/moderate/audit?action=flag"))
    response = client.get("/moderate/audit.csv?action=reject")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["actor"], r["action"], r["from_status"], r["to_status"], r["reason"]) for r in rows] == [
        ("mod@example.org", "reject", "pending", "rejected", "Spam")]
    assert rows[0]["note"] == "'=cmd|x"  # never a formula in a spreadsheet


# --- two moderators ------------------------------------------------------------


def test_being_reviewed_by_another_moderator(app, client, site, moderator, make_user):
    found = add_comment(app, client, site)
    other = app.test_client()
    make_user("other@example.org", sites=[site])
    other.post("/moderate/login", data={"email": "other@example.org", "password": "correct horse battery"})
    assert "Being reviewed by" not in page_of(client.get("/moderate/"))
    other.get(f"/moderate/comments/{found}")
    assert "Being reviewed by other@example.org" in card_of(page_of(client.get("/moderate/")), found)
    assert "Being reviewed by" not in page_of(other.get("/moderate/"))  # not about oneself
    assert client.get(f"/moderate/pending/live?seen={found}.1").get_json()["reviewing"] == {
        str(found): "other@example.org"}
    with app.app_context():
        db.session.execute(sa.update(Claim).values(claimed_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    assert "Being reviewed by" not in page_of(client.get("/moderate/"))


def test_a_claim_made_at_the_same_moment_by_another_request_is_taken_over(app, client, site, moderator,
                                                                          make_user):
    """The queue's script claims a card as a click opens it: two requests, each finding no claim."""
    found = add_comment(app, client, site)
    other_id = make_user("other@example.org", sites=[site])
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite's one writer serialises the two claims")
        engine = db.engine

    raced = []

    def claim_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO claims") and not raced:
            raced.append(statement)
            with engine.connect() as elsewhere:  # the other request, committed first
                elsewhere.execute(sa.insert(Claim).values(comment_id=found, user_id=other_id, claimed_at=utcnow()))
                elsewhere.commit()

    sa.event.listen(engine, "before_cursor_execute", claim_first)
    try:
        response = client.get(f"/moderate/comments/{found}")
    finally:
        sa.event.remove(engine, "before_cursor_execute", claim_first)
    assert raced and response.status_code == 200
    with app.app_context():
        [claim] = db.session.scalars(sa.select(Claim).where(Claim.comment_id == found))
        assert claim.user.email == "mod@example.org"  # the later request's moderator has it now


def test_opening_a_comment_while_another_connection_writes_claims_it(app, client, site, moderator):
    """On SQLite a read transaction cannot turn into a write once another connection committed
    since its first read (the claim would fail at once, with no busy wait): the card's request
    holds the write lock from its first statement, and the other writer waits its turn."""
    found = add_comment(app, client, site)
    with app.app_context():
        engine = db.engine
    other_writer = threading.Thread(target=lambda: rename_site(engine, site.id))

    def write_elsewhere(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE claims") and other_writer.ident is None:  # not started yet
            other_writer.start()
            other_writer.join(timeout=0.5)  # done at once, unless this request holds the lock

    sa.event.listen(engine, "before_cursor_execute", write_elsewhere)
    try:
        response = client.get(f"/moderate/comments/{found}")
    finally:
        sa.event.remove(engine, "before_cursor_execute", write_elsewhere)
    other_writer.join(timeout=15)
    assert other_writer.ident is not None and not other_writer.is_alive()
    assert response.status_code == 200
    with app.app_context():
        assert db.session.get(Site, site.id).name == "Renamed meanwhile"
        assert db.session.get(Claim, found) is not None


def rename_site(engine, site_id: int) -> None:
    with engine.connect() as connection:
        connection.execute(sa.update(Site).where(Site.id == site_id).values(name="Renamed meanwhile"))
        connection.commit()


def test_claim_endpoint_needs_a_visible_comment(app, client, site, make_site, moderator):
    other = make_site("Other", origins=[OTHER_ORIGIN])
    theirs = add_comment(app, client, other, url=OTHER_ORIGIN + "/x.html")
    assert client.post(f"/moderate/comments/{theirs}/claim").status_code == 404
    mine = add_comment(app, client, site)
    assert client.post(f"/moderate/comments/{mine}/claim").status_code == 204


# --- live ------------------------------------------------------------------------


def test_live_feed_counts_new_comments_and_decisions_by_others_with_etag(app, client, site, moderator):
    shown = add_comment(app, client, site, body="Shown.")
    first = client.get(f"/moderate/pending/live?newest={shown}&seen={shown}.1")
    data = first.get_json()
    assert data == {"counts": data["counts"], "cap": 10_000, "new": 0, "changed": [], "reviewing": {}}
    assert data["counts"]["pending"] == 1
    etag = first.headers["ETag"]
    assert client.get(f"/moderate/pending/live?newest={shown}&seen={shown}.1",
                      headers={"If-None-Match": etag}).status_code == 304
    add_comment(app, client, site, body="Arrived later.", email="late@example.org")
    set_fields(app, shown, status=Status.APPROVED, version=2)
    later = client.get(f"/moderate/pending/live?newest={shown}&seen={shown}.1", headers={"If-None-Match": etag})
    assert later.status_code == 200
    data = later.get_json()
    assert data["new"] == 1 and data["counts"]["pending"] == 1
    assert [c["id"] for c in data["changed"]] == [shown] and "already approved" in data["changed"][0]["message"]


def test_live_feed_is_scoped_to_the_users_sites(app, client, site, make_site, moderator):
    other = make_site("Other", origins=[OTHER_ORIGIN])
    theirs = add_comment(app, client, other, url=OTHER_ORIGIN + "/x.html")
    set_fields(app, theirs, version=3)
    data = client.get(f"/moderate/all/live?newest=1&seen={theirs}.1").get_json()
    assert data["changed"] == [] and data["counts"]["all"] == 0


# --- reader reports ------------------------------------------------------------------


def report(client, site, comment_id, reason="spam", ip="198.51.100.1", text="", token=None, author_token=""):
    """A reader's report, sent with a fresh report form's token unless one is given."""
    if token is None:
        with client.application.app_context():
            token = tokens.report_token(site.key, comment_id)
    return client.post(f"/embed/{site.key}/comments/{comment_id}/report", query_string={"url": ARTICLE},
                       data={"reason": reason, "text": text, "token": token, "author_token": author_token},
                       environ_base={"REMOTE_ADDR": ip})


def form_token(page: str) -> str:
    return html.unescape(re.search(r'<input id="token" name="token" type="hidden" value="([^"]+)">', page).group(1))


def author_token(client, site, **changes) -> str:
    """The author token a reader's browser keeps after posting a comment."""
    answer = client.post("/api/v1/comments", json=comment_fields(site, **changes), headers={"Origin": ORIGIN})
    assert answer.status_code == 201
    return answer.get_json()["author_token"]


def test_widget_has_a_report_control_on_each_comment(app, client, site):
    found = add_comment(app, client, site, status=Status.APPROVED)
    page = page_of(client.get(f"/embed/{site.key}", query_string={"url": ARTICLE}))
    assert f'/embed/{site.key}/comments/{found}/report?' in page and ">Report</a>" in page
    form = page_of(client.get(f"/embed/{site.key}/comments/{found}/report", query_string={"url": ARTICLE}))
    for choice in ("Spam", "Abuse", "Off-topic", "Other", "Anything else (optional)", "Send report"):
        assert choice in form
    assert 'name="author_token" type="hidden" value=""' in form and "widget.js" in form  # filled in by the script
    answer = report(client, site, found, token=form_token(form))
    assert answer.status_code == 200 and "Thank you for your report" in page_of(answer)
    assert comment(app, found).reports == 1


def test_a_report_without_a_good_form_token_is_refused_and_the_form_comes_back(app, client, site):
    found = add_comment(app, client, site, status=Status.APPROVED)
    other = add_comment(app, client, site, status=Status.APPROVED, body="Another one.", email="o@example.org")
    with app.app_context():
        for_other = tokens.report_token(site.key, other)
        reply_token = tokens.form_token(site.key, ARTICLE)
    with create_app({"TESTING": True, "SECRET_KEY": "someone else's", "SQLALCHEMY_DATABASE_URI": "sqlite://"}
                    ).app_context():
        forged = tokens.report_token(site.key, found)
    for token in ("", "garbage", for_other, reply_token, forged):
        answer = report(client, site, found, reason="abuse", token=token)
        assert answer.status_code == 400
        page = page_of(answer)
        assert "This report form had expired, so nothing was sent." in page
        assert form_token(page) != token and re.search(r'<input checked [^>]*value="abuse"', page)  # a fresh form, the choice kept
    app.config["COMMENT_FORM_MAX_AGE"] = -1
    assert report(client, site, found).status_code == 400
    assert comment(app, found).reports == 0


def test_a_report_form_sends_one_report(app, client, site):
    found = add_comment(app, client, site, status=Status.APPROVED)
    with app.app_context():
        token = tokens.report_token(site.key, found)
    assert report(client, site, found, token=token, ip="198.51.100.1").status_code == 200
    replayed = report(client, site, found, token=token, ip="198.51.100.2")
    assert replayed.status_code == 409
    assert "This report form was already sent, so nothing more was recorded." in page_of(replayed)
    assert comment(app, found).reports == 1


def test_reports_fill_the_reported_queue_and_hide_past_the_threshold(app, client, site, make_user, auth):
    found = add_comment(app, client, site, status=Status.APPROVED, body="Reported comment.")
    assert report(client, site, found, "spam", "198.51.100.1").status_code == 200
    assert "already reported" in page_of(report(client, site, found, "abuse", "198.51.100.1"))
    report(client, site, found, "abuse", "198.51.100.2", text="nasty")
    assert comment(app, found).reports == 2 and comment(app, found).status == Status.APPROVED
    report(client, site, found, "spam", "198.51.100.3")
    hidden = comment(app, found)
    assert hidden.status == Status.PENDING and hidden.reports == 3
    assert "hidden: reported by 3 readers (threshold 3)" in hidden.reasons
    thread = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}).get_json()
    assert thread["comments"] == []
    make_user(sites=[site])
    auth.login()
    card = card_of(page_of(client.get("/moderate/reported")), found)
    assert "reported by 3 readers: " in card and "spam 2" in card and "abuse 1" in card
    decide(client, app, found, "approve")
    assert comment(app, found).reports == 0
    assert cards(page_of(client.get("/moderate/reported"))) == []


def test_report_threshold_is_a_site_rule(app, client, make_site):
    site = make_site(report_threshold=1)
    found = add_comment(app, client, site, status=Status.APPROVED)
    report(client, site, found)
    assert comment(app, found).status == Status.PENDING


def test_reports_are_limited_per_reader(app, client, site):
    """Without an author token a reader is their IP address."""
    ids = [add_comment(app, client, site, status=Status.APPROVED, body=f"Comment {n}.", email=f"{n}@example.org")
           for n in range(11)]
    for found in ids[:10]:
        assert report(client, site, found).status_code == 200
    assert report(client, site, ids[10]).status_code == 429
    assert comment(app, ids[10]).reports == 0
    assert report(client, site, ids[10], ip="198.51.100.99").status_code == 200


def test_a_readers_token_carries_the_limit_across_addresses(app, client, site):
    reader = author_token(client, site, email="reader@example.org", body="I read a lot.")
    ids = [add_comment(app, client, site, status=Status.APPROVED, body=f"Comment {n}.", email=f"{n}@example.org")
           for n in range(11)]
    for n, found in enumerate(ids[:10]):
        assert report(client, site, found, ip=f"203.0.113.{n}", author_token=reader).status_code == 200
    refused = report(client, site, ids[10], ip="203.0.113.200", author_token=reader)
    assert refused.status_code == 429 and "many reports in the last hour" in page_of(refused)
    assert report(client, site, ids[10], ip="203.0.113.0").status_code == 200  # another reader at a used address
    with app.app_context():
        readers = [found.reader for found in db.session.scalars(sa.select(Report).order_by(Report.id))]
    assert len(set(readers[:10])) == 1 and readers[0].startswith("key:") and readers[10] == "ip:203.0.113.0"


def test_one_report_per_reader_and_comment_whatever_the_address(app, client, site):
    reader = author_token(client, site, email="reader@example.org", body="I read a lot.")
    found = add_comment(app, client, site, status=Status.APPROVED, body="Reported once.")
    assert report(client, site, found, ip="203.0.113.1", author_token=reader).status_code == 200
    again = page_of(report(client, site, found, ip="203.0.113.2", author_token=reader))
    assert "already reported this comment" in again
    assert comment(app, found).reports == 1


def test_report_needs_a_reason_and_a_published_comment_of_this_article(app, client, site):
    found = add_comment(app, client, site, status=Status.APPROVED)
    assert report(client, site, found, reason="").status_code == 400
    assert report(client, site, found, reason="bogus").status_code == 400
    pending = add_comment(app, client, site, body="Not public.", email="p@example.org")
    answer = page_of(report(client, site, pending))
    assert "already with the moderators" in answer and "Not public." not in answer
    assert client.get(f"/embed/{site.key}/comments/{pending}/report", query_string={"url": ARTICLE}).status_code == 404
    assert client.post(f"/embed/{site.key}/comments/{found}/report", query_string={"url": OTHER_ARTICLE},
                       data={"reason": "spam"}).status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


# --- stats ------------------------------------------------------------------------------


def test_stats_page_draws_svg_charts(app, client, make_site, admin):
    site = make_site(held_words=["refund"])
    for n in range(4):
        add_comment(app, client, site, body=f"Refund {n}.", email=f"{n}@example.org")
    decided = add_comment(app, client, site, body="Decide me.", email="d@example.org")
    decide(client, app, decided, "approve")
    page = page_of(client.get(f"/moderate/stats?site={site.id}"))
    assert page.count("<svg") == 3 and "style=" not in page
    assert re.search(r"<strong>5</strong> comments", page)
    assert re.search(r"<strong>100%</strong> approved", page)
    assert "held: matched held word" in page
    assert "Council backs riverside park plan" in page


def test_stats_are_for_admins(client, site, moderator):
    assert client.get("/moderate/stats").status_code == 403


def test_counts_stop_at_the_cap(app, client, site, moderator, monkeypatch):
    from moderation import queue
    monkeypatch.setattr(queue, "COUNT_CAP", 2)
    for n in range(3):
        add_comment(app, client, site, body=f"Many {n}.", email=f"m{n}@example.org")
    page = page_of(client.get("/moderate/"))
    assert re.search(r'data-tab="pending">2\+</span>', page)
    assert re.search(r'data-tab="rejected">0</span>', page)


@pytest.mark.parametrize("ids", [["²:1"], ["1:²"], ["x"], ["1:2:3"], [""]])
def test_bulk_ignores_malformed_selections(app, client, site, moderator, ids):
    found = add_comment(app, client, site)
    response = client.post("/moderate/pending/bulk/approve", data={"ids": ids}, follow_redirects=True)
    assert response.status_code == 200 and comment(app, found).status == Status.PENDING


def test_live_feed_ignores_malformed_ids(client, site, moderator):
    assert client.get("/moderate/pending/live?newest=x&seen=².1,1.²,,abc").status_code == 200


def test_pages_have_unique_ids_for_their_labels(app, client, site, make_user, auth):
    from .test_moderate import Tags
    found = [add_comment(app, client, site, body=f"Unique {n}.", email=f"u{n}@example.org") for n in range(3)]
    make_user("admin@example.org", role="admin")
    auth.login("admin@example.org")
    app.config["WTF_CSRF_ENABLED"] = True  # every form then carries its token, as in production
    for path in ("/moderate/", f"/moderate/comments/{found[0]}", "/moderate/audit", "/moderate/stats",
                 f"/admin/sites/{site.key}/settings", f"/admin/sites/{site.key}/webhooks", "/admin/privacy/"):
        ids = [attrs["id"] for _, attrs in Tags(page_of(client.get(path))).tags if "id" in attrs]
        assert len(ids) == len(set(ids)), (path, sorted(i for i in ids if ids.count(i) > 1))


def test_time_to_decision_median_and_90th_percentile(app, client, site, admin):
    from moderation import stats
    ids = [add_comment(app, client, site, body=f"Timed {n}.", email=f"t{n}@example.org") for n in range(3)]
    with app.app_context():
        for comment_id, minutes in zip(ids, (10, 20, 100)):
            found = db.session.get(Comment, comment_id)
            found.status, found.decided_by_id = Status.APPROVED, admin
            found.decided_at = found.created_at + timedelta(minutes=minutes)
        db.session.commit()
        figures = stats.for_site(site.id)
    assert figures.median_minutes == pytest.approx(20)
    assert 20 < figures.p90_minutes <= 100
    assert figures.approval_rate == 1.0 and sum(n for _, n in figures.days) == 3


@pytest.mark.parametrize(("reason", "kind"), [
    ("held: contains 3 links (limit 2)", "held: contains links"),
    ("held: contains 1 link (limit 0)", "held: contains links"),
    ("held: matched held word 'refund' (as 'REFUND') in name", "held: matched held word"),
    ("held: new author (no earlier approved comment)", "held: new author"),
])
def test_reasons_are_grouped_by_kind(reason, kind):
    from moderation.stats import reason_kind
    assert reason_kind(reason) == kind
