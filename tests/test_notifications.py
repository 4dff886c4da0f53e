"""Email notifications through a real local SMTP server (aiosmtpd): the outbox, the worker,
moderators' per-site choice, readers' "notify me", signed links and one-click unsubscribe."""
import email
import email.policy
import re
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from moderation import notifications
from moderation.extensions import db
from moderation.models import Comment, User, utcnow
from moderation.notifications import NotificationSetting, OutboxMessage
from moderation.rules import Status

from .conftest import Auth, count
from .data_helpers import load, store_comment

LINK = re.compile(r"http://comments\.test(/mail/\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


@pytest.fixture
def inbox(app):
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_FROM="comments@comments.test")
    yield handler
    controller.stop()


def drain(app, now=None):
    with app.app_context():
        return notifications.drain(now)


def choose(app, user_id, site, mode, minutes=60):
    with app.app_context():
        db.session.merge(NotificationSetting(user_id=user_id, site_id=site.id, mode=mode, digest_minutes=minutes))
        db.session.commit()


def body_of(message) -> str:
    return message.get_body().get_content()


def approve(app, comment_id, user_email="mod@example.org"):
    from moderation import comments

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == user_email))
        comment = db.session.get(Comment, comment_id)
        comments.moderate(user, comment, "approve", comment.version)
        db.session.commit()


def test_held_comment_mails_moderators_who_chose_each_from_the_worker_only(app, inbox, site, make_user, post_comment):
    chosen = make_user("mod@example.org", sites=[site])
    make_user("quiet@example.org", sites=[site])
    choose(app, chosen, site, "each")
    answer = post_comment(site, body="Is the café open on Sundays?")
    assert answer["status"] == "pending"
    assert inbox.messages == []  # nothing is sent inside the request
    with app.app_context():
        [queued] = db.session.scalars(sa.select(OutboxMessage)).all()
        assert queued.recipient == "mod@example.org" and queued.sent_at is None
    report = drain(app)
    assert report.sent == 1
    [(to, message)] = inbox.messages
    assert to == ["mod@example.org"]
    assert message["List-Unsubscribe"].startswith("<http://comments.test/mail/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Is the café open on Sundays?" in body_of(message)
    assert drain(app).sent == 0 and len(inbox.messages) == 1  # never twice


def test_names_and_subjects_cannot_inject_headers(app, inbox, site, make_user):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    with app.app_context():
        comment_id = store_comment(app, site, status=Status.PENDING, name="Eve\r\nBcc: victim@example.net\nX-Evil: 1")
        notifications.comment_held(db.session.get(Comment, comment_id))
        notifications.enqueue_mail("mod@example.org", "Hi\r\nBcc: other@example.net", "text", "http://x/u", "k1", site.id)
        db.session.commit()
    drain(app)
    assert len(inbox.messages) == 2
    for recipients, message in inbox.messages:
        assert recipients == ["mod@example.org"]
        assert message["Bcc"] is None and message["X-Evil"] is None
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]


def test_reader_hears_only_after_a_moderator_approved(app, inbox, site, make_user, post_comment):
    make_user("mod@example.org", sites=[site])
    mine = post_comment(site, notify=True, body="Please tell me when this is up.")["id"]
    silent = post_comment(site, notify=False, email="grace@example.org", body="No mail for me.")["id"]
    drain(app)
    assert inbox.messages == []  # held: nothing to the reader yet
    approve(app, mine)
    approve(app, silent)
    drain(app)
    [(to, message)] = inbox.messages
    assert to == ["ada@example.org"] and "is published" in message["Subject"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_reply_notifies_the_parent_author_once_the_reply_is_approved(app, inbox, site, make_user, post_comment):
    make_user("mod@example.org", sites=[site])
    parent = store_comment(app, site, body="Start.", notify=True, email="ada@example.org")
    reply = post_comment(site, parent_id=parent, email="grace@example.org", name="Grace", body="An answer.")["id"]
    drain(app)
    assert inbox.messages == []
    approve(app, reply)
    drain(app)
    [(to, message)] = inbox.messages
    assert to == ["ada@example.org"] and "Grace replied" in message["Subject"] and "An answer." in body_of(message)


def test_one_click_unsubscribe_is_a_cookieless_post(app, client, inbox, site, make_user, post_comment):
    make_user("mod@example.org", sites=[site])
    mine = post_comment(site, notify=True)["id"]
    approve(app, mine)
    drain(app)
    link = urlsplit(inbox.messages[0][1]["List-Unsubscribe"].strip("<>")).path
    app.config["WTF_CSRF_ENABLED"] = True
    assert "Unsubscribe" in client.get(link).get_data(as_text=True)
    assert load(app, Comment, mine).notify is True  # GET changes nothing
    response = client.post(link, data="List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert load(app, Comment, mine).notify is False
    assert client.post("/mail/unsubscribe/forged").status_code == 400


def test_moderator_unsubscribe_turns_the_site_off(app, client, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    post_comment(site)
    drain(app)
    link = urlsplit(inbox.messages[0][1]["List-Unsubscribe"].strip("<>")).path
    assert client.post(link).status_code == 200
    with app.app_context():
        assert db.session.get(NotificationSetting, (user_id, site.id)).mode == "off"


def test_links_confirm_on_get_and_act_on_post(app, client, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    comment_id = post_comment(site, body="Approve me by email.")["id"]
    drain(app)
    text = body_of(inbox.messages[0][1])
    approve_link, reject_link = LINK.findall(text)[:2]
    page = client.get(approve_link)  # what a mail scanner's prefetch does
    assert page.status_code == 200 and "Approve this comment?" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert load(app, Comment, comment_id).status == Status.PENDING
    version = load(app, Comment, comment_id).version
    done = client.post(approve_link, data={"version": version})
    assert done.status_code == 200 and load(app, Comment, comment_id).status == Status.APPROVED
    stale = client.post(reject_link, data={"version": version})
    assert stale.status_code == 409 and load(app, Comment, comment_id).status == Status.APPROVED
    assert client.get(approve_link[:-3] + "abc").status_code == 400


def test_links_expire_and_die_with_the_moderators_access(app, client, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    post_comment(site)
    drain(app)
    link = LINK.findall(body_of(inbox.messages[0][1]))[0]
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert client.get(link).status_code == 400
    with app.app_context():
        db.session.get(User, user_id).active = True
        db.session.commit()
    app.config["MAIL_LINK_MAX_AGE"] = -1
    assert client.get(link).status_code == 400


def test_failed_sends_are_retried_with_back_off_and_not_lost(app, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    post_comment(site)
    working_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = free_port()  # nobody listens: connection refused
    assert drain(app).retrying == 1
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert message.attempts == 1 and message.sent_at is None and "Connection" in message.last_error
        first_retry = message.next_attempt_at
    assert drain(app).sent == 0  # not due yet
    app.config["MAIL_PORT"] = working_port
    assert drain(app, first_retry + timedelta(seconds=1)).sent == 1
    assert len(inbox.messages) == 1


def test_a_message_failing_every_time_is_given_up_but_kept(app, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "each")
    post_comment(site)
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), OUTBOX_MAX_ATTEMPTS=3)
    moment = utcnow()
    for _ in range(3):
        drain(app, moment)
        moment += timedelta(hours=7)
    with app.app_context():
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert message.failed_at is not None and message.attempts == 3


def test_digest_collects_held_comments_every_n_minutes(app, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "digest", minutes=30)
    post_comment(site, body="First held.")
    post_comment(site, body="Second held.", email="grace@example.org")
    now = utcnow()
    drain(app, now)
    [(to, message)] = inbox.messages
    assert "2 comment(s) waiting" in message["Subject"]
    assert "First held." in body_of(message) and "Second held." in body_of(message)
    drain(app, now + timedelta(minutes=10))
    assert len(inbox.messages) == 1
    store_comment(app, site, body="Third held.", status=Status.PENDING, created_at=now + timedelta(minutes=20))
    drain(app, now + timedelta(minutes=31))
    assert len(inbox.messages) == 2 and "Third held." in body_of(inbox.messages[1][1])
    assert "First held." not in body_of(inbox.messages[1][1])


def test_erasing_an_email_removes_its_queued_mail(app, runner, site, make_user, post_comment):
    make_user("mod@example.org", sites=[site])
    approve(app, post_comment(site, notify=True)["id"])
    with app.app_context():
        assert count(OutboxMessage) == 1
    runner.invoke(args=["personal-data", "erase", "ada@example.org", "--mode", "anonymise", "--yes"])
    with app.app_context():
        assert count(OutboxMessage) == 0


def test_settings_page_saves_a_choice_per_site(app, client, site, make_site, make_user):
    other = make_site("Hillside Herald")
    user_id = make_user("mod@example.org", sites=[site])
    Auth(client).login()
    page = client.get("/mail/settings").get_data(as_text=True)
    assert site.name in page and other.name not in page
    response = client.post("/mail/settings", data={f"s{site.id}-mode": "digest", f"s{site.id}-digest_minutes": "15"})
    assert response.status_code == 302
    with app.app_context():
        setting = db.session.get(NotificationSetting, (user_id, site.id))
        assert (setting.mode, setting.digest_minutes) == ("digest", 15)
    bad = client.post("/mail/settings", data={f"s{site.id}-mode": "digest", f"s{site.id}-digest_minutes": "1"})
    assert "between 5 minutes" in bad.get_data(as_text=True)


def test_widget_form_has_the_notify_checkbox_unticked(client, site):
    page = client.get(f"/embed/{site.key}", query_string={"url": "https://news.example.org/a.html"}).get_data(as_text=True)
    box = re.search(r'<input type="checkbox" id="notify"[^>]*>', page).group(0)
    assert 'name="notify"' in box and "checked" not in box
    assert "Notify me when my comment is approved or replied to" in page


def test_api_notify_must_be_a_boolean(site, post_comment):
    answer = post_comment(site, expect=400, notify="yes")
    assert answer["errors"]["notify"] == ["Must be true or false."]


def test_the_worker_builds_links_without_a_request_or_server_name(app, inbox, site, make_user, post_comment):
    user_id = make_user("mod@example.org", sites=[site])
    choose(app, user_id, site, "digest")
    post_comment(site, body="Held for the digest.")
    app.config["SERVER_NAME"] = None
    drain(app)
    [(_, message)] = inbox.messages
    assert LINK.search(body_of(message)) and message["List-Unsubscribe"].startswith("<http://comments.test/mail/")
