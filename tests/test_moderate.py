"""The moderator's side: logging in and out, the queues, and Approve / Reject / Flag."""
import html
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from itsdangerous import BadSignature

from .conftest import ARTICLE, PASSWORD, Auth, comment_fields, count
from moderation.extensions import db
from moderation.models import AuditEvent, Comment, User
from moderation.rules import Status

NO_MATCH = "That email and password do not match an active account."
CARD = re.compile(r'<li class="card" id="c(\d+)"')
OTHER_ORIGIN = "https://other.example.com"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def add_comment(app, client, site, status=Status.PENDING, url=ARTICLE, ip="192.0.2.10", **changes) -> int:
    """A comment sent through the API from the site's own page, then put in `status`."""
    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    response = client.post("/api/v1/comments", json=comment_fields(site, url=url, **changes),
                           headers={"Origin": origin}, environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 201, response.get_json()
    comment_id = response.get_json()["id"]
    if status != Status.PENDING:
        with app.app_context():
            db.session.get(Comment, comment_id).status = status
            db.session.commit()
    return comment_id


def comment(app, comment_id) -> Comment:
    with app.app_context():
        found = db.session.get(Comment, comment_id)
        db.session.expunge(found)
        return found


def decide(client, app, comment_id, action, version=None, **kwargs):
    if version is None:
        version = comment(app, comment_id).version
    return client.post(f"/moderate/comments/{comment_id}/{action}", data={"version": version}, **kwargs)


def page_of(response) -> str:
    return response.get_data(as_text=True)


def flashes(page: str) -> list[str]:
    return [html.unescape(text) for text in re.findall(r'<p class="flash [a-z]+">(.*?)</p>', page, re.S)]


def public_bodies(client, site, url=ARTICLE) -> list[str]:
    response = client.get("/api/v1/threads", query_string={"site": site.key, "url": url})
    return [item["body_html"] for item in response.get_json()["comments"]]


@pytest.fixture
def moderator(make_user, auth, site):
    """A moderator of `site`, logged in."""
    user_id = make_user(sites=[site])
    assert auth.login().status_code == 302
    return user_id


# --- logging in --------------------------------------------------------------


def test_queue_asks_to_log_in_and_shows_nothing(app, client, site):
    add_comment(app, client, site, body="A secret pending comment.")
    response = client.get("/moderate/")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/moderate/login"
    page = page_of(client.get("/moderate/", follow_redirects=True))
    assert "A secret pending comment." not in page
    assert "Log in" in page


def test_login_page_has_email_password_and_button(client):
    response = client.get("/moderate/login")
    assert response.status_code == 200
    page = page_of(response)
    labels = {key: " ".join(re.sub(r"<[^>]+>", "", text).split())
              for key, text in re.findall(r'<label for="(\w+)">(.*?)</label>', page, re.S)}
    assert labels == {"email": "Email *", "password": "Password *"}
    fields = {attrs.get("name"): attrs for tag, attrs in Tags(page).tags if tag == "input"}
    assert fields["email"]["type"] == "email"
    assert fields["password"]["type"] == "password"
    assert re.search(r'<button type="submit">Log in</button>', page)


@pytest.mark.parametrize(("email", "password"), [
    ("mod@example.org", "wrong password"),
    ("nobody@example.org", PASSWORD),
    ("nobody@example.org", "wrong password"),
])
def test_wrong_login_gives_one_message_and_no_session(client, make_user, auth, email, password):
    make_user()
    response = auth.login(email, password)
    assert response.status_code == 200
    page = page_of(response)
    assert flashes(page) == [NO_MATCH]
    assert 'name="password"' in page
    assert client.get("/moderate/").status_code == 302


def test_inactive_user_cannot_log_in(app, client, make_user, auth):
    user_id = make_user()
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert flashes(page_of(auth.login())) == [NO_MATCH]
    assert client.get("/moderate/").status_code == 302


def test_right_password_opens_the_queue(client, make_user, auth):
    make_user()
    response = auth.login()
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/moderate/"
    queue = client.get("/moderate/")
    assert queue.status_code == 200
    assert "Pending comments" in page_of(queue)


def test_email_is_matched_without_case(client, make_user, auth):
    make_user()
    assert auth.login("MOD@Example.ORG").status_code == 302
    assert client.get("/moderate/").status_code == 200


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example", "/\\evil.example", "https:/\\evil.example",
    "///evil.example", "/\tevil.example", "javascript:alert(1)", "\njavascript:alert(1)",
])
def test_login_never_redirects_off_site(client, make_user, target):
    make_user()
    response = client.post("/moderate/login", query_string={"next": target},
                           data={"email": "mod@example.org", "password": PASSWORD})
    assert response.status_code == 302
    location = urlsplit(response.location)
    assert location.netloc in ("", "comments.test")
    assert location.path == "/moderate/"


def test_login_follows_a_local_next(client, make_user):
    make_user()
    response = client.post("/moderate/login", query_string={"next": "/moderate/flagged"},
                           data={"email": "mod@example.org", "password": PASSWORD})
    assert response.location == "/moderate/flagged"


# --- the queue ---------------------------------------------------------------


def test_queue_shows_everything_a_moderator_needs(app, client, site, moderator):
    comment_id = add_comment(app, client, site, body="Is the footpath lit at night?", name="Grace Hopper",
                             email="grace@example.org", website="https://grace.example.org/", ip="203.0.113.9")
    page = page_of(client.get("/moderate/"))
    card = page[page.index(f'id="c{comment_id}"'):]
    for shown in ("Is the footpath lit at night?", "Grace Hopper", "grace@example.org",
                  "https://grace.example.org/", "203.0.113.9",
                  "held: pre-moderation (every comment waits for a moderator)"):
        assert shown in card
    assert re.search(rf'<a href="{re.escape(ARTICLE)}"[^>]*>Council backs riverside park plan</a>', card)
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z">', card)
    buttons = re.findall(r'<button type="submit" class="\w+">(\w+)</button>', card)
    assert buttons[:3] == ["Approve", "Reject", "Flag"]


def test_queue_renders_hostile_comments_inert(app, client, site, moderator):
    add_comment(app, client, site, body="<script>alert(1)</script><img src=x onerror=alert(1)>",
                name='"><script>alert(1)</script>', website="https://x.org/?'onmouseover='alert(1)'")
    page = page_of(client.get("/moderate/"))
    for tag, attrs in Tags(page).tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert tag != "script" or attrs.get("src") == "/static/moderate.js", attrs  # only our own, never inline


@pytest.mark.parametrize(("action", "status", "public"), [
    ("approve", Status.APPROVED, True),
    ("reject", Status.REJECTED, False),
    ("flag", Status.FLAGGED, False),
])
def test_decision_changes_status_and_is_audited(app, client, site, moderator, action, status, public):
    comment_id = add_comment(app, client, site, body="Decide on me.")
    response = decide(client, app, comment_id, action)
    assert response.status_code == 302
    decided = comment(app, comment_id)
    assert decided.status == status
    assert decided.decided_by_id == moderator
    assert decided.decided_at is not None
    assert decided.version == 2
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent)).one()
        assert (event.comment_id, event.action, event.from_status, event.to_status) == (
            comment_id, action, "pending", status.value)
        assert (event.actor, event.user_id, event.site_id) == ("mod@example.org", moderator, site.id)
    assert (public_bodies(client, site) != []) is public
    assert f'id="c{comment_id}"' not in page_of(client.get("/moderate/"))
    assert f'id="c{comment_id}"' in page_of(client.get(f"/moderate/{status.value}"))


def test_decision_flashes_and_returns_to_the_queue(app, client, site, moderator):
    comment_id = add_comment(app, client, site)
    response = decide(client, app, comment_id, "approve", follow_redirects=True)
    assert response.request.path == "/moderate/"
    assert flashes(page_of(response)) == ["Comment by Ada Lovelace approved."]


def test_flagged_comment_moves_to_the_flagged_tab_and_counts_follow(app, client, site, moderator):
    first = add_comment(app, client, site, body="One.")
    add_comment(app, client, site, body="Two.")
    decide(client, app, first, "flag")
    tabs = dict(re.findall(r'>(\w+) <span class="count" data-tab="\w+">(\d+)</span>', page_of(client.get("/moderate/"))))
    assert tabs == {"Pending": "1", "Flagged": "1", "Reported": "0", "Approved": "0", "Rejected": "0", "All": "2"}
    flagged = page_of(client.get("/moderate/flagged"))
    assert CARD.findall(flagged) == [str(first)]
    buttons = re.findall(r'<button type="submit" class="\w+">(\w+)</button>', flagged)
    assert buttons == ["Approve", "Reject"]


def test_stale_decision_is_not_applied_and_names_the_winner(app, client, site, make_user, moderator):
    comment_id = add_comment(app, client, site)
    seen = comment(app, comment_id).version
    make_user("second@example.org", sites=[site])
    other = app.test_client()
    Auth(other).login("second@example.org")
    assert decide(other, app, comment_id, "approve", version=seen).status_code == 302

    response = decide(client, app, comment_id, "reject", version=seen, follow_redirects=True)
    assert response.status_code == 200
    messages = flashes(page_of(response))
    assert len(messages) == 1 and "already approved by second@example.org" in messages[0]
    assert comment(app, comment_id).status == Status.APPROVED
    with app.app_context():  # the applied decision, and the refused one
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "approve", "reject-refused"]


def test_same_decision_twice_applies_once(app, client, site, moderator):
    comment_id = add_comment(app, client, site)
    seen = comment(app, comment_id).version
    decide(client, app, comment_id, "approve", version=seen, follow_redirects=True)
    response = decide(client, app, comment_id, "approve", version=seen, follow_redirects=True)
    assert response.status_code == 200
    messages = flashes(page_of(response))
    assert len(messages) == 1 and "already approved by mod@example.org" in messages[0]
    assert comment(app, comment_id).version == seen + 1
    with app.app_context():
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "approve", "approve-refused"]


@pytest.mark.parametrize("version", ["", "abc"])
def test_decision_without_a_version_changes_nothing(app, client, site, moderator, version):
    comment_id = add_comment(app, client, site)
    response = client.post(f"/moderate/comments/{comment_id}/approve", data={"version": version})
    assert response.status_code == 302
    assert comment(app, comment_id).status == Status.PENDING


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_decision_urls_refuse_get(app, client, site, moderator, action):
    comment_id = add_comment(app, client, site)
    assert client.get(f"/moderate/comments/{comment_id}/{action}").status_code == 405
    assert comment(app, comment_id).status == Status.PENDING


def test_decision_needs_login(app, client, site):
    comment_id = add_comment(app, client, site)
    response = decide(client, app, comment_id, "approve")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/moderate/login"
    assert comment(app, comment_id).status == Status.PENDING


def test_decision_on_unknown_comment_is_404(client, moderator):
    assert client.post("/moderate/comments/999999/approve", data={"version": 1}).status_code == 404


# --- scoping -----------------------------------------------------------------


@pytest.fixture
def two_sites(app, client, make_site):
    """Site A and site B, each with a comment in every status; returns (site_a, site_b, {site: {status: id}})."""
    site_a = make_site("Site A")
    site_b = make_site("Site B", origins=[OTHER_ORIGIN])
    ids = {}
    for site, url in ((site_a, ARTICLE), (site_b, OTHER_ORIGIN + "/story.html")):
        ids[site.name] = {status: add_comment(app, client, site, status=status, url=url,
                                              body=f"{site.name} says {status.value}.")
                          for status in Status}
    return site_a, site_b, ids


def queue_text(client) -> str:
    return "".join(page_of(client.get(f"/moderate/{status.value}", follow_redirects=True)) for status in Status)


def test_moderator_sees_only_their_sites(client, make_user, auth, two_sites):
    site_a, site_b, ids = two_sites
    make_user(sites=[site_a])
    auth.login()
    seen = queue_text(client)
    for status in Status:
        assert f"Site A says {status.value}." in seen
        assert f"Site B says {status.value}." not in seen
    tabs = dict(re.findall(r'>(\w+) <span class="count" data-tab="\w+">(\d+)</span>', page_of(client.get("/moderate/"))))
    assert tabs == {"Pending": "1", "Flagged": "1", "Reported": "0", "Approved": "1", "Rejected": "1", "All": "4"}


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_moderator_cannot_decide_on_another_sites_comment(app, client, make_user, auth, two_sites, action):
    site_a, site_b, ids = two_sites
    make_user(sites=[site_a])
    auth.login()
    target = ids["Site B"][Status.PENDING]
    assert decide(client, app, target, action).status_code == 404
    assert comment(app, target).status == Status.PENDING
    assert comment(app, target).version == 1
    with app.app_context():
        assert count(AuditEvent) == 0


def test_moderator_with_no_sites_sees_nothing(client, make_user, auth, two_sites):
    make_user()
    auth.login()
    assert " says " not in queue_text(client)


@pytest.mark.parametrize("user", [{"all_sites": True}, {"role": "admin"}])
def test_all_sites_moderator_and_admin_see_every_site(app, client, make_user, auth, two_sites, user):
    site_a, site_b, ids = two_sites
    make_user(**user)
    auth.login()
    seen = queue_text(client)
    for site_name in ("Site A", "Site B"):
        for status in Status:
            assert f"{site_name} says {status.value}." in seen
    assert decide(client, app, ids["Site B"][Status.PENDING], "approve").status_code == 302
    assert comment(app, ids["Site B"][Status.PENDING]).status == Status.APPROVED


# --- CSRF, sessions, cookies ---------------------------------------------------


def test_decision_without_csrf_token_is_refused(app, client, site, moderator):
    comment_id = add_comment(app, client, site)
    app.config["WTF_CSRF_ENABLED"] = True
    response = decide(client, app, comment_id, "approve")
    assert response.status_code == 400
    assert comment(app, comment_id).status == Status.PENDING

    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page_of(client.get("/moderate/"))).group(1)
    response = client.post(f"/moderate/comments/{comment_id}/approve",
                           data={"version": comment(app, comment_id).version, "csrf_token": token})
    assert response.status_code == 302
    assert comment(app, comment_id).status == Status.APPROVED


def test_logout_ends_the_session(client, moderator, auth):
    assert client.get("/moderate/").status_code == 200
    response = auth.logout()
    assert urlsplit(response.location).path == "/moderate/login"
    again = client.get("/moderate/")
    assert again.status_code == 302
    assert urlsplit(again.location).path == "/moderate/login"


def test_logout_is_post_only(client, moderator):
    assert client.get("/moderate/logout").status_code == 405
    assert client.get("/moderate/").status_code == 200


@pytest.mark.parametrize("change", [{"session_token": "rotated"}, {"active": False}])
def test_changed_user_loses_their_session(app, client, moderator, change):
    assert client.get("/moderate/").status_code == 200
    with app.app_context():
        user = db.session.get(User, moderator)
        for key, value in change.items():
            setattr(user, key, value)
        db.session.commit()
    response = client.get("/moderate/")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/moderate/login"


def session_cookie(response) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_login_page_cookie_is_httponly_and_samesite_lax(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    cookie = session_cookie(client.get("/moderate/login"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_login_sets_an_httponly_samesite_session(client, make_user, auth):
    make_user()
    cookie = session_cookie(auth.login())
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # PUBLIC_URL is plain http here; test_config covers https


# --- pagination --------------------------------------------------------------


def test_queue_pages_through_every_comment_once(app, client, site, moderator):
    app.config["QUEUE_PAGE_SIZE"] = 3
    ids = [add_comment(app, client, site, body=f"Comment number {n}.") for n in range(7)]
    newest_first = [str(comment_id) for comment_id in reversed(ids)]
    page = page_of(client.get("/moderate/"))
    assert CARD.findall(page) == newest_first[:3]
    seen = []
    url = "/moderate/"
    for _ in range(5):
        page = page_of(client.get(url))
        seen += CARD.findall(page)
        older = re.search(r'<a href="([^"]+)" rel="next">Older comments</a>', page)
        if not older:
            break
        url = html.unescape(older.group(1))
    assert seen == newest_first
    assert "Older comments" not in page


def test_full_page_without_more_has_no_older_link(app, client, site, moderator):
    app.config["QUEUE_PAGE_SIZE"] = 3
    for n in range(3):
        add_comment(app, client, site, body=f"Comment number {n}.")
    page = page_of(client.get("/moderate/"))
    assert len(CARD.findall(page)) == 3
    assert "Older comments" not in page


# --- headers -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/moderate/", "/moderate/flagged", "/moderate/rejected", "/moderate/login"])
def test_moderator_pages_cannot_be_framed_or_sniffed(client, moderator, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_session_signer_is_built_once_per_secret_key(app, client, make_user, auth):
    interface = app.session_interface
    signer = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is signer
    cookie = signer.dumps({"a": 1})
    app.secret_key = "a new secret"
    rotated = interface.get_signing_serializer(app)
    assert rotated is not signer and rotated.loads(rotated.dumps({"a": 1})) == {"a": 1}
    with pytest.raises(BadSignature):
        rotated.loads(cookie)
    app.config["SECRET_KEY_FALLBACKS"] = ["test-secret"]  # the old key, still accepted while rotating
    assert interface.get_signing_serializer(app).loads(cookie) == {"a": 1}
    make_user("mod@example.org", all_sites=True)
    auth.login("mod@example.org")
    assert client.get("/moderate/").status_code == 200
