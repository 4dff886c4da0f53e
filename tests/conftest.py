"""Fixtures in flaskr's style: app, client, runner, plus factories for sites, users and comments.

The suite runs on SQLite by default and on PostgreSQL when MODERATION_TEST_DATABASE_URL is set.
The schema is built once per run by the migrations (as init-db does); every test starts empty."""
import os

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from moderation import create_app, rules
from moderation.extensions import db
from moderation.models import Role, Site, User

CHROMIUM = "/usr/bin/chromium"
ORIGIN = "https://news.example.org"
ARTICLE = ORIGIN + "/2026/11/riverside-park.html"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("MODERATION_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(revision="heads")
    return url


def empty_database() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(database_url):
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "PUBLIC_URL": "http://comments.test",
        "SERVER_NAME": "comments.test",
    })
    with app.app_context():
        empty_database()
    yield app
    with app.app_context():
        db.session.remove()
        empty_database()
        db.engine.dispose()  # its connections, the public reads' own included (db_engine.reader)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_site(app):
    """make_site(name=..., origins=[...], **rules) -> Site, committed."""
    def make(name="Riverside Gazette", origins=(ORIGIN,), **changes):
        with app.app_context():
            site_rules = rules.validate_rules({"allowed_origins": list(origins), "flood_seconds": 0, **changes})
            site = Site(name=name, rules=site_rules)
            db.session.add(site)
            db.session.commit()
            db.session.refresh(site)
            db.session.expunge(site)
            return site
    return make


@pytest.fixture
def site(make_site):
    return make_site()


@pytest.fixture
def make_user(app):
    """make_user(email, role="moderator", sites=[...], all_sites=False) -> user id."""
    def make(email="mod@example.org", role="moderator", sites=(), all_sites=False, password=PASSWORD):
        with app.app_context():
            user = User(email=email, role=Role(role), all_sites=all_sites,
                        sites=[db.session.get(Site, s.id) for s in sites])
            user.set_password(password)
            db.session.add(user)
            db.session.commit()
            return user.id
    return make


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email="mod@example.org", password=PASSWORD):
        return self.client.post("/moderate/login", data={"email": email, "password": password})

    def logout(self):
        return self.client.post("/moderate/logout")


@pytest.fixture
def auth(client):
    return Auth(client)


def comment_fields(site, **changes):
    fields = {"site": site.key, "url": ARTICLE, "title": "Council backs riverside park plan",
              "parent_id": None, "name": "Ada Lovelace", "email": "ada@example.org", "website": "",
              "body": "Good to see the footpath finally funded."}
    fields.update(changes)
    return fields


@pytest.fixture
def post_comment(client):
    """post_comment(site, **fields) -> the API's JSON answer, asserting 201."""
    def post(site, expect=201, **changes):
        response = client.post("/api/v1/comments", json=comment_fields(site, **changes),
                               headers={"Origin": ORIGIN})
        assert response.status_code == expect, response.get_json()
        return response.get_json()
    return post


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for every browser test; third-party cookies blocked, as the
    contract asks the widget to cope with."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--test-third-party-cookie-phaseout"])
        yield browser
        browser.close()
