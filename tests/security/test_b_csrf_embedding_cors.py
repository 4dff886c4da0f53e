"""Section B of security-cases.md: CSRF, embedding, CORS and cookies, cases 15-22.

Case 22 covers the moderation URLs that exist today (POST only, GET refused); signed
approve/reject links in emails wait for the mail feature of issue 6 (skipped test below)."""
import re
from urllib.parse import urlsplit

import pytest

from moderation import create_app
from moderation.extensions import db
from moderation.models import Comment, User
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


@pytest.mark.skip(reason="signed approve/reject links in notification emails are issue 6 (mail), not built yet")
def test_case_22_email_moderation_link_confirms_on_get_and_acts_on_post():
    pass
