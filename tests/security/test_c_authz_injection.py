"""Section C of security-cases.md: authentication, authorisation, tenants and injection, cases 23-34.

Case 28: the service never fetches an article's URL (the title comes from the embedding page),
so there is nothing to forge a request with; the test proves no connection is opened."""
import re
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from moderation import create_app, tokens
from moderation.extensions import db
from moderation.models import LoginThrottle, User, utcnow
from moderation.rules import Status

from ..conftest import ARTICLE, ORIGIN, PASSWORD, Auth, comment_fields
from .support import Markup, comment_ids, form_data, post_api, post_form, publish, set_status, stored, widget

GENERIC = "That email and password do not match an active account."
THROTTLED = "Too many failed attempts"


def login(client, email="mod@example.org", password=PASSWORD, ip="192.0.2.1"):
    return client.post("/moderate/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def text(response) -> str:
    return response.get_data(as_text=True)


def test_case_23_account_is_throttled_after_failures_even_with_the_right_password(app, client, make_user):
    make_user()
    for _ in range(5):
        response = login(client, password="wrong")
        assert response.status_code == 200 and GENERIC in text(response)
    response = login(client)  # the right password, too late
    assert response.status_code == 429 and THROTTLED in text(response)
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/moderate/").status_code == 302


def test_case_23_throttling_does_not_reveal_whether_an_account_exists(app, client, make_user):
    make_user()
    answers = {}
    for email in ("mod@example.org", "nobody@example.org"):
        for _ in range(5):
            login(client, email=email, password="wrong", ip="198.51.100.9")
        answers[email] = login(client, email=email, password="wrong", ip="198.51.100.9")
    known, unknown = answers.values()
    assert known.status_code == unknown.status_code == 429
    def page(response, email):  # the CSRF token is signed with the time: it differs from second to second
        shown = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="TOKEN"', text(response))
        return re.sub(r"\d+", "N", shown.replace(email, "EMAIL"))

    assert page(known, "mod@example.org") == page(unknown, "nobody@example.org")


def test_case_23_one_address_is_throttled_across_accounts(app, client, make_user):
    make_user()
    for n in range(20):
        login(client, email=f"guess{n}@example.org", password="wrong", ip="203.0.113.5")
    assert login(client, ip="203.0.113.5").status_code == 429
    assert login(client, ip="203.0.113.6").status_code == 302  # another address is not punished


def test_case_23_backoff_ends_and_success_clears_the_count(app, client, make_user):
    make_user()
    for _ in range(5):
        login(client, password="wrong")
    with app.app_context():
        for row in db.session.scalars(sa.select(LoginThrottle)):
            row.blocked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert login(client).status_code == 302
    with app.app_context():
        assert db.session.get(LoginThrottle, "email:mod@example.org") is None


def test_case_24_forwarded_for_is_ignored_without_a_trusted_proxy(app, client, site):
    response = client.post("/api/v1/comments", json=comment_fields(site), headers={
        "Origin": ORIGIN, "X-Forwarded-For": "6.6.6.6"}, environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert response.status_code == 201
    assert not (stored(app, response.get_json()["id"]).ip or "").startswith("6.6.6")


def test_case_24_only_the_last_hop_of_one_trusted_proxy_counts(database_url, make_site):
    app = create_app({"TESTING": True, "SECRET_KEY": "proxy-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "PROXY_COUNT": 1, "RATELIMIT_ENABLED": False})
    site = make_site()
    response = app.test_client().post("/api/v1/comments", json=comment_fields(site), headers={
        "Origin": ORIGIN, "X-Forwarded-For": "6.6.6.6, 198.51.100.7"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert response.status_code == 201
    ip = stored(app, response.get_json()["id"]).ip
    assert ip.startswith("198.51.100.") and not ip.startswith("6.6.6")


def test_case_25_passwords_are_hashed_with_a_modern_kdf(app, make_user):
    user_id = make_user()
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.password_hash.startswith(("scrypt:", "argon2", "$argon2id$"))
        assert PASSWORD not in user.password_hash
        assert user.check_password(PASSWORD) and not user.check_password(PASSWORD + " ")


@pytest.fixture
def two_sites(app, client, make_site):
    gazette = make_site("Gazette")
    courier = make_site("Courier", origins=["https://courier.example.net"])
    response = client.post("/api/v1/comments", json=comment_fields(courier, url="https://courier.example.net/a"),
                           headers={"Origin": "https://courier.example.net"})
    assert response.status_code == 201
    return gazette, courier, response.get_json()["id"]


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_case_26_moderator_of_site_a_cannot_act_on_site_b(app, client, make_user, two_sites, action):
    gazette, courier, foreign = two_sites
    make_user(sites=[gazette])
    Auth(client).login()
    response = client.post(f"/moderate/comments/{foreign}/{action}", data={"version": 1})
    assert response.status_code in (403, 404)
    assert stored(app, foreign).status == Status.PENDING
    for tab in ("/moderate/", "/moderate/flagged", "/moderate/approved", "/moderate/rejected"):
        assert f"comment-{foreign}" not in text(client.get(tab))


@pytest.mark.parametrize("url", ["https://courier.example.net/a", "https://evil.example/a", "javascript:alert(1)"])
def test_case_27_article_of_another_site_or_unregistered_origin_is_refused(app, client, site, make_site, url):
    make_site("Courier", origins=["https://courier.example.net"])
    assert post_api(client, site, url=url).status_code in (400, 403)
    assert widget(client, site, url=url).status_code in (400, 403)
    assert comment_ids(app) == []


def test_case_28_posting_never_fetches_the_article(app, client, site, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the service opened a connection: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert post_api(client, site, url=ORIGIN + "/internal?u=http://169.254.169.254/").status_code == 201
    assert post_form(client, site, form_data(client, site, body="Another one.")).status_code == 303


def test_case_29_extra_fields_are_ignored(app, client, site, make_site):
    other = make_site("Other", origins=["https://other.example"])
    response = post_api(client, site, status="approved", site_id=other.id, pinned=True, created="2001-01-01T00:00:00",
                        ip="6.6.6.6", id=999, version=99, decided_by_id=1, author_key="x")
    assert response.status_code == 201
    comment = stored(app, response.get_json()["id"])
    assert comment.status == Status.PENDING and comment.site_id == site.id
    assert comment.id != 999 and comment.version == 1 and comment.decided_by_id is None
    assert comment.created_at.year > 2001 and not (comment.ip or "").startswith("6.6.6")


def test_case_29_form_ignores_extra_fields(app, client, site):
    response = post_form(client, site, form_data(client, site, status="approved", site_id="99", ip="6.6.6.6"))
    assert response.status_code == 303
    (comment_id,) = comment_ids(app)
    assert stored(app, comment_id).status == Status.PENDING


def test_case_30_bad_parents_are_refused(app, client, site, make_site):
    other = make_site("Other", origins=["https://other.example"])
    elsewhere = publish(app, client, site, url=ORIGIN + "/another-article.html")
    foreign = client.post("/api/v1/comments", json=comment_fields(other, url="https://other.example/x"),
                          headers={"Origin": "https://other.example"}).get_json()["id"]
    set_status(app, foreign)
    pending = post_api(client, site, body="Not yet approved.").get_json()["id"]
    for parent in (elsewhere, foreign, pending, 10**9, 0, -1, True, "1", 2**70):
        response = post_api(client, site, parent_id=parent, body=f"Reply to {parent!r}")
        assert response.status_code == 400, (parent, response.get_json())
    assert len(comment_ids(app)) == 3


def test_case_30_deep_threads_render_without_recursion(app, client, site):
    parent = None
    for n in range(60):
        parent = publish(app, client, site, parent_id=parent, body=f"Level {n}")
    page = widget(client, site)
    assert page.status_code == 200
    depths = {attrs["class"] for _, attrs in Markup(page.get_data(as_text=True)).tags
              if attrs.get("class", "").startswith("comment depth-")}
    assert depths == {f"comment depth-{n}" for n in range(6)}  # indentation stops at depth 5


@pytest.mark.parametrize("target", ["//evil.com", "https:/\\evil.com", "https://good.com@evil.com",
                                    "https://comments.test.evil.com/", "\njavascript:alert(1)", "/\\evil.com",
                                    "javascript:alert(1)", "/%09/evil.com", "\t//evil.com", "///evil.com"])
def test_case_31_next_never_leaves_the_service(client, make_user, target):
    make_user()
    response = client.post("/moderate/login", query_string={"next": target},
                           data={"email": "mod@example.org", "password": PASSWORD})
    assert response.status_code == 302
    location = urlsplit(response.location)
    assert location.netloc in ("", "comments.test") and location.scheme in ("", "http")
    assert not location.path.startswith("//") and "\\" not in location.path


@pytest.mark.parametrize("before", ["1;DROP TABLE comments", "'", "1 OR 1=1", "%", "_"])
def test_case_32_query_parameters_are_bound_not_spliced(app, client, site, make_user, before):
    publish(app, client, site)
    make_user(sites=[site])
    Auth(client).login()
    assert client.get("/moderate/approved", query_string={"before": before}).status_code in (200, 400)
    for url in (ORIGIN + "/%", ORIGIN + "/_026/11/riverside-park.html", ARTICLE + "'", ARTICLE + "' OR '1'='1"):
        answer = client.get("/api/v1/threads", query_string={"site": site.key, "url": url})
        assert answer.status_code == 400 or answer.get_json()["count"] == 0
    assert len(comment_ids(app)) == 1


def test_case_32_no_sql_is_built_from_strings():
    source = "\n".join(path.read_text() for path in Path(tokens.__file__).parent.glob("*.py"))
    assert not re.search(r"text\(\s*f[\"']", source) and not re.search(r"execute\(\s*f[\"']", source)


def test_case_33_a_typed_email_does_not_make_a_known_author(app, client, make_site):
    site = make_site(moderation_mode="known_authors")
    first = post_api(client, site, body="First comment.")
    set_status(app, first.get_json()["id"])
    impostor = post_api(client, site, body="Same name and email, no token.")
    assert impostor.get_json()["status"] == "pending"
    forged = post_api(client, site, body="A forged token.", author_token="x" + first.get_json()["author_token"][1:])
    assert forged.get_json()["status"] == "pending"
    real = post_api(client, site, body="With the token.", author_token=first.get_json()["author_token"])
    assert real.get_json()["status"] == "approved"


def test_case_34_pending_comment_is_shown_only_to_its_author_briefly_and_uncached(app, client, site, monkeypatch):
    data = form_data(client, site, body="Waiting for a moderator.")
    response = post_form(client, site, data)
    own = client.get(response.location)
    assert "Waiting for a moderator." in text(own)
    assert "no-store" in own.headers["Cache-Control"] and own.headers["X-Robots-Tag"] == "noindex"
    assert "Waiting for a moderator." not in text(widget(client, site))
    answer = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE})
    assert answer.get_json()["count"] == 0
    monkeypatch.setattr(tokens, "RECEIPT_MAX_AGE", -1)  # the receipt has expired
    assert "Waiting for a moderator." not in text(client.get(response.location))
