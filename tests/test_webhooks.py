"""Webhooks: registered per site, signed with HMAC-SHA256 of the body, delivered by the worker
with retries, and never to loopback or private addresses unless the operator allows it."""
import hashlib
import hmac
import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from moderation import notifications, webhooks
from moderation.extensions import db
from moderation.models import Comment, User
from moderation.notifications import OutboxMessage

from .conftest import ORIGIN


class Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(self.answers.pop(0) if self.answers else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.answers, Receiver.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver, f"http://127.0.0.1:{server.server_port}/hooks/comments?x=1"
    server.shutdown()


def add_hook(runner, site, url, *events):
    result = runner.invoke(args=["webhook", "add", site.key, url, *[f"--event={e}" for e in events]])
    assert result.exit_code == 0, result.output
    return re.search(r"secret .*: ([0-9a-f]{64})", result.output).group(1)


def drain(app, now=None):
    with app.app_context():
        return notifications.drain(now)


def test_created_event_is_signed_and_carries_nothing_private(app, runner, receiver, site, post_comment):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # the test receiver is on loopback
    Receiver, url = receiver
    secret = add_hook(runner, site, url, "comment.created")
    comment_id = post_comment(site, body="Hello hooks", email="secret.reader@example.org")["id"]
    assert Receiver.received == []  # not from inside the request
    assert drain(app).sent == 1
    [(headers, body)] = Receiver.received
    assert headers["X-Moderation-Signature"] == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Moderation-Event"] == "comment.created"
    data = json.loads(body)
    assert data["event"] == "comment.created" and data["comment"]["id"] == comment_id
    assert data["site"] == site.key and "Hello hooks" in data["comment"]["body_html"]
    assert "secret.reader" not in body.decode() and "127.0.0.1" not in body.decode()


def test_decisions_send_approved_and_rejected_only_to_hooks_that_asked(app, runner, receiver, site, post_comment, make_user):
    from moderation import comments

    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    Receiver, url = receiver
    add_hook(runner, site, url, "comment.approved", "comment.rejected")
    first = post_comment(site)["id"]
    second = post_comment(site, email="grace@example.org")["id"]
    make_user("mod@example.org", sites=[site])
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        for comment_id, action in ((first, "approve"), (second, "reject")):
            comment = db.session.get(Comment, comment_id)
            comments.moderate(user, comment, action, comment.version)
        db.session.commit()
    drain(app)
    events = sorted(json.loads(body)["event"] for _, body in Receiver.received)
    assert events == ["comment.approved", "comment.rejected"]


def test_private_addresses_are_refused_unless_allowed(app, runner, receiver, site, post_comment):
    Receiver, url = receiver
    add_hook(runner, site, url, "comment.created")
    post_comment(site)
    assert drain(app).retrying == 1
    assert Receiver.received == []
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert "not a public address" in message.last_error


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "100.64.0.1",
                                     "::1", "fc00::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0"])
def test_non_public_addresses_are_refused(app, address):
    with app.app_context(), pytest.raises(webhooks.DeliveryError):
        webhooks.check_address(address)


def test_public_addresses_pass(app):
    with app.app_context():
        webhooks.check_address("93.184.216.34")
        webhooks.check_address("2606:2800:220:1:248:1893:25c8:1946")


def test_failed_calls_are_retried_with_back_off(app, runner, receiver, site, post_comment):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    Receiver, url = receiver
    add_hook(runner, site, url, "comment.created")
    post_comment(site)
    Receiver.answers = [500]
    assert drain(app).retrying == 1
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert "HTTP 500" in message.last_error and message.attempts == 1
        due = message.next_attempt_at
    assert drain(app).sent == 0
    assert drain(app, due + timedelta(seconds=1)).sent == 1
    assert len(Receiver.received) == 2
    assert Receiver.received[0][1] == Receiver.received[1][1]  # the same signed body, retried


def test_cli_refuses_bad_urls_and_events(runner, site):
    assert runner.invoke(args=["webhook", "add", site.key, "ftp://example.org/x"]).exit_code != 0
    assert runner.invoke(args=["webhook", "add", site.key, "https://user@example.org/x"]).exit_code != 0
    assert runner.invoke(args=["webhook", "add", site.key, ORIGIN + "/x", "--event", "comment.eaten"]).exit_code != 0


def test_cli_lists_and_removes(runner, site):
    add_hook(runner, site, ORIGIN + "/hook")
    listed = runner.invoke(args=["webhook", "list", site.key]).output
    hook_id = listed.split("\t")[0]
    assert "comment.created,comment.approved,comment.rejected,comment.reported" in listed
    assert runner.invoke(args=["webhook", "remove", site.key, hook_id]).exit_code == 0
    assert runner.invoke(args=["webhook", "list", site.key]).output == ""


def test_a_readers_report_sends_comment_reported(app, runner, site):
    from moderation import workspace

    from .data_helpers import store_comment

    add_hook(runner, site, ORIGIN + "/hook", "comment.reported")
    comment_id = store_comment(app, site)
    with app.app_context():
        for reader in ("ip:192.0.2.1", "ip:192.0.2.2"):
            workspace.report(db.session.get(Comment, comment_id), reader, "spam", "")
        db.session.commit()
        [message] = db.session.scalars(sa.select(OutboxMessage)).all()
        assert message.kind == "webhook" and json.loads(message.payload["body"])["event"] == "comment.reported"
