"""Personal data: export and erase by email (command line and admin page), and the IP purge."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from moderation import rules
from moderation.extensions import db
from moderation.models import AuditEvent, Comment, utcnow

from .conftest import ARTICLE, Auth
from .data_helpers import load, store_comment

EMAIL = "ada@example.org"
OTHER = "grace@example.org"


def audit_rows(app, action):
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()
        return [(row.site_id, row.actor, row.detail) for row in rows]


@pytest.fixture
def two_sites(make_site):
    return make_site("Riverside Gazette"), make_site("Hillside Herald")


def test_cli_export_lists_every_comment_of_the_email_on_every_site(app, runner, two_sites):
    first, second = two_sites
    a = store_comment(app, first, body="First thoughts.", ip="203.0.113.5")
    b = store_comment(app, second, body="Second thoughts.", email="Ada@Example.org", status="pending")
    store_comment(app, first, body="Someone else.", email=OTHER)
    result = runner.invoke(args=["personal-data", "export", EMAIL])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["id"] for c in data["comments"]] == [a, b]
    one = data["comments"][0]
    assert one["ip"] == "203.0.113.5" and one["article_url"] == ARTICLE and one["status"] == "approved"
    assert one["site"] == first.key and one["created_at"].endswith("Z") and one["user_agent"]
    assert data["comments"][1]["status"] == "pending"
    assert "Someone else." not in result.stdout
    logged = audit_rows(app, "personal-data-export")
    assert {site for site, _, _ in logged} == {first.id, second.id}
    assert all(actor == "command line" and EMAIL not in json.dumps(detail) for _, actor, detail in logged)


def test_cli_erase_anonymise_keeps_the_text_and_removes_the_person(app, runner, site):
    mine = store_comment(app, site, body="Keep my words.")
    theirs = store_comment(app, site, body="Not mine.", email=OTHER)
    result = runner.invoke(args=["personal-data", "erase", EMAIL, "--mode", "anonymise", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 comment(s) anonymised" in result.output
    comment = load(app, Comment, mine)
    assert (comment.author_name, comment.author_email, comment.author_website, comment.ip,
            comment.user_agent, comment.author_key) == ("Anonymous", "", "", None, "", None)
    assert comment.body == "Keep my words."
    assert load(app, Comment, theirs).author_email == OTHER
    [(site_id, actor, detail)] = audit_rows(app, "personal-data-erase")
    assert site_id == site.id and detail["comments"] == [mine] and EMAIL not in json.dumps(detail)
    export = runner.invoke(args=["personal-data", "export", EMAIL])
    assert json.loads(export.stdout)["comments"] == []


def test_cli_erase_delete_keeps_a_comment_with_replies_as_deleted(app, runner, site):
    parent = store_comment(app, site, body="Start of a thread.")
    reply = store_comment(app, site, body="A reply from someone else.", email=OTHER, parent_id=parent)
    alone = store_comment(app, site, body="Nobody answered this one.")
    result = runner.invoke(args=["personal-data", "erase", EMAIL, "--mode", "delete", "--yes"])
    assert result.exit_code == 0, result.output
    assert load(app, Comment, alone) is None
    kept = load(app, Comment, parent)
    assert (kept.author_name, kept.body, kept.author_email, kept.ip) == ("[deleted]", "[deleted]", "", None)
    assert "Start of a thread" not in kept.body_html
    assert load(app, Comment, reply).parent_id == parent
    assert "1 comment(s) deleted, 1 kept as" in result.output


def test_cli_erase_asks_for_confirmation(app, runner, site):
    mine = store_comment(app, site)
    result = runner.invoke(args=["personal-data", "erase", EMAIL, "--mode", "delete"], input="n\n")
    assert result.exit_code != 0
    assert load(app, Comment, mine) is not None


def test_cli_erase_needs_a_mode(runner, site):
    result = runner.invoke(args=["personal-data", "erase", EMAIL, "--yes"])
    assert result.exit_code != 0 and "--mode" in result.output


def test_purge_removes_ip_addresses_older_than_the_sites_retention(app, runner, make_site):
    default = make_site("Thirty days")
    short = make_site("Seven days", ip_retention_days=7)
    old_default = store_comment(app, default, created_at=utcnow() - timedelta(days=31))
    recent_default = store_comment(app, default, created_at=utcnow() - timedelta(days=10))
    old_short = store_comment(app, short, created_at=utcnow() - timedelta(days=10))
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert f"{default.key}: removed the IP address and user agent of 1 comment(s)" in result.output
    assert f"{short.key}: removed the IP address and user agent of 1 comment(s)" in result.output
    assert load(app, Comment, old_default).ip is None and load(app, Comment, old_default).user_agent == ""
    assert load(app, Comment, old_short).ip is None
    assert load(app, Comment, recent_default).ip == "192.0.2.10"
    again = runner.invoke(args=["purge"])
    assert "No IP addresses had expired." in again.output
    assert len(audit_rows(app, "ip-purge")) == 2


def test_ip_retention_days_is_a_rule_with_a_default_of_30():
    assert rules.validate_rules({})["ip_retention_days"] == 30
    with pytest.raises(rules.RulesError, match="ip_retention_days"):
        rules.validate_rules({"ip_retention_days": -1})


# --- the admin page ----------------------------------------------------------------


@pytest.fixture
def admin(client, make_user):
    make_user("admin@example.org", role="admin")
    Auth(client).login("admin@example.org")
    return client


def test_privacy_page_is_for_admins_only(client, make_user, site):
    assert client.get("/admin/privacy/").status_code == 302  # to the login page
    make_user("mod@example.org", all_sites=True)
    Auth(client).login()
    assert client.get("/admin/privacy/").status_code == 403
    assert client.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "delete",
                                                      "erase-confirm": "y"}).status_code == 403


def test_admin_exports_a_download(app, admin, site):
    store_comment(app, site, body="Exported through the page.")
    page = admin.get("/admin/privacy/")
    assert 'for="export-email"' in page.get_data(as_text=True)
    response = admin.post("/admin/privacy/export", data={"export-email": EMAIL})
    assert response.status_code == 200
    assert response.mimetype == "application/json" and "attachment" in response.headers["Content-Disposition"]
    assert response.get_json()["comments"][0]["body"] == "Exported through the page."
    [(_, actor, _)] = audit_rows(app, "personal-data-export")
    assert actor == "admin@example.org"


def test_admin_erase_needs_confirmation_then_erases(app, admin, site):
    mine = store_comment(app, site)
    refused = admin.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "anonymise"})
    assert refused.status_code == 400 and "cannot be undone" in refused.get_data(as_text=True)
    assert load(app, Comment, mine).author_email == EMAIL
    done = admin.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "anonymise",
                                                    "erase-confirm": "y"}, follow_redirects=True)
    assert "1 comment(s) anonymised" in done.get_data(as_text=True)
    assert load(app, Comment, mine).author_name == "Anonymous"
    [(_, actor, _)] = audit_rows(app, "personal-data-erase")
    assert actor == "admin@example.org"


def test_admin_erase_without_csrf_token_changes_nothing(app, admin, site):
    mine = store_comment(app, site)
    app.config["WTF_CSRF_ENABLED"] = True
    response = admin.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "delete",
                                                        "erase-confirm": "y"})
    assert response.status_code == 400
    assert load(app, Comment, mine) is not None
