"""Section B of security-cases.md: CSRF, embedding, CORS and cookies, cases 15-22.

Case 22 covers the queue's moderation URLs (POST only, GET refused) and the approve / reject
links in moderators' emails: a GET (a mail scanner's prefetch) only shows a confirmation page,
the POST from that page acts, and the link's token is signed, expires, and names one comment,
one moderator and one action, none of which can be changed."""
import base64
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import itsdangerous
import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer

from moderation import create_app, notifications
from moderation.extensions import db
from moderation.models import AuditEvent, Comment, Site, User
from moderation.rules import Status

from ..conftest import ARTICLE, ORIGIN, PASSWORD, Auth
from .support import Markup, comment_ids, form_data, post_api, widget

EVIL = "https://evil.example"


@pytest.fixture
def pending(app, client, site):
    response = post_api(client, site)
    assert response.status_code == 201
    return response.get_json()["id"]


@pytest.fixture
def moderator(make_user, auth, site):
    user_id = make_user(sites=[site])
    assert auth.login().status_code == 302
    return user_id


def status_of(app, comment_id):
    with app.app_context():
        return db.session.get(Comment, comment_id).status


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_case_15_cross_site_form_cannot_moderate(app, client, pending, moderator, action):
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(f"/moderate/comments/{pending}/{action}", data={"version": 1},
                           headers={"Origin": EVIL, "Referer": EVIL + "/attack.html"})
    assert response.status_code == 400
    assert status_of(app, pending) == Status.PENDING


def test_case_15_moderator_cookie_is_samesite(client, make_user, auth):
    make_user()
    cookies = auth.login().headers.getlist("Set-Cookie")
    assert cookies and all("SameSite=Lax" in cookie or "SameSite=Strict" in cookie for cookie in cookies)


def test_case_16_reader_form_works_without_any_cookie(app, site):
    app.config["WTF_CSRF_ENABLED"] = True
    reader = app.test_client(use_cookies=False)
    page = widget(reader, site)
    assert "Set-Cookie" not in page.headers
    response = reader.post(f"/embed/{site.key}", data=form_data(reader, site), headers={"Origin": ORIGIN})
    assert response.status_code == 303
    assert "Set-Cookie" not in response.headers
    assert len(comment_ids(app)) == 1


def test_case_16_token_from_another_article_keeps_the_text(app, client, site):
    data = form_data(client, site, url=ORIGIN + "/other.html", body="My long considered reply.")
    data["url"] = ARTICLE
    response = client.post(f"/embed/{site.key}", data=data, headers={"Origin": ORIGIN})
    assert response.status_code == 400
    assert "My long considered reply." in response.get_data(as_text=True)
    assert comment_ids(app) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_case_17_api_refuses_a_body_that_is_not_declared_json(app, client, site, content_type):
    body = ('{"site": "%s", "url": "%s", "name": "Eve", "email": "eve@example.org", "body": "no-cors"}'
            % (site.key, ARTICLE))
    headers = {"Origin": EVIL}
    response = client.post("/api/v1/comments", data=body, headers=headers,
                           **({"content_type": content_type} if content_type else {}))
    assert response.status_code in (400, 403)
    assert comment_ids(app) == []


def test_case_17_form_from_a_foreign_origin_is_refused(app, client, site):
    response = client.post(f"/embed/{site.key}", data=form_data(client, site), headers={"Origin": EVIL})
    assert response.status_code == 403
    assert comment_ids(app) == []


def test_case_17_api_from_a_foreign_origin_is_refused(app, client, site):
    assert post_api(client, site, origin=EVIL).status_code == 403
    assert comment_ids(app) == []


def test_case_18_https_session_cookie_is_host_prefixed_secure_httponly(database_url, make_user):
    app = create_app({"TESTING": True, "SECRET_KEY": "https-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "WTF_CSRF_ENABLED": False, "PUBLIC_URL": "https://comments.example"})
    make_user()
    client = app.test_client()
    response = client.post("/moderate/login", data={"email": "mod@example.org", "password": PASSWORD},
                           base_url="https://comments.example")
    assert response.status_code == 302
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-session=")]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Domain=" not in cookie and "Path=/" in cookie


def cookie_value(response) -> str:
    return re.search(r"session=([^;]*)", "\n".join(response.headers.getlist("Set-Cookie"))).group(1)


def test_case_18_login_issues_a_new_session(app, client, make_user):
    make_user()
    app.config["WTF_CSRF_ENABLED"] = True
    before = cookie_value(client.get("/moderate/login"))
    app.config["WTF_CSRF_ENABLED"] = False
    after = cookie_value(Auth(client).login())
    assert after != before
    planted = app.test_client()  # an attacker who planted the pre-login cookie gains nothing
    planted.set_cookie("session", before, domain="comments.test")
    assert planted.get("/moderate/").status_code == 302


def test_case_18_session_is_dead_after_logout_even_if_copied(app, client, make_user):
    make_user()
    copied = cookie_value(Auth(client).login())
    assert client.get("/moderate/").status_code == 200
    Auth(client).logout()
    thief = app.test_client()
    thief.set_cookie("session", copied, domain="comments.test")
    response = thief.get("/moderate/")
    assert response.status_code == 302 and urlsplit(response.location).path == "/moderate/login"


def test_case_18_deactivation_ends_the_session(app, client, make_user):
    user_id = make_user()
    Auth(client).login()
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert client.get("/moderate/").status_code == 302


@pytest.mark.parametrize("path", ["/moderate/login", "/moderate/", "/moderate/flagged"])
def test_case_19_moderator_ui_cannot_be_framed(client, moderator, path):
    response = client.get(path)
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_case_19_widget_may_be_framed_by_its_sites_origins_only(client, make_site):
    site = make_site(origins=[ORIGIN, "https://blog.example.org"])
    response = widget(client, site)
    csp = response.headers["Content-Security-Policy"]
    assert re.search(r"frame-ancestors ([^;]*)", csp).group(1).split() == [ORIGIN, "https://blog.example.org"]
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("origin", [EVIL, "null", "https://news.example.org.evil.example",
                                    "http://news.example.org", "https://news.example.org:8443"])
def test_case_20_foreign_origins_are_not_reflected(client, site, origin):
    answers = [
        client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}, headers={"Origin": origin}),
        post_api(client, site, origin=origin),
        client.options("/api/v1/comments", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}),
    ]
    for response in answers:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_case_20_allowed_origin_is_echoed_exactly_without_credentials(client, site):
    response = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE},
                          headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", [EVIL, "*", "null", "javascript:alert(1)"])
def test_case_21_widget_posts_messages_only_to_an_allowed_origin(client, site, origin):
    page = widget(client, site, origin=origin).get_data(as_text=True)
    (body,) = Markup(page).find("body")
    assert body["data-parent-origin"] == ORIGIN


def test_case_21_widget_posts_to_the_named_allowed_origin(client, make_site):
    site = make_site(origins=[ORIGIN, "https://blog.example.org"])
    page = widget(client, site, origin="https://blog.example.org").get_data(as_text=True)
    assert Markup(page).find("body")[0]["data-parent-origin"] == "https://blog.example.org"


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_case_22_a_get_never_changes_a_comment(app, client, pending, moderator, action):
    response = client.get(f"/moderate/comments/{pending}/{action}")
    assert response.status_code == 405
    assert status_of(app, pending) == Status.PENDING


MAIL_LINK = re.compile(r"(Approve|Reject): http://comments\.test(/mail/moderate/\S+)")


@pytest.fixture
def emailed(app, client, site, make_user, inbox, mail_each):
    """Two held comments and the approve / reject links one moderator got for each, by email."""
    user_id = make_user("mod@example.org", sites=[site])
    mail_each(user_id, site)
    ids = [post_api(client, site, body=f"Held comment {n}.").get_json()["id"] for n in (1, 2)]
    with app.app_context():
        assert notifications.drain().sent == 2
    links = {}
    for _, message in inbox.messages:
        text = message.get_content()
        [comment_id] = [i for n, i in enumerate(ids, 1) if f"Held comment {n}." in text]
        links[comment_id] = {action.lower(): path for action, path in MAIL_LINK.findall(text)}
    assert sorted(links) == ids and all(set(pair) == {"approve", "reject"} for pair in links.values())
    return user_id, ids, links


def token_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def reforged(path: str, **changes) -> str:
    """The link with its payload changed and its timestamp and signature kept."""
    payload, timestamp, signature = token_of(path).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"/mail/moderate/{forged}.{timestamp}.{signature}"


def decide_by_link(client, path, version=1):
    return client.post(path, data={"version": version})


def test_case_22_email_link_get_only_confirms_and_post_acts(app, client, emailed):
    _, (first, second), links = emailed
    for _ in range(3):  # a scanner may fetch a link several times, and try HEAD
        page = client.get(links[first]["approve"])
        assert page.status_code == 200 and "Approve this comment?" in page.get_data(as_text=True)
        assert client.head(links[first]["reject"]).status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert status_of(app, first) == status_of(app, second) == Status.PENDING
    form = Markup(page.get_data(as_text=True)).find("form")
    assert form and form[0].get("method") == "post"
    # The form's extra fields cannot change what the link does or to which comment.
    done = client.post(links[first]["approve"], data={"version": 1, "action": "reject", "comment_id": second})
    assert done.status_code == 200
    assert status_of(app, first) == Status.APPROVED and status_of(app, second) == Status.PENDING
    with app.app_context():
        [event] = db.session.scalars(sa.select(AuditEvent)).all()
        assert (event.comment_id, event.action, event.actor) == (first, "approve", "mod@example.org")


def test_case_22_email_link_post_needs_the_confirmation_pages_csrf_token(app, client, emailed):
    _, (first, _), links = emailed
    app.config["WTF_CSRF_ENABLED"] = True
    cross_site = app.test_client()  # a forged form elsewhere, or a scanner that submits forms
    assert cross_site.post(links[first]["approve"], data={"version": 1}).status_code == 400
    assert status_of(app, first) == Status.PENDING
    page = client.get(links[first]["approve"]).get_data(as_text=True)
    fields = {attrs["name"]: attrs.get("value", "") for attrs in Markup(page).find("input")}
    assert client.post(links[first]["approve"], data=fields).status_code == 200
    assert status_of(app, first) == Status.APPROVED


def test_case_22_email_link_token_cannot_be_tampered_with(app, client, site, emailed):
    user_id, (first, second), links = emailed
    approve = links[first]["approve"]
    other_key = URLSafeTimedSerializer("another-secret", salt=notifications.LINK_SALT)
    with app.app_context():
        unsubscribe_shaped = notifications.unsubscribe_token(c=second, u=user_id, a="approve")
    forged = {
        "signature changed": approve[:-2] + ("AA" if not approve.endswith("AA") else "BB"),
        "another comment's id": reforged(approve, c=second),
        "another action": reforged(approve, a="reject"),
        "an unknown action": reforged(approve, a="delete"),
        "another moderator": reforged(approve, u=user_id + 1),
        "signed with another key": "/mail/moderate/" + other_key.dumps({"c": second, "u": user_id, "a": "reject"}),
        "signed for unsubscribing": "/mail/moderate/" + unsubscribe_shaped,
        "not a token": "/mail/moderate/" + f"{second}-approve",
    }
    for what, path in forged.items():
        assert client.get(path).status_code == 400, what
        assert decide_by_link(client, path).status_code == 400, what
        assert "not valid" in client.get(path).get_data(as_text=True), what
    assert status_of(app, first) == status_of(app, second) == Status.PENDING
    # One comment's reject link is no use on the other, and each link does its own action only.
    assert decide_by_link(client, links[second]["reject"]).status_code == 200
    assert status_of(app, second) == Status.REJECTED and status_of(app, first) == Status.PENDING


def link_made_ago(app, monkeypatch, comment_id, user_id, age: timedelta) -> str:
    made = time.time() - age.total_seconds()
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(made))
    with app.app_context():
        link = notifications.moderation_link(db.session.get(Comment, comment_id), db.session.get(User, user_id),
                                             "approve")
    monkeypatch.undo()
    return urlsplit(link).path


def test_case_22_email_link_expires(app, client, emailed, monkeypatch):
    user_id, (first, second), _ = emailed
    assert app.config["MAIL_LINK_MAX_AGE"] == 7 * 24 * 3600
    old = link_made_ago(app, monkeypatch, first, user_id, timedelta(days=7, minutes=1))
    assert client.get(old).status_code == 400 and decide_by_link(client, old).status_code == 400
    assert status_of(app, first) == Status.PENDING
    recent = link_made_ago(app, monkeypatch, second, user_id, timedelta(days=6, hours=23))
    assert client.get(recent).status_code == 200 and decide_by_link(client, recent).status_code == 200
    assert status_of(app, second) == Status.APPROVED


def test_case_22_email_link_dies_when_the_moderator_loses_the_site(app, client, emailed, make_site):
    user_id, (first, _), links = emailed
    elsewhere = make_site("Hillside Herald")
    with app.app_context():
        db.session.get(User, user_id).sites = [db.session.get(Site, elsewhere.id)]
        db.session.commit()
    assert client.get(links[first]["approve"]).status_code == 400
    assert decide_by_link(client, links[first]["approve"]).status_code == 400
    assert status_of(app, first) == Status.PENDING
