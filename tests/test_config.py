"""create_app's configuration layers, its refusal of the development key, wsgi.py, and error pages."""
import gc
import importlib.util
import os

import pytest

from moderation import PROJECT_ROOT, create_app
from moderation.config import DEV_SECRET_KEY

MEMORY = "sqlite://"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No MODERATION_* or FLASK_DEBUG from the shell running the tests."""
    for name in list(os.environ):
        if name.startswith("MODERATION_") and name != "MODERATION_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("MODERATION_QUEUE_PAGE_SIZE", "7")
    monkeypatch.setenv("MODERATION_PUBLIC_URL", "http://comments.example.net/")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": MEMORY})
    assert app.config["QUEUE_PAGE_SIZE"] == 7
    assert app.config["PUBLIC_URL"] == "http://comments.example.net"


def test_callers_config_wins_over_environment(monkeypatch):
    monkeypatch.setenv("MODERATION_QUEUE_PAGE_SIZE", "7")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": MEMORY, "QUEUE_PAGE_SIZE": 4})
    assert app.config["QUEUE_PAGE_SIZE"] == 4


def test_defaults_apply_without_overrides():
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": MEMORY})
    assert app.config["QUEUE_PAGE_SIZE"] == 25
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["MAX_CONTENT_LENGTH"] == 128 * 1024


def test_refuses_to_start_with_the_development_key():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SECRET_KEY": DEV_SECRET_KEY, "SQLALCHEMY_DATABASE_URI": MEMORY})


def test_refuses_the_development_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODERATION_SECRET_KEY", DEV_SECRET_KEY)
    with pytest.raises(RuntimeError, match="MODERATION_SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": MEMORY})


@pytest.mark.parametrize("config", [
    {"SECRET_KEY": "a-real-secret-from-the-environment"},
    {"SECRET_KEY": DEV_SECRET_KEY, "TESTING": True},
])
def test_starts_with_a_real_key_or_when_testing(config):
    app = create_app({"SQLALCHEMY_DATABASE_URI": MEMORY, **config})
    assert app.config["SECRET_KEY"] == config["SECRET_KEY"]


def test_https_public_url_makes_the_session_cookie_secure_and_host_only():
    app = create_app({"TESTING": True, "SECRET_KEY": "s", "SQLALCHEMY_DATABASE_URI": MEMORY,
                      "PUBLIC_URL": "https://comments.example.net/", "SERVER_NAME": "comments.example.net"})
    assert app.config["PUBLIC_URL"] == "https://comments.example.net"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-session"
    response = app.test_client().get("/moderate/login", base_url="https://comments.example.net")
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("__Host-session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    assert "Domain=" not in cookie


def test_http_public_url_keeps_the_plain_cookie():
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": MEMORY, "PUBLIC_URL": "http://127.0.0.1:5000"})
    assert app.config["SESSION_COOKIE_NAME"] == "session"
    assert not app.config.get("SESSION_COOKIE_SECURE")


def test_wsgi_exposes_the_app(monkeypatch):
    monkeypatch.setenv("MODERATION_SECRET_KEY", "a-real-secret-for-production")
    monkeypatch.setenv("MODERATION_SQLALCHEMY_DATABASE_URI", MEMORY)
    frozen_with = []  # not the test process's own objects: record what the worker would freeze
    spec = importlib.util.spec_from_file_location("wsgi_under_test", os.path.join(PROJECT_ROOT, "wsgi.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(gc, "freeze", lambda: frozen_with.append(getattr(module, "app", None)))
    spec.loader.exec_module(module)
    assert module.app.name == "moderation"
    assert module.app.config["SECRET_KEY"] == "a-real-secret-for-production"
    assert not module.app.testing
    assert frozen_with == [module.app]  # once the app is built, so that its objects are among the frozen


# --- error pages -------------------------------------------------------------


def test_api_errors_are_json(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.is_json
    assert set(response.get_json()) == {"error"}
    assert response.get_json()["error"]


def test_other_errors_are_html_pages(client):
    response = client.get("/nothing")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "404" in page and "<html" in page


def test_error_pages_keep_the_security_headers(client):
    response = client.get("/nothing")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.fixture
def unreachable_database():
    app = create_app({"TESTING": True, "SECRET_KEY": "s",
                      "SQLALCHEMY_DATABASE_URI": "sqlite:////nonexistent-dir/x.sqlite"})
    return app.test_client()


def test_unreachable_database_is_503_json_under_api(unreachable_database):
    response = unreachable_database.get("/api/v1/threads", query_string={"site": "x", "url": "y"})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.is_json
    assert "database" in response.get_json()["error"]


def test_unreachable_database_is_503_html_elsewhere(unreachable_database):
    response = unreachable_database.get("/embed/x", query_string={"url": "https://news.example.org/a"})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "text/html"
    assert "cannot reach its database" in response.get_data(as_text=True)
