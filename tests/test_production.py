"""Production: SQLite write transactions under several gunicorn workers, the cached public
thread (versions, ETags, Cache-Control, pages), /healthz and the request log."""
import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from moderation import create_app, ops
from moderation.cache import PAGE_SIZE, PUBLIC
from moderation.cached_reads import CachedReads
from moderation.extensions import db
from moderation.models import Article, Comment, Site
from moderation.rules import Status, validate_rules

from .conftest import ARTICLE, ORIGIN, Auth, comment_fields, count

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_SQLITE = not os.environ.get("MODERATION_TEST_DATABASE_URL", "").startswith("postgresql")


def get_thread(client, site, headers=None, **params):
    return client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE, **params},
                      headers=headers or {})


def get_widget(client, site, headers=None, **params):
    return client.get(f"/embed/{site.key}", query_string={"url": ARTICLE, **params}, headers=headers or {})


def version(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Article.thread_version).where(Article.url == ARTICLE))


def approve(client, app, comment_id, action="approve"):
    with app.app_context():
        seen = db.session.get(Comment, comment_id).version
    response = client.post(f"/moderate/comments/{comment_id}/{action}", data={"version": seen})
    assert response.status_code == 302


@pytest.fixture
def moderator(make_user, auth):
    make_user(all_sites=True)
    auth.login()
    return auth


def add_approved(app, site, how_many, parent_id=None, start=0) -> list[int]:
    """Approved comments written straight to the database, as an import would, with the bump."""
    from moderation import comments

    with app.app_context():
        article = comments.article_for(db.session.get(Site, site.id), ARTICLE)
        if article is None:
            article = Article(site_id=site.id, url=ARTICLE, title="Riverside")
            db.session.add(article)
            db.session.flush()
        rows = [Comment(site_id=site.id, article_id=article.id, parent_id=parent_id, author_name=f"Reader {n}",
                        author_email=f"r{n}@example.org", body=f"Comment {n}", body_html=f"<p>Comment {n}</p>",
                        status=Status.APPROVED) for n in range(start, start + how_many)]
        db.session.add_all(rows)
        comments.bump_thread(article.id)
        db.session.commit()
        return [row.id for row in rows]


# --- SQLite: write transactions take the lock at BEGIN ------------------------------------

@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
def test_sqlite_writes_begin_immediate_and_reads_deferred(app):
    statements = []
    with app.app_context():
        # What SQLite itself is sent (BEGIN goes straight to the driver, past SQLAlchemy's events).
        sa.event.listen(db.engine, "checkout",
                        lambda dbapi_connection, *_: dbapi_connection.set_trace_callback(statements.append))
        for method, expected in (("POST", "BEGIN IMMEDIATE"), ("GET", "BEGIN")):
            with app.test_request_context(method=method):
                statements.clear()
                db.session.scalar(sa.select(sa.func.count()).select_from(Site))
                db.session.rollback()
                assert [sql for sql in statements if sql != "SELECT 1"][0] == expected  # after the pool's ping
        pragmas = db.session.connection().exec_driver_sql
        assert pragmas("PRAGMA journal_mode").scalar() == "wal"
        assert pragmas("PRAGMA foreign_keys").scalar() == 1
        assert pragmas("PRAGMA busy_timeout").scalar() == 10000
        assert pragmas("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragmas("PRAGMA temp_store").scalar() == 2  # MEMORY


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
def test_a_write_lock_not_had_in_time_is_a_503_and_saves_nothing(app, client, site):
    """BEGIN IMMEDIATE, sent straight to the driver, still fails as SQLAlchemy's error would: the
    error page's "try again" (503), never a 500."""
    import sqlite3

    with app.app_context():
        sa.event.listen(db.engine, "checkout",  # not 10 s for the test
                        lambda dbapi_connection, *_: dbapi_connection.execute("PRAGMA busy_timeout=50"))
        holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        response = client.post("/api/v1/comments", json=comment_fields(site), headers={"Origin": ORIGIN})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "Nothing was saved" in response.get_json()["error"]
    with app.app_context():
        assert count(Comment) == 0


def turn_is_free(app) -> bool:
    """Whether a web writer could take its turn now (db_engine.wait_for_turn's lock file)."""
    import fcntl

    with app.app_context():
        path = db.engine.url.database + "-writers"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing it drops the lock it may have taken
    return True


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
@pytest.mark.parametrize("ending", ["commit", "rollback", "error", "invalidate"])
def test_web_writers_take_turns_until_their_transaction_ends(app, site, ending):
    with app.test_request_context(method="POST"):
        db.session.scalar(sa.select(sa.func.count()).select_from(Site))
        assert not turn_is_free(app)  # held from BEGIN IMMEDIATE ...
        if ending == "commit":
            db.session.commit()
        elif ending == "rollback":
            db.session.rollback()
        elif ending == "error":
            with pytest.raises(sa.exc.IntegrityError):
                db.session.execute(sa.insert(Site).values(id=site.id, key=site.key, name="Twice", rules={}))
            db.session.rollback()
        else:
            db.session.connection().invalidate()
        assert turn_is_free(app)  # ... to the end of the transaction, however it ends
        db.session.rollback()
    with app.test_request_context(method="GET"):
        db.session.scalar(sa.select(sa.func.count()).select_from(Site))
        assert turn_is_free(app)  # reads never queue
        db.session.rollback()


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
def test_a_second_writer_waits_for_its_turn_not_in_sqlites_busy_handler(app, site, monkeypatch):
    """It begins only once the first has committed: it never sits in SQLite's busy handler,
    which sleeps in steps of up to 100 ms."""
    from moderation import db_engine

    events = []
    real_begin = db_engine.begin

    def begin(connection, sql):
        events.append((threading.current_thread().name, sql))
        real_begin(connection, sql)

    monkeypatch.setattr(db_engine, "begin", begin)
    with app.app_context():
        sa.event.listen(db.engine, "commit", lambda conn: events.append((threading.current_thread().name, "COMMIT")))

    def second_writer():
        threading.current_thread().name = "second"
        with app.test_request_context(method="POST"):
            db.session.execute(sa.update(Site).where(Site.id == site.id).values(name="Second"))
            db.session.commit()

    threading.current_thread().name, name = "first", threading.current_thread().name
    try:
        with app.test_request_context(method="POST"):
            db.session.execute(sa.update(Site).where(Site.id == site.id).values(name="First"))
            with ThreadPoolExecutor(1) as pool:
                later = pool.submit(second_writer)
                time.sleep(0.3)
                assert not later.done() and ("second", "BEGIN IMMEDIATE") not in events  # waiting for its turn
                db.session.commit()
                later.result(timeout=10)
    finally:
        threading.current_thread().name = name
    assert events == [("first", "BEGIN IMMEDIATE"), ("first", "COMMIT"),
                      ("second", "BEGIN IMMEDIATE"), ("second", "COMMIT")]
    with app.app_context():
        assert db.session.get(Site, site.id).name == "Second"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, port: int, log_path, workers: int = 4) -> subprocess.Popen:
    """`gunicorn wsgi:app` from the project root, as production runs it; waits until it answers."""
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--threads", "4", "--graceful-timeout", "2"],
        cwd=PROJECT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(150):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.1)
    stop(server)
    pytest.fail(f"gunicorn did not start:\n{open(log_path).read()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
def test_four_gunicorn_workers_posting_at_once_never_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    app.test_cli_runner().invoke(args=["init-db"], catch_exceptions=False)
    with app.app_context():
        site = Site(name="Busy", rules=validate_rules({"allowed_origins": [ORIGIN], "flood_seconds": 0,
                                                       "moderation_mode": "post"}))
        db.session.add(site)
        db.session.commit()
        db.session.refresh(site)
        db.session.expunge(site)
    port = free_port()
    env = {"MODERATION_SQLALCHEMY_DATABASE_URI": url, "MODERATION_SECRET_KEY": "concurrency-test",
           "MODERATION_RATELIMIT_ENABLED": "false", "MODERATION_REQUEST_LOG": "false"}
    server = start_gunicorn(env, port, tmp_path / "gunicorn.log")
    try:
        def post(n: int) -> tuple[int, str]:
            fields = comment_fields(site, body=f"Comment number {n} from a busy thread.",
                                    email=f"reader{n}@example.org")
            response = requests.post(f"http://127.0.0.1:{port}/api/v1/comments", json=fields,
                                     headers={"Origin": ORIGIN}, timeout=30)
            return response.status_code, response.text

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(200)))
    finally:
        stop(server)
    statuses = [status for status, _ in answers]
    assert not [text for status, text in answers if status >= 500], "a post failed on the server"
    assert statuses.count(201) == 200, sorted(set(statuses))
    assert "database is locked" not in (tmp_path / "gunicorn.log").read_text()
    with app.app_context():
        assert count(Comment) == 200
        assert db.session.scalar(sa.select(Article.thread_version)) == 201  # every publish bumped it


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite only")
def test_posting_a_comment_checks_before_it_takes_the_write_lock(app, client, site, monkeypatch):
    from moderation import db_engine

    statements = []  # (driver connection, first words): every statement, in the order they ran
    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", lambda conn, cursor, statement, *args: statements.append(
            (conn.connection.driver_connection, statement.split()[:4])))
    real_fetch, real_begin = db_engine.fetch, db_engine.begin

    def fetch(connection, sql, values, first_only):  # the statements run on the driver's cursor
        statements.append((connection, sql.split()[:4]))
        return real_fetch(connection, sql, values, first_only)

    def begin(connection, sql):  # BEGIN, on the driver's connection too
        statements.append((connection.connection.driver_connection, sql.split()))
        real_begin(connection, sql)

    monkeypatch.setattr(db_engine, "fetch", fetch)
    monkeypatch.setattr(db_engine, "begin", begin)
    assert client.post("/api/v1/comments", json=comment_fields(site), headers={"Origin": ORIGIN}).status_code == 201
    [locked] = [n for n, (_, words) in enumerate(statements) if words[0] == "BEGIN"]
    assert statements[locked][1] == ["BEGIN", "IMMEDIATE"]  # the one transaction: the checks began none
    writer = statements[locked][0]
    checks, writes = statements[:locked], statements[locked:]
    assert all(connection is not writer for connection, _ in checks)
    assert all(connection is writer for connection, _ in writes)
    assert any("bans.kind," in words for _, words in checks)
    assert any("author_trust.trusted" in words for _, words in checks)
    assert not any("bans.kind," in words or "author_trust.trusted" in words for _, words in writes)
    assert ["INSERT", "INTO", "comments", "(site_id,"] in [words for _, words in writes]
    # What a simultaneous post can change is looked up once, under the lock: the repeated-text count.
    repeated = [n for n, (_, words) in enumerate(statements) if words[:2] == ["SELECT", "count(DISTINCT"]]
    assert len(repeated) == 1 and repeated[0] > locked


def test_reads_outside_the_session_give_what_the_session_gives(app, site, post_comment):
    """read_rows converts as the column types do, with the values the query holds itself
    (Status.APPROVED), and read_detached gives the instances the session loads, detached."""
    from datetime import timedelta

    from moderation import db_engine
    from moderation.models import utcnow

    approved, pending = post_comment(site)["id"], post_comment(site, body="Another one, still waiting.")["id"]
    with app.app_context():
        comment = db.session.get(Comment, approved)
        comment.status, comment.reasons, comment.notify = Status.APPROVED, ["looks fine", "é"], True
        db.session.commit()
        query = (sa.select(Comment.id, Comment.status, Comment.reasons, Comment.notify, Comment.created_at,
                           Comment.decided_at, Site.rules)
                 .join(Site, Site.id == Comment.site_id)
                 .where(Comment.status == Status.APPROVED, Comment.created_at >= sa.bindparam("since")))
        params = {"since": utcnow() - timedelta(hours=1)}
        rows = db_engine.read_rows(db.engine, query, params)
        assert rows == [tuple(row) for row in db.session.execute(query, params)]
        assert [type(value) for value in rows[0][1:5]] == [Status, list, bool, type(params["since"])]
        assert db_engine.read_value(db.engine, sa.select(Comment.status).where(Comment.id == sa.bindparam("id")),
                                    {"id": pending}) == Status.PENDING
        assert db_engine.read_value(db.engine, sa.select(Comment.id).where(Comment.id == -1), {}) is None
        db.session.remove()

        [found] = db_engine.read_detached(db.engine, sa.select(Site).where(Site.key == sa.bindparam("key")),
                                          {"key": site.key})
        assert sa.inspect(found).detached and not sa.inspect(found).modified
        loaded = db.session.get(Site, site.id)
        columns = [column.key for column in Site.__table__.columns]
        assert [getattr(found, key) for key in columns] == [getattr(loaded, key) for key in columns]
        db.session.remove()
        statements = []
        sa.event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        db.session.add(found)  # attached as it was read: no query, and nothing to write
        assert db.session.get(Site, site.id) is found
        db.session.commit()
        assert statements == []


def test_an_insert_detached_is_the_stored_row_as_loaded_with_the_relationships_given(app, site):
    from sqlalchemy.orm.exc import DetachedInstanceError

    from moderation import db_engine
    from moderation.models import body_hash

    with app.app_context():
        article = Article(site_id=site.id, url=ARTICLE, title="T")
        db.session.add(article)
        db.session.commit()
        the_site, article_id = db.session.get(Site, site.id), article.id
        statements = []
        sa.event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        comment = db_engine.insert_detached(db.session, Comment, dict(
            site_id=site.id, article_id=article_id, author_name="Ann", author_email="ann@example.org",
            body="Inserted.", body_html="<p>Inserted.</p>", reasons=["pre-moderation"]), site=the_site, article=article)
        state = sa.inspect(comment)
        assert state.detached and not state.modified and comment not in db.session
        # The column defaults, as a flush would have set them:
        assert (comment.status, comment.version, comment.reports, comment.notify, comment.body_hash) == (
            Status.PENDING, 1, 0, False, body_hash("Inserted."))
        assert comment.created_at is not None and comment.id > 0
        assert comment.article is article and comment.site is the_site and not statements  # given, not loaded
        with pytest.raises(DetachedInstanceError):  # not given: nothing to load it through
            comment.parent
        comment_id = comment.id
        db.session.commit()
        assert comment.author_name == "Ann"  # still readable after the commit: nothing expired it
        db.session.remove()
        stored = db.session.get(Comment, comment_id)
        assert (stored.author_name, stored.reasons, stored.status, stored.article_id) == (
            "Ann", ["pre-moderation"], Status.PENDING, article_id)


def query_plan(query: sa.Select) -> str:
    """The engine's plan for a query as the app sends it, with its bound parameters (in an app context)."""
    compiled = query.compile(db.engine)
    connection = db.session.connection()
    if ON_SQLITE:
        values = tuple(compiled.params[name] for name in compiled.positiontup)
        return " ".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values))
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its index
    return " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params))


def test_the_reported_and_imported_indexes_hold_only_such_comments(app, site, post_comment):
    from moderation.queue import in_tab

    post_comment(site)
    with app.app_context():
        if ON_SQLITE:
            definitions = dict(db.session.execute(sa.text(
                "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'comments' AND type = 'index'")).all())
        else:
            definitions = dict(db.session.execute(sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'comments'")).all())
        assert re.search(r"WHERE \(?reports > 0\)?$", definitions["ix_comments_reported"])
        assert re.search(r"WHERE \(?import_ref IS NOT NULL\)?$", definitions["ux_comments_import_ref"])
        # The reported tab asks for what the index holds (reports > 0, bound as the app binds it).
        assert "ix_comments_reported" in query_plan(
            sa.select(Comment.id).where(Comment.site_id == site.id, in_tab("reported")))
        db.session.rollback()
        # Still unique where a comment has an import reference; any number have none.
        comment = db.session.scalars(sa.select(Comment)).one()
        row = {column: getattr(comment, column) for column in (
            "site_id", "article_id", "author_name", "author_email", "body", "body_html", "reasons", "status")}
        db.session.execute(sa.insert(Comment), [{**row, "import_ref": None}, {**row, "import_ref": "wp:1"}])
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.insert(Comment), [{**row, "import_ref": "wp:1"}])


def test_a_failed_insert_detached_is_the_database_error_the_session_would_raise(app, site):
    from moderation import db_engine

    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):  # no such article: the foreign key refuses it
            db_engine.insert_detached(db.session, Comment, dict(
                site_id=site.id, article_id=999_999, author_name="Ann", author_email="ann@example.org",
                body="Nowhere.", body_html="<p>Nowhere.</p>"))
        db.session.rollback()
        assert count(Comment) == 0


def post_during_the_checks_of_another(app, monkeypatch, first: dict, second: dict) -> tuple[int, int]:
    """Post `first`; when its checks are done and before it writes, post `second` in full."""
    from moderation import db_engine

    real, waiting, answers = db_engine.start_writing, [second], []

    def meanwhile():
        real()
        if waiting:
            answers.append(app.test_client().post("/api/v1/comments", json=waiting.pop(), headers={"Origin": ORIGIN}))

    monkeypatch.setattr(db_engine, "start_writing", meanwhile)
    response = app.test_client().post("/api/v1/comments", json=first, headers={"Origin": ORIGIN})
    return response.status_code, answers[0].status_code


def test_the_same_comment_posted_twice_at_once_is_stored_once(app, site, monkeypatch):
    fields = comment_fields(site)
    assert post_during_the_checks_of_another(app, monkeypatch, fields, fields) == (409, 201)
    with app.app_context():
        assert count(Comment) == 1


def test_a_flood_of_two_posts_at_once_is_caught(app, make_site, monkeypatch):
    site = make_site(flood_seconds=60)
    first = comment_fields(site)
    second = comment_fields(site, body="And another thing about the ferry steps.")
    assert post_during_the_checks_of_another(app, monkeypatch, first, second) == (429, 201)
    with app.app_context():
        assert count(Comment) == 1


def test_the_same_text_on_several_articles_at_once_is_counted(app, site, monkeypatch):
    """Held from the third article on, even when the third and an earlier one are posted at once."""
    spam = "Cheap watches at example dot com, best prices."
    post = app.test_client().post
    fields = comment_fields(site, url=f"{ORIGIN}/a.html", body=spam, email="s@example.org")
    assert post("/api/v1/comments", json=fields, headers={"Origin": ORIGIN}).status_code == 201
    first = comment_fields(site, url=f"{ORIGIN}/b.html", body=spam, email="t@example.org")
    second = comment_fields(site, url=f"{ORIGIN}/c.html", body=spam, email="u@example.org")
    assert post_during_the_checks_of_another(app, monkeypatch, first, second) == (201, 201)
    with app.app_context():
        held = db.session.scalar(sa.select(Comment).join(Article).where(Article.url == f"{ORIGIN}/b.html"))
        assert "held: repeated on 3 articles within a day" in held.reasons


def test_the_body_hash_follows_the_body_on_every_write(app, site, post_comment):
    from moderation.models import body_hash

    comment_id = post_comment(site)["id"]
    with app.app_context():
        comment = db.session.get(Comment, comment_id)
        assert comment.body_hash == body_hash("Good to see the footpath finally funded.")
        comment.body = "Edited."
        db.session.commit()
        assert db.session.get(Comment, comment_id).body_hash == body_hash("Edited.")
        db.session.execute(sa.insert(Comment), [{"site_id": site.id, "article_id": comment.article_id,
                                                 "author_name": "I", "author_email": "i@example.org",
                                                 "body": "Imported.", "body_html": "<p>Imported.</p>"}])
        imported = db.session.scalar(sa.select(Comment).where(Comment.body == "Imported."))
        assert imported.body_hash == body_hash("Imported.")


# --- The thread's version: bumped by every change the public sees --------------------------

def test_version_bumps_on_publish_and_on_decisions_that_change_the_thread(app, client, site, make_site,
                                                                           post_comment, moderator):
    first = post_comment(site)["id"]
    assert version(app) == 1  # a pending comment changes nothing public
    approve(client, app, first)
    assert version(app) == 2
    second = post_comment(site, body="Another point about the ferry steps.")["id"]
    approve(client, app, second, "reject")
    assert version(app) == 2  # pending to rejected: never public
    approve(client, app, first, "flag")
    assert version(app) == 3  # published to flagged: it leaves the thread

    post_site = make_site(name="Open", moderation_mode="post")
    post_comment(post_site)
    with app.app_context():
        article = db.session.scalar(sa.select(Article).where(Article.site_id == post_site.id))
        assert article.thread_version == 2 and article.thread_changed_at is not None


# --- The JSON thread: cached, revalidated, paged ------------------------------------------

def test_json_thread_is_public_with_weak_etag_and_304(app, client, site, post_comment, moderator):
    comment_id = post_comment(site)["id"]
    first = get_thread(client, site)
    assert first.headers["Cache-Control"] == PUBLIC == "public, max-age=0, must-revalidate, s-maxage=30"
    assert first.headers["CDN-Cache-Control"] == "public, max-age=30, stale-while-revalidate=60"
    assert "stale-while-revalidate" not in PUBLIC  # a browser must not show an old thread on reload
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and first.headers["Last-Modified"]
    again = get_thread(client, site, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""

    approve(client, app, comment_id)
    changed = get_thread(client, site, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [c["id"] for c in changed.get_json()["comments"]] == [comment_id]


def test_thread_is_rendered_once_per_version(app, client, site, post_comment, moderator, monkeypatch):
    from moderation import cache

    renders = []
    real = cache.thread_page
    monkeypatch.setattr(cache, "thread_page", lambda *args: renders.append(args) or real(*args))
    comment_id = post_comment(site)["id"]
    for _ in range(3):
        assert get_thread(client, site).status_code == 200
        assert get_widget(client, site).status_code == 200
    assert len(renders) == 2  # the JSON and the widget page, once each
    approve(client, app, comment_id)
    assert get_thread(client, site).get_json()["count"] == 1
    assert "Ada Lovelace" in get_widget(client, site).get_data(as_text=True)
    assert len(renders) == 4


def test_approval_shows_at_once_on_another_app_server(app, client, database_url, site, post_comment, moderator):
    """Two app servers, each with its own in-memory cache, on one database."""
    other_app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": database_url,
                            "SERVER_NAME": "comments.test"})
    other = other_app.test_client()
    comment_id = post_comment(site)["id"]
    assert get_thread(other, site).get_json()["count"] == 0
    assert "Ada Lovelace" not in get_widget(other, site).get_data(as_text=True)
    approve(client, app, comment_id)
    assert get_thread(other, site).get_json()["count"] == 1
    assert "Ada Lovelace" in get_widget(other, site).get_data(as_text=True)
    with other_app.app_context():
        db.engine.dispose()  # its own pool: give the connections back to PostgreSQL


def test_large_thread_pages_fifty_top_level_comments_with_their_replies(app, client, site):
    roots = add_approved(app, site, 120)
    replies = add_approved(app, site, 2, parent_id=roots[0], start=500)
    deep = add_approved(app, site, 1, parent_id=replies[0], start=600)
    last_reply = add_approved(app, site, 1, parent_id=roots[-1], start=700)

    first = get_thread(client, site).get_json()
    assert set(first) == {"url", "title", "count", "comments", "next"}
    assert first["count"] == 124  # every approved comment of the thread, not only this page's
    ids = [c["id"] for c in first["comments"]]
    assert ids == sorted(roots[:PAGE_SIZE] + replies + deep)  # oldest first, replies included
    assert first["next"] == roots[PAGE_SIZE - 1]

    second = get_thread(client, site, after=first["next"]).get_json()
    assert [c["id"] for c in second["comments"]] == roots[PAGE_SIZE:2 * PAGE_SIZE]
    third = get_thread(client, site, after=second["next"]).get_json()
    assert [c["id"] for c in third["comments"]] == roots[2 * PAGE_SIZE:] + last_reply
    assert "next" not in third and third["count"] == 124


def test_reply_to_a_hidden_comment_stays_in_the_thread(app, client, site):
    [root] = add_approved(app, site, 1)
    [reply] = add_approved(app, site, 1, parent_id=root, start=1)
    with app.app_context():
        db.session.get(Comment, root).status = Status.REJECTED
        db.session.commit()
    add_approved(app, site, 0)  # bumps the version, as a decision would
    thread = get_thread(client, site).get_json()
    assert [c["id"] for c in thread["comments"]] == [reply] and thread["count"] == 1


def test_widget_pages_with_a_load_more_link_that_needs_no_script(app, client, site):
    roots = add_approved(app, site, 60)
    page = get_widget(client, site, origin=ORIGIN).get_data(as_text=True)
    assert "60 comments" in page
    assert page.count('class="comment depth-') == PAGE_SIZE
    link = re.search(r'<a href="([^"]+)">Load more comments</a>', page)
    assert link
    more = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert more.count('class="comment depth-') == 10
    assert f'id="comment-{roots[-1]}"' in more and f'id="comment-{roots[0]}"' not in more
    assert "Load more comments" not in more


def test_report_links_built_once_per_page_are_those_url_for_builds(app, client, site):
    from flask import url_for

    ids = add_approved(app, site, 3)
    title = "Budget /0/report & more"  # the id's place is found in the path, never in the query
    page = get_widget(client, site, origin=ORIGIN, title=title).get_data(as_text=True)
    links = re.findall(r'<a class="report" href="([^"]+)"', page)
    with app.test_request_context():
        expected = [url_for("embed.report", key=site.key, comment_id=n, url=ARTICLE, title=title, origin=ORIGIN)
                    for n in ids]
    assert [link.replace("&amp;", "&") for link in links] == expected


# --- The widget's page: shared by readers, but never a reader's own --------------------------

def test_widget_is_rendered_once_but_each_answer_has_a_fresh_single_use_token(app, client, site):
    """A form token posts one comment: the page is never shared by a CDN nor revalidated to a 304."""
    from moderation import tokens

    first, second = get_widget(client, site), get_widget(client, site)
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "ETag" not in first.headers and "CDN-Cache-Control" not in first.headers
    assert "frame-ancestors " + ORIGIN in first.headers["Content-Security-Policy"]
    token = re.compile(r'name="token" type="hidden" value="([^"]+)"')
    one, two = token.search(first.get_data(as_text=True)), token.search(second.get_data(as_text=True))
    assert one and two and one.group(1) != two.group(1)
    with app.test_request_context():
        assert tokens.form_token_valid(two.group(1), site.key, ARTICLE)
    assert get_widget(client, site, headers={"If-None-Match": "*"}).status_code == 200



def test_a_change_of_the_rules_renders_the_widget_again_and_rules_are_parsed_once(app, client, make_site,
                                                                                   flask_calls):
    """The site's rules are part of the widget's cache key, by a digest: its word lists may hold
    thousands of entries, and are parsed once per change, not on every read."""
    from moderation import cache

    words = [f"word{n}" for n in range(4000)]
    site = make_site(held_words=words)
    get_widget(client, site)
    cache.site_rules.cache_clear()
    flask_calls.clear()
    for _ in range(3):
        assert get_widget(client, site).status_code == 200
    assert flask_calls == []  # hits
    assert cache.site_rules.cache_info().misses == 1 and cache.site_rules.cache_info().hits == 2

    with app.app_context():
        stored = db.session.get(Site, site.id)
        stored.rules = validate_rules({**stored.rules, "held_words": [*words, "ferry"]})
        db.session.commit()
    page = get_widget(client, site)
    assert flask_calls == ["/embed/" + site.key]  # new rules: rendered again
    assert page.status_code == 200

def test_widget_after_posting_is_not_stored_anywhere(app, client, site):
    fields = comment_fields(site)
    form = get_widget(client, site).get_data(as_text=True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', form).group(1)
    fields.update(token=token, url=ARTICLE)
    fields.pop("parent_id")
    posted = client.post(f"/embed/{site.key}", data=fields, follow_redirects=True)
    assert "awaiting moderation" in posted.get_data(as_text=True)
    assert posted.headers["Cache-Control"] == "no-store"
    assert "ETag" not in posted.headers and "CDN-Cache-Control" not in posted.headers


# --- Cache hits, answered in front of Flask (cached_reads.py) --------------------------------

def flask_only(app):
    """A test client on the app without the cache-hit shortcut: Flask's own answers."""
    from werkzeug.test import Client

    assert isinstance(app.wsgi_app, CachedReads)
    return Client(app.wsgi_app.wsgi_app, app.response_class)


@pytest.fixture
def flask_calls(app, monkeypatch):
    """The requests that reached Flask, i.e. that the shortcut did not answer."""
    calls = []
    inner = app.wsgi_app.wsgi_app
    monkeypatch.setattr(app.wsgi_app, "wsgi_app",
                        lambda environ, start_response: calls.append(environ["PATH_INFO"]) or inner(environ, start_response))
    return calls


def comparable(response) -> tuple:
    """Status, headers and body, but for what differs on every answer: the date, the request id
    and the widget's form token (and so its length)."""
    assert int(response.headers.get("Content-Length", 0)) == len(response.get_data())
    headers = sorted((name, value) for name, value in response.headers.items()
                     if name not in ("Date", "X-Request-ID", "Content-Length"))
    body = response.get_data(as_text=True)
    return response.status_code, headers, re.sub(r'name="token" type="hidden" value="[^"]+"', "TOKEN", body)


@pytest.mark.parametrize("params, headers", [
    ({}, {}),
    ({}, {"Origin": ORIGIN}),
    ({}, {"Origin": "https://elsewhere.example"}),
    ({"after": "1"}, {}),
])
def test_a_cached_json_thread_is_answered_before_flask_exactly_as_flask_answers(
        app, client, site, post_comment, moderator, flask_calls, params, headers):
    approve(client, app, post_comment(site)["id"])
    flask = flask_only(app)
    first = flask.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE, **params}, headers=headers)
    flask_calls.clear()
    hit = get_thread(client, site, headers=headers, **params)
    assert flask_calls == []  # answered from the cache, in front of Flask
    assert comparable(hit) == comparable(first)
    assert ("Access-Control-Allow-Origin" in hit.headers) == (headers.get("Origin") == ORIGIN)

    etag = hit.headers["ETag"]
    conditional = {**headers, "If-None-Match": etag}
    unchanged = get_thread(client, site, headers=conditional, **params)
    assert unchanged.status_code == 304 and flask_calls == []
    assert comparable(unchanged) == comparable(flask.get(
        "/api/v1/threads", query_string={"site": site.key, "url": ARTICLE, **params}, headers=conditional))


@pytest.mark.parametrize("params", [{}, {"origin": ORIGIN, "title": "Riverside"}, {"origin": "https://evil.example"}])
def test_a_cached_widget_page_is_answered_before_flask_exactly_as_flask_answers(
        app, client, site, post_comment, moderator, flask_calls, params):
    from moderation import tokens

    approve(client, app, post_comment(site)["id"])
    first = flask_only(app).get(f"/embed/{site.key}", query_string={"url": ARTICLE, **params})
    flask_calls.clear()
    hit = get_widget(client, site, **params)
    assert flask_calls == []
    assert comparable(hit) == comparable(first)
    assert "Ada Lovelace" in hit.get_data(as_text=True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', hit.get_data(as_text=True)).group(1)
    with app.test_request_context():
        assert tokens.form_token_valid(token, site.key, ARTICLE)  # fresh and single-use, as from Flask


def test_everything_but_a_plain_cache_hit_goes_to_flask(app, client, site, post_comment, moderator, flask_calls):
    approve(client, app, post_comment(site)["id"])
    get_thread(client, site), get_widget(client, site)  # both cached now
    flask_calls.clear()
    assert get_thread(client, site, headers={"Range": "bytes=0-10"}).status_code in (200, 206)
    assert get_thread(client, site, headers={"If-Modified-Since": "Tue, 01 Dec 2099 00:00:00 GMT"}).status_code == 304
    assert client.head("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}).status_code == 200
    assert get_widget(client, site, reply_to="1").status_code == 200
    assert client.get("/api/v1/threads", query_string={"site": "nosuchsite", "url": ARTICLE}).status_code == 404
    assert client.get(f"/embed/{site.key}", query_string={"url": "https://elsewhere.example/a"}).status_code == 403
    assert len(flask_calls) == 6
    flask_calls.clear()
    get_thread(client, site, after="7")  # a page not cached yet: Flask renders it, then it is a hit
    get_thread(client, site, after="7")
    assert len(flask_calls) == 1


@pytest.mark.parametrize("query_string", [
    "site=abc&url=https%3A%2F%2Fnews.example.org%2Fa%3Fb%3Dc&after=7",
    "url=https://news.example.org/caf%C3%A9&url=second&site=",  # a repeated key, a blank value
    "url=%FF%FE&site=abc",  # bytes that are not UTF-8 stay percent-encoded, as in request.args
    "site=a+b&title=Caf\u00c3\u00a9",  # a plus; raw UTF-8 bytes as WSGI passes them, read as latin-1
    "",
])
def test_the_shortcut_reads_a_query_string_as_flask_does(query_string):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from moderation.cached_reads import query_args

    environ = EnvironBuilder().get_environ()
    environ["QUERY_STRING"] = query_string
    assert list(query_args(query_string).items(multi=True)) == list(Request(environ).args.items(multi=True))
    assert query_args(query_string) is query_args(query_string)  # parsed once per string


def test_a_cache_that_fails_on_a_hit_sends_the_read_to_flask(app, client, site, post_comment, moderator,
                                                              flask_calls, monkeypatch, caplog):
    from moderation.cache import cache

    approve(client, app, post_comment(site)["id"])
    assert get_thread(client, site).status_code == 200

    def down(*args):
        raise ConnectionError("the cache is down")

    with app.app_context():  # the backend itself: the shortcut reads it without Flask-Caching's proxy
        monkeypatch.setattr(cache.cache, "get", down)
    flask_calls.clear()
    response = get_thread(client, site)
    assert response.status_code == 200 and response.get_json()["count"] == 1
    assert flask_calls == ["/api/v1/threads"] and "The cache is unreachable" in caplog.text


def test_a_read_connection_the_database_dropped_is_replaced_at_once(app, client, site, post_comment, moderator,
                                                                   flask_calls):
    """A cache hit runs its one query on a connection of its own (db_engine.reader). When the
    server drops it (a restart, a failover, an idle timeout), the next read opens another
    instead of answering 503."""
    from moderation import db_engine

    approve(client, app, post_comment(site)["id"])
    assert get_thread(client, site).status_code == 200
    with app.app_context():
        readers = db_engine._readers[db.engine]
        assert len(readers) == 1
        dropped = next(iter(readers.values()))
        if ON_SQLITE:
            dropped.close()
        else:
            db.session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped.info.backend_pid})
            db.session.commit()
    flask_calls.clear()
    hit = get_thread(client, site)
    assert hit.status_code == 200 and hit.get_json()["count"] == 1
    assert flask_calls == []  # still answered by the shortcut, on a new connection
    with app.app_context():
        assert next(iter(db_engine._readers[db.engine].values())) is not dropped


def test_the_app_leaves_the_date_header_to_the_http_server(app, client, site, post_comment, moderator, flask_calls):
    """gunicorn and werkzeug's server send Date themselves; one from the app would be a second."""
    approve(client, app, post_comment(site)["id"])
    flask_calls.clear()
    rendered = get_thread(client, site)
    hit = get_thread(client, site)
    assert flask_calls == ["/api/v1/threads"]  # rendered by Flask, then a hit in front of it
    assert "Date" not in rendered.headers and "Date" not in hit.headers
    assert "Last-Modified" in rendered.headers and rendered.headers["Last-Modified"] == hit.headers["Last-Modified"]


def test_an_approval_shows_at_once_through_another_app_sharing_the_cache(app, client, database_url, site,
                                                                       post_comment, moderator, tmp_path):
    """Two app servers sharing one cache (a directory here; Redis in production) and one database."""
    shared = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    node_a = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": database_url,
                         "WTF_CSRF_ENABLED": False, **shared})
    node_b = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": database_url,
                         **shared})
    comment_id = post_comment(site)["id"]
    b = node_b.test_client()
    for _ in range(2):  # the second answer is a hit of the shared cache
        assert get_thread(b, site).get_json()["count"] == 0
        assert "Ada Lovelace" not in get_widget(b, site).get_data(as_text=True)
    a = node_a.test_client()
    Auth(a).login()
    approve(a, node_a, comment_id)
    assert [c["id"] for c in get_thread(b, site).get_json()["comments"]] == [comment_id]
    assert "Ada Lovelace" in get_widget(b, site).get_data(as_text=True)
    for node in (node_a, node_b):
        with node.app_context():
            db.engine.dispose()


def test_an_approval_shows_at_once_on_every_worker_with_its_own_memory_cache(app, client, database_url, site,
                                                                           post_comment, moderator):
    """gunicorn workers each hold their own in-memory cache: the version in the database decides."""
    workers = [create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": database_url})
               for _ in range(3)]
    comment_id = post_comment(site)["id"]
    for worker in workers:
        for _ in range(2):
            assert get_thread(worker.test_client(), site).get_json()["count"] == 0
    approve(client, app, comment_id)
    for worker in workers:
        assert get_thread(worker.test_client(), site).get_json()["count"] == 1
        assert "Ada Lovelace" in get_widget(worker.test_client(), site).get_data(as_text=True)
        with worker.app_context():
            db.engine.dispose()


# --- Operations: /healthz and the request log -----------------------------------------------

def test_healthz_answers_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path):
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": missing})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] == "unavailable"


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def request_log():
    handler = Lines()
    logging.getLogger("moderation.requests").addHandler(handler)
    yield handler.lines
    logging.getLogger("moderation.requests").removeHandler(handler)


def test_one_json_log_line_per_request_with_its_id(client, site, request_log):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-1234"})
    assert response.headers["X-Request-ID"] == "lb-1234"
    generated = get_thread(client, site).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    hit = get_thread(client, site, headers={"X-Request-ID": "lb-5678"})  # a cache hit, answered before Flask
    assert hit.headers["X-Request-ID"] == "lb-5678"
    first, second, third = (json.loads(line) for line in request_log)
    assert first["request_id"] == "lb-1234" and first["method"] == "GET" and first["path"] == "/healthz"
    assert first["status"] == 200 and first["duration_ms"] >= 0
    assert second["request_id"] == generated and second["path"] == "/api/v1/threads"
    assert third == {"request_id": "lb-5678", "method": "GET", "path": "/api/v1/threads", "status": 200,
                     "duration_ms": third["duration_ms"]}


def test_a_request_id_that_could_forge_log_lines_is_replaced(client, request_log):
    response = client.get("/healthz", headers={"X-Request-ID": 'x"} {"status": 500'})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert json.loads(request_log[0])["request_id"] == response.headers["X-Request-ID"]


@contextlib.contextmanager
def written_by_its_own_handler():
    """What the request log's own handler writes while it is the logger's only handler, as in
    production. (Within the test: pytest attaches its capture handlers to every logger that does
    not propagate, at the start of each test phase.)"""
    logger = logging.getLogger("moderation.requests")
    assert ops.STDERR in logger.handlers
    handlers, logger.handlers = logger.handlers, [ops.STDERR]
    stream = io.StringIO()
    previous = ops.STDERR.setStream(stream)
    try:
        yield stream
    finally:
        ops.STDERR.setStream(previous)
        logger.handlers = handlers


def test_the_request_line_is_written_as_the_log_handler_writes_it(client, site, monkeypatch):
    records = []
    monkeypatch.setattr(ops, "record_of", lambda line, made=ops.record_of: records.append(line) or made(line))
    logger = logging.getLogger("moderation.requests")
    with written_by_its_own_handler() as stream:
        client.get("/healthz", headers={"X-Request-ID": "straight-1"})
        get_thread(client, site)
        get_thread(client, site, headers={"X-Request-ID": "straight-2"})  # a cache hit, answered before Flask
        assert records == []  # straight to the stream, no LogRecord on the way
        # An operator's filter: the lines go through logging again, and it decides.
        logger.addFilter(dropping := lambda record: "dropped" not in record.getMessage())
        try:
            client.get("/healthz", headers={"X-Request-ID": "dropped"})
            client.get("/healthz", headers={"X-Request-ID": "through-logging"})
        finally:
            logger.removeFilter(dropping)
    assert len(records) == 2
    lines = stream.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 5
    direct, _, hit, through = (json.loads(line) for line in lines[:-1])
    assert direct == {"request_id": "straight-1", "method": "GET", "path": "/healthz", "status": 200,
                      "duration_ms": direct["duration_ms"]}
    assert hit["request_id"] == "straight-2" and hit["path"] == "/api/v1/threads"
    assert through == {**direct, "request_id": "through-logging", "duration_ms": through["duration_ms"]}


def test_a_request_log_that_cannot_be_written_does_not_fail_the_request(client):
    def broken(text):
        raise BrokenPipeError("the log's reader went away")

    with written_by_its_own_handler() as stream:
        stream.write = broken
        assert client.get("/healthz").status_code == 200
