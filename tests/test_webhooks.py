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
from moderation.models import AuditEvent, Comment, Site, User
from moderation.notifications import OutboxMessage

from .conftest import ORIGIN, Auth


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


def test_private_addresses_are_refused_when_registering_unless_allowed(runner, receiver, site):
    Receiver, url = receiver
    refused = runner.invoke(args=["webhook", "add", site.key, url])
    assert refused.exit_code != 0 and "127.0.0.1, which is not a public address" in refused.output
    assert "WEBHOOK_ALLOW_PRIVATE" in refused.output
    assert "this machine" in runner.invoke(args=["webhook", "add", site.key, "http://localhost:8080/x"]).output


def test_private_addresses_are_refused_when_delivering_unless_allowed(app, runner, receiver, site, post_comment):
    Receiver, url = receiver
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    add_hook(runner, site, url, "comment.created")
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False  # or a name that resolved to a public address now does not
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


# --- the page at /admin/sites/KEY/webhooks -------------------------------------------


@pytest.fixture
def two_sites(make_site):
    return make_site("Site A", origins=["https://a.example"]), make_site("Site B", origins=["https://b.example"])


@pytest.fixture
def moderator_of_a(client, make_user, two_sites):
    make_user("mod@example.org", sites=[two_sites[0]])
    Auth(client).login()
    return client


def hooks_of(app, site):
    with app.app_context():
        return db.session.scalars(sa.select(webhooks.Webhook).where(webhooks.Webhook.site_id == site.id)).all()


def add_on_page(client, site, url="https://hooks.example.net/in", events=webhooks.EVENTS):
    return client.post(f"/admin/sites/{site.key}/webhooks", data={"url": url, "events": list(events)})


def test_a_moderator_of_the_site_adds_a_hook_and_sees_its_secret_once(app, moderator_of_a, two_sites):
    a, _ = two_sites
    page = moderator_of_a.get(f"/admin/sites/{a.key}/webhooks").get_data(as_text=True)
    assert 'for="url"' in page and "No webhooks yet." in page
    assert page.count('type="checkbox"') == 4 and page.count("checked") == 4  # every event unless unticked
    response = add_on_page(moderator_of_a, a, events=["comment.approved", "comment.reported"])
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    [hook] = hooks_of(app, a)
    assert hook.events == ["comment.approved", "comment.reported"]
    assert f'<code id="new-secret">{hook.secret}</code>' in response.get_data(as_text=True)
    again = moderator_of_a.get(f"/admin/sites/{a.key}/webhooks").get_data(as_text=True)
    assert hook.secret not in again and "https://hooks.example.net/in" in again and "No call tried yet." in again
    with app.app_context():
        [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "webhook-added")).all()
        assert event.actor == "mod@example.org" and event.site_id == a.id and hook.secret not in str(event.detail)


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:9000/in", "points at 127.0.0.1, which is not a public address"),
    ("https://10.0.0.8/in", "points at 10.0.0.8, which is not a public address"),
    ("http://[::1]/in", "points at ::1, which is not a public address"),
    ("http://localhost/in", "points at this machine (localhost)"),
    ("ftp://files.example.net/in", "must be an http(s) URL"),
    ("", "Please enter the URL that receives the events."),
])
def test_a_bad_url_is_refused_beside_the_field(app, moderator_of_a, two_sites, url, problem):
    a, _ = two_sites
    response = add_on_page(moderator_of_a, a, url=url)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = re.search(r'<p class="error" id="url-error">(.*?)</p>', page, re.S).group(1)
    assert problem in error.replace("&#39;", "'")
    assert 'aria-describedby="url-hint url-error"' in page
    assert hooks_of(app, a) == []


def test_private_addresses_are_accepted_when_the_operator_allows_them(app, moderator_of_a, two_sites):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    a, _ = two_sites
    assert add_on_page(moderator_of_a, a, url="http://127.0.0.1:9000/in").status_code == 200
    assert len(hooks_of(app, a)) == 1


def test_at_least_one_event_is_needed(app, moderator_of_a, two_sites):
    a, _ = two_sites
    response = add_on_page(moderator_of_a, a, events=[])
    assert response.status_code == 400 and "Please choose at least one event." in response.get_data(as_text=True)
    response = add_on_page(moderator_of_a, a, events=["comment.eaten"])
    assert response.status_code == 400 and hooks_of(app, a) == []


def test_a_test_event_is_delivered_and_its_status_shown(app, moderator_of_a, two_sites, receiver):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    Receiver, url = receiver
    a, _ = two_sites
    add_on_page(moderator_of_a, a, url=url, events=["comment.created"])
    [hook] = hooks_of(app, a)
    done = moderator_of_a.post(f"/admin/sites/{a.key}/webhooks/{hook.id}/test", follow_redirects=True)
    assert "A test event to" in done.get_data(as_text=True)
    assert drain(app).sent == 1
    [(headers, body)] = Receiver.received
    assert headers["X-Moderation-Event"] == "webhook.test" and json.loads(body)["event"] == "webhook.test"
    assert headers["X-Moderation-Signature"] == "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    page = moderator_of_a.get(f"/admin/sites/{a.key}/webhooks").get_data(as_text=True)
    assert "Delivered webhook.test at" in page and "0 being retried, 0 given up" in page
    Receiver.answers = [503]
    moderator_of_a.post(f"/admin/sites/{a.key}/webhooks/{hook.id}/test")
    assert drain(app).retrying == 1
    page = moderator_of_a.get(f"/admin/sites/{a.key}/webhooks").get_data(as_text=True)
    assert "webhook.test failed (1 attempt(s)), will be retried" in page and "HTTP 503" in page
    assert "1 being retried, 0 given up" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "webhook-tested")) == 2


def test_deleting_a_hook_stops_its_calls(app, moderator_of_a, two_sites):
    a, _ = two_sites
    add_on_page(moderator_of_a, a)
    [hook] = hooks_of(app, a)
    done = moderator_of_a.post(f"/admin/sites/{a.key}/webhooks/{hook.id}/delete", follow_redirects=True)
    assert "Events are no longer sent to https://hooks.example.net/in" in done.get_data(as_text=True)
    assert hooks_of(app, a) == []
    with app.app_context():
        [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "webhook-removed")).all()
        assert event.detail == {"url": "https://hooks.example.net/in"} and event.actor == "mod@example.org"


def test_a_moderator_of_another_site_gets_404(app, client, make_user, two_sites):
    a, b = two_sites
    make_user("b-mod@example.org", sites=[b])
    with app.app_context():
        hook = webhooks.register(db.session.get(Site, a.id), "https://hooks.example.net/in", list(webhooks.EVENTS))
        db.session.commit()
        hook_id, secret = hook.id, hook.secret
    Auth(client).login("b-mod@example.org")
    assert client.get(f"/admin/sites/{a.key}/webhooks").status_code == 404
    assert add_on_page(client, a).status_code == 404
    assert client.post(f"/admin/sites/{a.key}/webhooks/{hook_id}/test").status_code == 404
    assert client.post(f"/admin/sites/{a.key}/webhooks/{hook_id}/delete").status_code == 404
    # Through their own site's address, the other site's hook does not exist either.
    assert client.post(f"/admin/sites/{b.key}/webhooks/{hook_id}/delete").status_code == 404
    assert client.post(f"/admin/sites/{b.key}/webhooks/{hook_id}/test").status_code == 404
    assert secret not in client.get(f"/admin/sites/{b.key}/webhooks").get_data(as_text=True)
    assert [h.id for h in hooks_of(app, a)] == [hook_id]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


def test_the_pages_need_a_login_and_csrf(app, client, make_user, two_sites):
    a, _ = two_sites
    assert client.get(f"/admin/sites/{a.key}/webhooks").status_code == 302  # to the login page
    make_user("admin@example.org", role="admin")
    Auth(client).login("admin@example.org")
    assert client.get(f"/admin/sites/{a.key}/webhooks").status_code == 200
    app.config["WTF_CSRF_ENABLED"] = True
    assert add_on_page(client, a).status_code == 400
    assert hooks_of(app, a) == []


def test_the_site_pages_link_to_the_webhooks(app, client, make_user, two_sites):
    a, _ = two_sites
    make_user("admin@example.org", role="admin")
    Auth(client).login("admin@example.org")
    link = f'href="/admin/sites/{a.key}/webhooks"'
    assert link in client.get(f"/admin/sites/{a.key}").get_data(as_text=True)
    assert link in client.get("/admin/sites").get_data(as_text=True)
