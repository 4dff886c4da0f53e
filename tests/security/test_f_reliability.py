"""Section F of security-cases.md: reliability and concurrency, cases 48-54, and faults: the
database going away and coming back, and a worker killed while readers post.

Case 53: mail goes through an outbox written in the comment's own transaction and sent by
`send-mail` afterwards, against a real local SMTP server, one that refuses and one that hangs.
Case 54: a backup taken while the service writes restores into a service that answers with
every comment committed before it; the kill test shows the store stays consistent and loses
nothing acknowledged. The tests marked slow run gunicorn for real and run in their own CI step."""
import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from moderation import create_app, notifications, rules
from moderation.extensions import db
from moderation.models import AuditEvent, Comment, Site
from moderation.notifications import OutboxMessage
from moderation.rules import Status

from ..conftest import ARTICLE, ORIGIN, Auth, comment_fields
from ..test_notifications import free_port
from .gunicorn_run import Gunicorn, Posters
from .support import TOKEN, comment_ids, form_data, post_api, post_form, stored


# --- 48: the database fails ----------------------------------------------------------------


def failing_commit(*args, **kwargs):
    raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


def test_case_48_commit_failure_gives_503_keeps_the_text_and_stores_nothing(app, client, site, monkeypatch):
    data = form_data(client, site, body="A long reply I do not want to type again.")
    monkeypatch.setattr(db.session, "commit", failing_commit)
    response = post_form(client, site, data)
    assert response.status_code == 503 and response.headers["Retry-After"]
    page = response.get_data(as_text=True)
    assert "Nothing was saved" in page and "A long reply I do not want to type again." in page
    api = post_api(client, site)
    assert api.status_code == 503 and "Nothing was saved" in api.get_json()["error"]
    monkeypatch.undo()
    assert comment_ids(app) == []


def sqlite_app(path):
    return create_app({"TESTING": True, "SECRET_KEY": "fault-test", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                       "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}, "RATELIMIT_ENABLED": False})


def test_case_48_sqlite_file_gone_gives_503_and_service_recovers(tmp_path):
    home = tmp_path / "data"
    home.mkdir()
    app = sqlite_app(home / "moderation.sqlite")
    with app.app_context():
        upgrade(revision="heads")
        site = Site(name="Fault Gazette", rules=rules.validate_rules({"allowed_origins": [ORIGIN], "flood_seconds": 0}))
        db.session.add(site)
        db.session.commit()
        key = site.key
    client = app.test_client()
    fields = {**comment_fields(site), "site": key}
    assert client.post("/api/v1/comments", json=fields, headers={"Origin": ORIGIN}).status_code == 201

    shutil.move(home, tmp_path / "away")  # the disk is gone
    for attempt in range(3):
        response = client.post("/api/v1/comments", json={**fields, "body": f"Lost {attempt}"}, headers={"Origin": ORIGIN})
        assert response.status_code == 503 and "database" in response.get_json()["error"]
        assert client.get("/api/v1/threads", query_string={"site": key, "url": ARTICLE}).status_code == 503

    shutil.move(tmp_path / "away", home)  # ...and back: no restart needed
    assert client.get("/api/v1/threads", query_string={"site": key, "url": ARTICLE}).status_code == 200
    assert client.post("/api/v1/comments", json={**fields, "body": "After."}, headers={"Origin": ORIGIN}).status_code == 201
    with app.app_context():
        assert [c.body for c in db.session.scalars(sa.select(Comment).order_by(Comment.id))] == [
            fields["body"], "After."]


class Proxy:
    """A TCP proxy in front of PostgreSQL that can be cut and restored, like a database restart."""

    def __init__(self, target):
        self.target, self.sockets, self.listener = target, [], None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def start(self):
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets = []

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def test_case_48_postgresql_down_gives_503_and_service_recovers(database_url, site):
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("runs on PostgreSQL (MODERATION_TEST_DATABASE_URL)")
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    app = create_app({"TESTING": True, "SECRET_KEY": "fault-test", "RATELIMIT_ENABLED": False,
                      "SQLALCHEMY_DATABASE_URI": url.set(host="127.0.0.1", port=proxy.port).render_as_string(False),
                      "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "connect_args": {"connect_timeout": 2}}})
    client = app.test_client()
    thread = {"site": site.key, "url": ARTICLE}
    try:
        assert client.get("/api/v1/threads", query_string=thread).status_code == 200
        proxy.stop()
        response = client.post("/api/v1/comments", json=comment_fields(site, body="Lost."), headers={"Origin": ORIGIN})
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert client.get("/api/v1/threads", query_string=thread).status_code == 503
        proxy.start()
        assert client.get("/api/v1/threads", query_string=thread).status_code == 200
        assert post_api(client, site, body="After.").status_code == 201
    finally:
        proxy.stop()
        with app.app_context():
            db.engine.dispose()
    with create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}).app_context():
        assert [c.body for c in db.session.scalars(sa.select(Comment))] == ["After."]


# --- 49-50: expired and repeated forms ----------------------------------------------------


def test_case_49_expired_form_comes_back_with_a_fresh_token_and_the_text(app, client, site):
    data = form_data(client, site, body="Written over a long lunch.")
    app.config["COMMENT_FORM_MAX_AGE"] = -1
    response = post_form(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Written over a long lunch." in page and "expired" in page
    app.config["COMMENT_FORM_MAX_AGE"] = 3600
    fresh = TOKEN.search(page).group(1)
    assert fresh != data["token"]
    assert post_form(client, site, {**data, "token": fresh}).status_code == 303
    assert len(comment_ids(app)) == 1


def test_case_50_double_click_creates_one_comment(app, client, site):
    data = form_data(client, site)
    first, second = post_form(client, site, data), post_form(client, site, data)
    assert first.status_code == second.status_code == 303
    assert len(comment_ids(app)) == 1
    assert "awaiting moderation" in client.get(second.location).get_data(as_text=True)


def test_case_50_retry_with_changed_text_still_creates_one_comment(app, client, site):
    data = form_data(client, site)
    assert post_form(client, site, data).status_code == 303
    assert post_form(client, site, {**data, "body": "Edited before the retry."}).status_code == 303
    assert len(comment_ids(app)) == 1


def test_case_50_simultaneous_posts_of_one_form_create_one_comment(app, site):
    client = app.test_client()
    data = form_data(client, site)
    barrier, answers = threading.Barrier(8), []

    def send():
        own = app.test_client()
        barrier.wait()
        answers.append(post_form(own, site, data).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [303] * 8
    assert len(comment_ids(app)) == 1


def test_case_50_api_duplicate_is_409(app, client, site):
    assert post_api(client, site).status_code == 201
    again = post_api(client, site)
    assert again.status_code == 409 and again.get_json()["error"]
    assert len(comment_ids(app)) == 1


# --- 52: two moderators -------------------------------------------------------------------


def test_case_52_racing_moderators_one_decision_applied_both_audited(app, client, site, make_user):
    comment_id = post_api(client, site).get_json()["id"]
    make_user("first@example.org", sites=[site])
    make_user("second@example.org", sites=[site])
    moderators = [app.test_client(), app.test_client()]
    for moderator, email in zip(moderators, ("first@example.org", "second@example.org")):
        assert Auth(moderator).login(email).status_code == 302
    barrier, answers = threading.Barrier(2), {}

    def decide(moderator, action):
        barrier.wait()
        answers[action] = moderator.post(f"/moderate/comments/{comment_id}/{action}", data={"version": 1}).status_code

    threads = [threading.Thread(target=decide, args=pair) for pair in zip(moderators, ("approve", "reject"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers.values()) <= {302, 303}
    with app.app_context():
        comment = db.session.get(Comment, comment_id)
        actions = sorted(db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.comment_id == comment_id)))
        assert comment.version == 2
        winner = "approve" if comment.status == Status.APPROVED else "reject"
        assert comment.status in (Status.APPROVED, Status.REJECTED)
        loser = {"approve": "reject", "reject": "approve"}[winner]
        assert actions == sorted([winner, f"{loser}-refused"])


def test_case_52_decision_on_a_comment_changed_since_it_was_loaded_is_refused(app, client, site, make_user):
    comment_id = post_api(client, site).get_json()["id"]
    make_user(sites=[site])
    Auth(client).login()
    with app.app_context():  # the comment changed (an edit, a rule) after the moderator loaded it
        db.session.execute(sa.update(Comment).where(Comment.id == comment_id).values(version=Comment.version + 1))
        db.session.commit()
    response = client.post(f"/moderate/comments/{comment_id}/approve", data={"version": 1}, follow_redirects=True)
    assert "not applied" in response.get_data(as_text=True)
    assert stored(app, comment_id).status == Status.PENDING
    with app.app_context():
        (event,) = db.session.scalars(sa.select(AuditEvent))
        assert event.action == "approve-refused" and event.actor == "mod@example.org"


# --- 53: SMTP down or slow ----------------------------------------------------------------


def outbox(app) -> list[OutboxMessage]:
    with app.app_context():
        messages = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return messages


def send_mail(app, now=None) -> notifications.Drained:
    with app.app_context():
        return notifications.drain(now)


def test_case_53_comment_commits_while_smtp_hangs_or_refuses_and_mail_is_sent_once_later(
        app, client, site, make_user, inbox, hanging_smtp, mail_each, runner):
    mail_each(make_user("mod@example.org", sites=[site]), site)
    working = app.config["MAIL_PORT"]
    app.config.update(MAIL_PORT=hanging_smtp.port, MAIL_TIMEOUT=1)
    assert post_api(client, site, body="Posted while the mail server hangs.").status_code == 201
    assert post_form(client, site, form_data(client, site, body="And through the form.")).status_code == 303
    assert len(comment_ids(app)) == 2
    assert hanging_smtp.accepted == []  # no request waited on SMTP: mail is sent after the commit
    assert [m.sent_at for m in outbox(app)] == [None, None]

    assert send_mail(app) == notifications.Drained(retrying=2)  # the hang ends in a timeout
    assert len(hanging_smtp.accepted) >= 1
    first = outbox(app)
    assert all(m.attempts == 1 and m.sent_at is None and "timed out" in m.last_error for m in first)

    app.config["MAIL_PORT"] = free_port()  # now nothing listens at all
    later = max(m.next_attempt_at for m in first) + timedelta(seconds=1)
    assert send_mail(app, later) == notifications.Drained(retrying=2)
    assert all(m.attempts == 2 and "refused" in m.last_error.lower() for m in outbox(app))
    assert inbox.messages == []

    app.config["MAIL_PORT"] = working  # the mail server is back
    result = runner.invoke(args=["send-mail"])
    assert "Sent 0" in result.output  # not due yet: the back-off holds
    much_later = max(m.next_attempt_at for m in outbox(app)) + timedelta(seconds=1)
    assert send_mail(app, much_later) == notifications.Drained(sent=2)
    assert send_mail(app, much_later + timedelta(days=1)) == notifications.Drained()
    bodies = sorted(message.get_content() for _, message in inbox.messages)
    assert len(bodies) == 2 and "And through the form." in bodies[0] and "while the mail server hangs" in bodies[1]
    assert all(m.sent_at is not None and m.attempts == 3 for m in outbox(app))


def test_case_53_two_mail_workers_at_once_send_each_message_once(app, client, site, make_user, inbox, mail_each):
    """On PostgreSQL both workers read the same due rows and race to claim them (without the
    conditional claim this sends 12); SQLite's single writer serialises the claims anyway."""
    mail_each(make_user("mod@example.org", sites=[site]), site)
    for n in range(6):
        assert post_api(client, site, body=f"Held comment number {n}.", email=f"r{n}@example.org").status_code == 201
    delivered = inbox.handle_DATA

    async def slow_delivery(server, session, envelope):  # long enough for the workers to overlap
        await asyncio.sleep(0.2)
        return await delivered(server, session, envelope)

    inbox.handle_DATA = slow_delivery
    barrier, reports = threading.Barrier(2), []

    def worker():
        barrier.wait()
        reports.append(send_mail(app))

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert sum(report.sent for report in reports) == 6
    ids = [message["Message-ID"] for _, message in inbox.messages]
    assert len(ids) == 6 == len(set(ids))


# --- 54: backups taken while the service writes restore into a working service ----------


class Writer:
    """One reader after another posting through the app in a thread; records what got 201."""

    def __init__(self, app, key):
        self.app, self.key, self.acknowledged = app, key, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._post, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)

    def _post(self):
        client, n = self.app.test_client(), 0
        while not self.stop.is_set():
            n += 1
            answer = client.post("/api/v1/comments", headers={"Origin": ORIGIN}, json={
                "site": self.key, "url": ARTICLE, "title": "Backup", "name": f"Reader {n}",
                "email": f"reader{n}@example.org", "body": f"Comment number {n}, before or after the backup."})
            assert answer.status_code == 201, answer.get_json()
            self.acknowledged.append(answer.get_json()["id"])

    def wait_for(self, count):
        deadline = time.monotonic() + 30
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acknowledged) >= count


def published_site(app) -> str:
    with app.app_context():
        site = Site(name="Backup Gazette", rules=rules.validate_rules(
            {"allowed_origins": [ORIGIN], "flood_seconds": 0, "moderation_mode": "post"}))
        db.session.add(site)
        db.session.commit()
        return site.key


def thread_ids(client, key) -> list[int]:
    """Every comment id the service shows in the article's thread, page by page."""
    ids, after = [], None
    while True:
        query = {"site": key, "url": ARTICLE, **({"after": after} if after else {})}
        response = client.get("/api/v1/threads", query_string=query)
        assert response.status_code == 200
        page = response.get_json()
        ids += [comment["id"] for comment in page["comments"]]
        if "next" not in page:
            return ids
        after = page["next"]


def backup_while_writing(app, key, take_backup) -> tuple[set[int], set[int]]:
    """(acknowledged before the backup began, acknowledged in all) with take_backup() run mid-stream."""
    with Writer(app, key) as writer:
        writer.wait_for(20)
        before = set(writer.acknowledged)
        take_backup()
        writer.wait_for(len(before) + 10)  # the writer kept going during and after the backup
    return before, set(writer.acknowledged)


def test_case_54_sqlite_backup_taken_while_writing_restores_into_a_working_service(tmp_path):
    live = tmp_path / "live" / "moderation.sqlite"
    live.parent.mkdir()
    app = create_app({"TESTING": True, "SECRET_KEY": "backup-test", "RATELIMIT_ENABLED": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{live}"})  # pooled, as in production: WAL in use
    with app.app_context():
        upgrade(revision="heads")
    key = published_site(app)
    backup = tmp_path / "backups" / "moderation-backup.sqlite"
    backup.parent.mkdir()

    def take_backup():  # the README's command
        subprocess.run(["sqlite3", str(live), f".backup '{backup}'"], check=True, timeout=60)

    before, written = backup_while_writing(app, key, take_backup)
    with sqlite3.connect(backup) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    fresh = tmp_path / "restored" / "moderation.sqlite"
    fresh.parent.mkdir()
    shutil.copy(backup, fresh)
    restored = sqlite_app(fresh)
    with restored.app_context():
        upgrade(revision="heads")  # init-db after a restore, as the README says: nothing to do
    shown = set(thread_ids(restored.test_client(), key))
    assert before <= shown <= written and len(before) >= 20
    assert post_api(restored.test_client(), Site(key=key), body="Posted after the restore.").status_code == 201


def libpq(url: sa.engine.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_case_54_pg_dump_taken_while_writing_restores_into_a_working_service(app, database_url, tmp_path):
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("runs on PostgreSQL (MODERATION_TEST_DATABASE_URL)")
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore are not installed")
    app.config["COMMENT_RATE_LIMIT"] = "100000 per minute"
    key = published_site(app)
    dump = tmp_path / "moderation.dump"

    def take_backup():  # the README's command
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", libpq(url)], check=True, timeout=120)

    before, written = backup_while_writing(app, key, take_backup)
    fresh = url.set(database=f"{url.database}_restore_{os.getpid()}")
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{fresh.database}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{fresh.database}"'))
    restored = create_app({"TESTING": True, "SECRET_KEY": "restore-test", "RATELIMIT_ENABLED": False,
                           "SQLALCHEMY_DATABASE_URI": fresh.render_as_string(hide_password=False),
                           "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}})
    try:
        subprocess.run(["pg_restore", "--clean", "--if-exists", f"--dbname={libpq(fresh)}", str(dump)],
                       check=True, timeout=120, capture_output=True)
        with restored.app_context():
            upgrade(revision="heads")
        shown = set(thread_ids(restored.test_client(), key))
        assert before <= shown <= written and len(before) >= 20
        assert post_api(restored.test_client(), Site(key=key), body="Posted after the restore.").status_code == 201
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{fresh.database}" WITH (FORCE)'))
        admin.dispose()


# --- 51, 54: real gunicorn workers (slow) -------------------------------------------------


@pytest.fixture
def served(app, database_url, tmp_path):
    """(app, url, site key) of the database gunicorn serves: on SQLite a file of its own, so
    whatever a killed worker leaves behind stays out of the other tests' database."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'served.sqlite'}"
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            upgrade(revision="heads")
    else:
        url = database_url
    with app.app_context():
        site = Site(name="Served Gazette", rules=rules.validate_rules({"allowed_origins": [ORIGIN], "flood_seconds": 0}))
        db.session.add(site)
        db.session.commit()
        key = site.key
    yield app, url, key


def stored_ids(app) -> set[int]:
    with app.app_context():
        return set(db.session.scalars(sa.select(Comment.id)))


@pytest.mark.slow
def test_case_51_four_workers_posting_at_once_never_500(served):
    app, url, key = served
    with Gunicorn(url, workers=4) as server, Posters(server.base, key, count=16) as posters:
        time.sleep(8)
    print(f"\n{len(posters.acknowledged)} comments acknowledged, answers {posters.statuses}, "
          f"slowest {posters.slowest:.1f} s")
    assert posters.acknowledged and set(posters.statuses) == {201}, posters.statuses
    assert posters.failures == 0, posters.errors[:3]
    assert stored_ids(app) == set(posters.acknowledged)


@pytest.mark.slow
def test_case_54_sigkill_of_a_worker_loses_no_acknowledged_comment(served):
    app, url, key = served
    killed, deadline = [], time.monotonic() + 120
    with Gunicorn(url, workers=4) as server, Posters(server.base, key, count=16) as posters:
        for _ in range(3):  # three workers die mid-request, each after 10 s and 40 more comments
            time.sleep(10)
            posters.wait_for(len(posters.acknowledged) + 40, deadline)
            victim = server.workers()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        time.sleep(2)
        posters.wait_for(len(posters.acknowledged) + 10, deadline)  # the service goes on after the last kill
    print(f"\n{len(posters.acknowledged)} comments acknowledged, {posters.failures} requests cut by "
          f"{len(killed)} kills, answers {posters.statuses}, slowest {posters.slowest:.1f} s")
    assert len(killed) == 3 and len(posters.acknowledged) > 100
    assert set(posters.statuses) == {201}, posters.statuses  # no 5xx, ever
    missing = set(posters.acknowledged) - stored_ids(app)
    assert not missing, f"{len(missing)} acknowledged comments were lost"
    with app.app_context():  # every stored row is whole: a cut request left no half-written comment
        broken = db.session.scalar(sa.select(sa.func.count()).select_from(Comment).where(
            sa.or_(Comment.body_html == "", Comment.article_id.is_(None))))
        assert broken == 0
