"""The command line: init-db, add-site, create-user and site-rules, through Flask's CLI runner."""
import json
import re

import pytest
import sqlalchemy as sa

from moderation.extensions import db
from moderation.models import AuditEvent, Role, Site, User
from moderation.rules import DEFAULT_RULES

from .conftest import ORIGIN, PASSWORD, count

CONTRACT_RULE_KEYS = {"moderation_mode", "blocked_words", "held_words", "max_links", "flood_seconds",
                      "max_length", "close_after_days", "allowed_origins"}
NEW_RULES = {
    "moderation_mode": "known_authors",
    "blocked_words": ["casino"],
    "held_words": ["refund*"],
    "max_links": 5,
    "flood_seconds": 30,
    "max_length": 2000,
    "close_after_days": 14,
    "allowed_origins": ["https://blog.example.com"],
}


def site_rules(app, key):
    with app.app_context():
        return db.session.scalar(sa.select(Site.rules).where(Site.key == key))


def user_by_email(app, email):
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is not None:
            user.site_keys = [site.key for site in user.sites]
            db.session.expunge(user)
        return user


def rows(app, model):
    with app.app_context():
        return count(model)


# --- init-db -----------------------------------------------------------------------


def test_init_db_twice_keeps_data(app, runner, site):
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
    assert site_rules(app, site.key) == site.rules


# --- add-site ----------------------------------------------------------------------


def add_site(runner, name="Riverside Gazette", *origins):
    args = ["add-site", name]
    for origin in origins or (ORIGIN,):
        args += ["--origin", origin]
    return runner.invoke(args=args)


def snippet_key(output):
    return re.search(r'data-site="([^"]*)"', output).group(1)


def test_add_site_prints_snippet(app, runner):
    result = add_site(runner)
    assert result.exit_code == 0, result.output
    key = snippet_key(result.output)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key)
    assert '<script src="http://comments.test/embed.js"' in result.output
    assert ORIGIN in site_rules(app, key)["allowed_origins"]


def test_add_site_with_several_origins(app, runner):
    result = add_site(runner, "Gazette", ORIGIN, "https://www.example.org")
    assert result.exit_code == 0, result.output
    assert site_rules(app, snippet_key(result.output))["allowed_origins"] == [ORIGIN, "https://www.example.org"]


def test_add_site_gives_each_site_its_own_key(runner):
    keys = {snippet_key(add_site(runner, name).output) for name in ("First", "Second")}
    assert len(keys) == 2


@pytest.mark.parametrize("origin", ["news.example.org", "https://x.org/path", "ftp://x.org", ""])
def test_add_site_malformed_origin(app, runner, origin):
    result = add_site(runner, "Gazette", origin)
    assert result.exit_code != 0
    assert "--origin" in result.output
    assert "Traceback" not in result.output
    assert rows(app, Site) == 0


def test_add_site_requires_an_origin(app, runner):
    result = runner.invoke(args=["add-site", "Gazette"])
    assert result.exit_code != 0
    assert "--origin" in result.output
    assert rows(app, Site) == 0


# --- create-user -------------------------------------------------------------------


def create_user(runner, email, *options, password=PASSWORD, confirmation=PASSWORD):
    return runner.invoke(args=["create-user", email, *options], input=f"{password}\n{confirmation}\n")


@pytest.mark.parametrize("role", ["admin", "moderator"])
def test_create_user(app, runner, role):
    result = create_user(runner, "someone@example.org", "--role", role)
    assert result.exit_code == 0, result.output
    user = user_by_email(app, "someone@example.org")
    assert user.role == Role(role)
    assert user.check_password(PASSWORD)


def test_create_user_password_is_hashed(app, runner):
    create_user(runner, "someone@example.org", "--role", "admin")
    user = user_by_email(app, "someone@example.org")
    assert PASSWORD not in user.password_hash
    assert user.check_password(PASSWORD)
    assert not user.check_password(PASSWORD + "x")


def test_create_moderator_for_one_site(app, runner, make_site):
    site = make_site()
    make_site(name="Other paper")
    result = create_user(runner, "mod@example.org", "--role", "moderator", "--site", site.key)
    assert result.exit_code == 0, result.output
    user = user_by_email(app, "mod@example.org")
    assert user.site_keys == [site.key]
    assert user.all_sites is False


def test_create_moderator_without_site_sees_every_site(app, runner, site):
    result = create_user(runner, "mod@example.org", "--role", "moderator")
    assert result.exit_code == 0, result.output
    user = user_by_email(app, "mod@example.org")
    assert user.all_sites is True
    assert user.site_keys == []


def test_create_user_unknown_site(app, runner, site):
    result = create_user(runner, "mod@example.org", "--role", "moderator", "--site", "nosuchkey")
    assert result.exit_code != 0
    assert "nosuchkey" in result.output
    assert rows(app, User) == 0


def test_create_user_duplicate_email(app, runner, make_user):
    make_user("mod@example.org")
    result = create_user(runner, "Mod@Example.org", "--role", "moderator")
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert rows(app, User) == 1


@pytest.mark.parametrize("password, confirmation, message", [
    ("short", "short", "at least"),
    (PASSWORD, PASSWORD + "x", "do not match"),
    ("", "", "at least"),
])
def test_create_user_bad_password(app, runner, password, confirmation, message):
    result = create_user(runner, "mod@example.org", "--role", "moderator",
                         password=password, confirmation=confirmation)
    assert result.exit_code != 0
    assert message in result.output
    assert rows(app, User) == 0


@pytest.mark.parametrize("options", [[], ["--role", "owner"]])
def test_create_user_needs_a_valid_role(app, runner, options):
    result = create_user(runner, "mod@example.org", *options)
    assert result.exit_code != 0
    assert "--role" in result.output
    assert rows(app, User) == 0


def test_create_user_malformed_email(app, runner):
    result = create_user(runner, "not-an-email", "--role", "admin")
    assert result.exit_code != 0
    assert "EMAIL" in result.output
    assert rows(app, User) == 0


# --- site-rules ----------------------------------------------------------------------


def write_json(tmp_path, document):
    path = tmp_path / "rules.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return str(path)


def test_site_rules_prints_json(runner, site):
    result = runner.invoke(args=["site-rules", site.key])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert CONTRACT_RULE_KEYS <= set(printed)
    assert printed == site.rules


def test_site_rules_load_replaces_every_rule(app, runner, site, tmp_path):
    result = runner.invoke(args=["site-rules", site.key, "--load", write_json(tmp_path, NEW_RULES)])
    assert result.exit_code == 0, result.output
    assert site_rules(app, site.key) == {**DEFAULT_RULES, **NEW_RULES}
    assert json.loads(runner.invoke(args=["site-rules", site.key]).output) == {**DEFAULT_RULES, **NEW_RULES}


def test_site_rules_load_fills_missing_keys_with_defaults(app, runner, site, tmp_path):
    path = write_json(tmp_path, {"max_links": 7, "allowed_origins": [ORIGIN]})
    assert runner.invoke(args=["site-rules", site.key, "--load", path]).exit_code == 0
    assert site_rules(app, site.key) == dict(DEFAULT_RULES, max_links=7, allowed_origins=[ORIGIN])


def test_site_rules_load_writes_audit_event(app, runner, site, tmp_path):
    runner.invoke(args=["site-rules", site.key, "--load", write_json(tmp_path, NEW_RULES)])
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent))
    assert event.action == "rules-changed"
    assert event.site_id == site.id
    assert event.detail == {"before": site.rules, "after": {**DEFAULT_RULES, **NEW_RULES}}


@pytest.mark.parametrize("document, named", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (dict(NEW_RULES, max_links="many"), "max_links"),
    (dict(NEW_RULES, moderation_mode="sometimes"), "moderation_mode"),
    (dict(NEW_RULES, colour="blue"), "colour"),
    (dict(NEW_RULES, flood_seconds=-1), "flood_seconds"),
    (dict(NEW_RULES, allowed_origins=["news.example.org"]), "allowed_origins"),
    ("[" * 100_000, "not valid JSON"),
])
def test_site_rules_bad_file_changes_nothing(app, runner, site, tmp_path, document, named):
    result = runner.invoke(args=["site-rules", site.key, "--load", write_json(tmp_path, document)])
    assert result.exit_code != 0
    assert named in result.output
    assert "Nothing was changed" in result.output
    assert "Traceback" not in result.output
    assert site_rules(app, site.key) == site.rules
    assert rows(app, AuditEvent) == 0


def test_site_rules_file_not_found(app, runner, site, tmp_path):
    result = runner.invoke(args=["site-rules", site.key, "--load", str(tmp_path / "missing.json")])
    assert result.exit_code != 0
    assert "missing.json" in result.output
    assert site_rules(app, site.key) == site.rules


@pytest.mark.parametrize("load", [False, True])
def test_site_rules_unknown_site(runner, site, tmp_path, load):
    args = ["site-rules", "nosuchkey"] + (["--load", write_json(tmp_path, NEW_RULES)] if load else [])
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert "nosuchkey" in result.output
