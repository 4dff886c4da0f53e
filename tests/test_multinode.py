"""Two app servers (gunicorn on two ports) on one PostgreSQL and one Redis, as in production:
caches, flood control, rate limits and moderator sessions hold across them.

Uses the machine's PostgreSQL (a fresh database, dropped afterwards) and Redis; skips when
either is unreachable. MODERATION_MULTINODE_POSTGRES and MODERATION_MULTINODE_REDIS override
the addresses."""
import os
import re
import secrets
import socket
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from moderation import create_app
from moderation.extensions import db
from moderation.models import Comment, Role, Site, User
from moderation.rules import validate_rules

from .conftest import ARTICLE, ORIGIN, PASSWORD, comment_fields
from .test_production import free_port, start_gunicorn, stop

pytestmark = pytest.mark.multinode
POSTGRES = os.environ.get("MODERATION_MULTINODE_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MODERATION_MULTINODE_REDIS", "redis://127.0.0.1:6379/0")
EMAIL = "night-desk@example.org"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or default_port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def database():
    """A fresh PostgreSQL database with the schema, a site and a moderator."""
    if not reachable(POSTGRES, 5432):
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES}")
    name = f"moderation_multinode_{secrets.token_hex(4)}"
    server = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as error:
        pytest.skip(f"cannot create a PostgreSQL database: {error}")
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    app.test_cli_runner().invoke(args=["init-db"], catch_exceptions=False)
    yield app, url
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    with server.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.dispose()


@pytest.fixture(scope="module")
def nodes(database, tmp_path_factory):
    """Node A and node B: two gunicorn servers sharing the database, Redis and SECRET_KEY."""
    import redis

    if not reachable(REDIS, 6379):
        pytest.skip(f"Redis is not reachable at {REDIS}")
    app, url = database
    prefix = f"moderation-test-{secrets.token_hex(4)}:"
    env = {
        "MODERATION_SQLALCHEMY_DATABASE_URI": url, "MODERATION_SECRET_KEY": secrets.token_hex(16),
        "MODERATION_CACHE_REDIS_URL": REDIS, "MODERATION_CACHE_KEY_PREFIX": prefix,
        "MODERATION_RATELIMIT_STORAGE_URI": REDIS, "MODERATION_RATELIMIT_KEY_PREFIX": prefix + "limits",
        "MODERATION_COMMENT_RATE_LIMIT": "4 per minute",
        # Behind one proxy, as in deploy/nginx.conf: X-Forwarded-For names the reader.
        "MODERATION_PROXY_COUNT": "1", "MODERATION_REQUEST_LOG": "false",
    }
    logs = tmp_path_factory.mktemp("nodes")
    servers, bases = [], []
    try:
        for name in "ab":
            port = free_port()
            servers.append(start_gunicorn(env, port, logs / f"{name}.log", workers=2))
            bases.append(f"http://127.0.0.1:{port}")
        yield {"a": bases[0], "b": bases[1], "app": app, "redis": redis.Redis.from_url(REDIS), "prefix": prefix}
    finally:
        for server in servers:
            stop(server)
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


def make_site(app, **changes) -> Site:
    with app.app_context():
        site = Site(name="Riverside Gazette", rules=validate_rules({"allowed_origins": [ORIGIN], **changes}))
        db.session.add(site)
        db.session.commit()
        db.session.refresh(site)
        db.session.expunge(site)
        return site


def post(base: str, site: Site, reader_ip: str, **changes) -> requests.Response:
    return requests.post(base + "/api/v1/comments", json=comment_fields(site, **changes), timeout=10,
                         headers={"Origin": ORIGIN, "X-Forwarded-For": reader_ip})


def thread(base: str, site: Site) -> dict:
    response = requests.get(base + "/api/v1/threads", params={"site": site.key, "url": ARTICLE}, timeout=10)
    assert response.status_code == 200
    return response.json()


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def logged_in(nodes) -> requests.Session:
    """A moderator's browser, logged in through node A."""
    with nodes["app"].app_context():
        if not db.session.scalar(sa.select(User).where(User.email == EMAIL)):
            user = User(email=EMAIL, role=Role.MODERATOR, all_sites=True)
            user.set_password(PASSWORD)
            db.session.add(user)
            db.session.commit()
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = "198.51.100.7"
    login = browser.get(nodes["a"] + "/moderate/login", timeout=10)
    answer = browser.post(nodes["a"] + "/moderate/login", timeout=10, allow_redirects=False, data={
        "email": EMAIL, "password": PASSWORD, "csrf_token": csrf_token(login.text)})
    assert answer.status_code in (302, 303), answer.text[:500]
    return browser


def test_a_moderator_logged_in_on_a_is_logged_in_on_b(nodes):
    browser = logged_in(nodes)
    on_b = browser.get(nodes["b"] + "/moderate/", timeout=10, allow_redirects=False)
    assert on_b.status_code == 200 and "Log in" not in on_b.text


def test_a_comment_approved_on_a_is_public_on_b_at_once(nodes):
    site = make_site(nodes["app"], flood_seconds=0)
    comment_id = post(nodes["b"], site, "203.0.113.1").json()["id"]
    assert thread(nodes["b"], site)["count"] == 0  # B has cached the empty thread
    assert thread(nodes["a"], site)["count"] == 0
    assert list(nodes["redis"].scan_iter(match=nodes["prefix"] + "thread:*")), "the thread is cached in Redis"
    with nodes["app"].app_context():
        version = db.session.get(Comment, comment_id).version
    browser = logged_in(nodes)
    queue = browser.get(nodes["a"] + "/moderate/", timeout=10).text
    decided = browser.post(f"{nodes['a']}/moderate/comments/{comment_id}/approve", timeout=10,
                           allow_redirects=False, data={"version": version, "csrf_token": csrf_token(queue)})
    assert decided.status_code in (302, 303)
    assert [c["id"] for c in thread(nodes["b"], site)["comments"]] == [comment_id]
    widget = requests.get(f"{nodes['b']}/embed/{site.key}", params={"url": ARTICLE}, timeout=10)
    assert "Good to see the footpath finally funded." in widget.text


def test_a_flood_split_across_a_and_b_is_caught(nodes):
    site = make_site(nodes["app"], flood_seconds=60)
    assert post(nodes["a"], site, "203.0.113.2").status_code == 201
    second = post(nodes["b"], site, "203.0.113.2", body="And another thing about the ferry steps.")
    assert second.status_code == 429 and second.json()["error"]
    other_reader = post(nodes["b"], site, "203.0.113.3", name="Grace Hopper", email="grace@example.org")
    assert other_reader.status_code == 201  # another reader is not held up


def test_rate_limit_counts_requests_on_both_nodes(nodes):
    site = make_site(nodes["app"], flood_seconds=0)
    answers = [post(nodes["ab"[n % 2]], site, "203.0.113.4", body=f"Point number {n} on the park plan.").status_code
               for n in range(5)]
    assert answers == [201, 201, 201, 201, 429]  # 4 per minute, counted in Redis across A and B
