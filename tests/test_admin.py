"""The admin pages: sites and their snippet, people and their sites, deactivation, and who may see what."""
import re

import pytest
import sqlalchemy as sa

from .conftest import ORIGIN, PASSWORD, Auth, comment_fields, count
from moderation.extensions import db
from moderation.models import Article, AuditEvent, AuthorTrust, Comment, Site, User
from .test_settings import form_of


@pytest.fixture
def admin(make_user, auth):
    user_id = make_user("admin@example.org", role="admin")
    assert auth.login("admin@example.org").status_code == 302
    return user_id


@pytest.fixture
def two_sites(make_site):
    return make_site("Site A", origins=["https://a.example"]), make_site("Site B", origins=["https://b.example"])


def page(response) -> str:
    return response.get_data(as_text=True)


def add_comment(client, site, origin, **changes) -> int:
    response = client.post("/api/v1/comments", json=comment_fields(site, url=origin + "/post.html", **changes),
                           headers={"Origin": origin})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


# --- who may see what ----------------------------------------------------------------


ADMIN_ONLY = [("get", "/admin/users"), ("post", "/admin/users"), ("get", "/admin/users/{user}"),
              ("post", "/admin/users/{user}/deactivate"), ("post", "/admin/sites"), ("get", "/admin/sites/{a}")]


@pytest.mark.parametrize("method, path", ADMIN_ONLY)
def test_admin_pages_are_404_for_moderators(app, client, make_user, auth, two_sites, method, path):
    a, _ = two_sites
    other = make_user("other@example.org", sites=[a])
    make_user(sites=[a])
    auth.login()
    response = getattr(client, method)(path.format(user=other, a=a.key), data={"name": "X", "origins": ORIGIN})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(User, other).active
        assert count(Site) == 2


SITE_PAGES = [("get", "/admin/sites/{key}/settings"), ("post", "/admin/sites/{key}/settings"),
              ("post", "/admin/sites/{key}/bench"), ("post", "/admin/sites/{key}/distrust"),
              ("post", "/admin/sites/{key}/trust"), ("post", "/admin/sites/{key}/trust/{mark}/remove"),
              ("post", "/admin/sites/{key}/articles/{article}/close")]


@pytest.mark.parametrize("method, path", SITE_PAGES)
def test_moderator_of_site_a_gets_404_on_site_b(app, client, make_user, auth, two_sites, method, path):
    a, b = two_sites
    comment_id = add_comment(client, b, "https://b.example")
    with app.app_context():
        mark = AuthorTrust(site_id=b.id, email="x@example.org", trusted=False)
        db.session.add(mark)
        db.session.commit()
        mark_id, article_id = mark.id, db.session.get(Comment, comment_id).article_id
    make_user(sites=[a])
    auth.login()
    data = {**form_of(b.rules), "body": "hi", "email": "x@example.org", "comment_id": comment_id, "trusted": "yes"}
    response = getattr(client, method)(path.format(key=b.key, mark=mark_id, article=article_id), data=data)
    assert response.status_code == 404
    assert client.get(f"/admin/sites/{a.key}/settings").status_code == 200
    with app.app_context():
        assert count(AuditEvent) == 0 and count(AuthorTrust) == 1
        assert not db.session.get(Article, article_id).closed


def test_admin_may_use_every_sites_settings(app, client, admin, two_sites):
    _, b = two_sites
    comment_id = add_comment(client, b, "https://b.example")
    with app.app_context():
        article_id = db.session.get(Comment, comment_id).article_id
    assert client.post(f"/admin/sites/{b.key}/articles/{article_id}/close").status_code == 302
    assert client.post(f"/admin/sites/{b.key}/trust", data={"comment_id": comment_id, "trusted": "yes"}).status_code == 302


@pytest.mark.parametrize("action", ["approve", "reject", "flag"])
def test_moderator_of_site_a_gets_404_on_site_b_queue_items(app, client, make_user, auth, two_sites, action):
    a, b = two_sites
    comment_id = add_comment(client, b, "https://b.example")
    make_user(sites=[a])
    auth.login()
    assert client.post(f"/moderate/comments/{comment_id}/{action}", data={"version": 1}).status_code == 404
    queue = page(client.get("/moderate/"))
    assert f'id="c{comment_id}"' not in queue


def test_sites_page_lists_only_the_moderators_sites(client, make_user, auth, two_sites):
    a, b = two_sites
    make_user(sites=[a])
    auth.login()
    text = page(client.get("/admin/sites"))
    assert "Site A" in text and "Site B" not in text
    assert "Add a site" not in text


def test_admin_link_in_header_for_admins(client, admin):
    assert re.search(r'<a href="/admin/sites">Admin</a>', page(client.get("/moderate/")))


def test_pages_need_login(client, two_sites):
    response = client.get(f"/admin/sites/{two_sites[0].key}/settings")
    assert response.status_code == 302 and "/moderate/login" in response.headers["Location"]


# --- sites ----------------------------------------------------------------------


def test_admin_creates_a_site_and_sees_its_snippet(app, client, admin):
    response = client.post("/admin/sites", data={"name": "Riverside Gazette",
                                                "origins": "https://Gazette.example:443/\nhttp://localhost:8000"})
    assert response.status_code == 302
    with app.app_context():
        site = db.session.scalar(sa.select(Site))
        assert site.allowed_origins == ["https://gazette.example", "http://localhost:8000"]
        assert db.session.scalar(sa.select(AuditEvent.action)) == "site-created"
    text = page(client.get(response.headers["Location"]))
    assert f'&lt;div class=&#34;comments&#34; data-site=&#34;{site.key}&#34;&gt;' in text
    assert "http://comments.test/embed.js" in text


@pytest.mark.parametrize("origins, message", [
    ("gazette.example", "Entry 1 must be an origin like"),
    ("https://gazette.example/news", "Entry 1 must be an origin like"),
    ("", "at least one origin"),
])
def test_bad_origin_is_marked_beside_the_field(app, client, admin, origins, message):
    response = client.post("/admin/sites", data={"name": "Gazette", "origins": origins})
    assert response.status_code == 400
    assert re.search(rf'<p class="error" id="origins-error">[^<]*{message}', page(response))
    with app.app_context():
        assert count(Site) == 0


# --- people ---------------------------------------------------------------------


def test_admin_creates_a_moderator_for_one_site(app, client, admin, two_sites):
    a, _ = two_sites
    response = client.post("/admin/users", data={"email": "night@example.org", "role": "moderator",
                                                "password": PASSWORD, "sites": [str(a.id)]})
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "night@example.org"))
        assert [site.key for site in user.sites] == [a.key] and not user.all_sites and user.check_password(PASSWORD)


def test_user_form_errors_beside_fields(app, client, admin):
    response = client.post("/admin/users", data={"email": "nope", "role": "moderator", "password": "short"})
    assert response.status_code == 400
    text = page(response)
    assert 'id="email-error"' in text and "at least 10 characters" in text
    response = client.post("/admin/users", data={"email": "admin@example.org", "role": "admin", "password": PASSWORD})
    assert response.status_code == 400 and "There is already a user admin@example.org." in page(response)


def test_admin_assigns_sites_and_all_sites(app, client, admin, make_user, two_sites):
    a, b = two_sites
    user_id = make_user(sites=[a])
    assert client.post(f"/admin/users/{user_id}", data={"sites": [str(b.id)]}).status_code == 302
    with app.app_context():
        assert [s.key for s in db.session.get(User, user_id).sites] == [b.key]
    client.post(f"/admin/users/{user_id}", data={"all_sites": "y"})
    with app.app_context():
        assert db.session.get(User, user_id).all_sites


def test_deactivating_ends_the_users_sessions(app, make_user, two_sites):
    a, _ = two_sites
    moderator_client, admin_client = app.test_client(), app.test_client()
    user_id = make_user(sites=[a])
    make_user("admin@example.org", role="admin")
    Auth(moderator_client).login()
    Auth(admin_client).login("admin@example.org")
    assert moderator_client.get("/moderate/").status_code == 200
    assert admin_client.post(f"/admin/users/{user_id}/deactivate").status_code == 302
    assert moderator_client.get("/moderate/").status_code == 302
    assert Auth(moderator_client).login().status_code != 302
    with app.app_context():
        assert not db.session.get(User, user_id).active


def test_admin_cannot_deactivate_themselves(app, client, admin):
    client.post(f"/admin/users/{admin}/deactivate")
    with app.app_context():
        assert db.session.get(User, admin).active
    assert client.get("/moderate/").status_code == 200
