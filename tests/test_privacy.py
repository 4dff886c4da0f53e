"""Personal data: export and erase by email (command line and admin page), and the IP purge."""
import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from moderation import notifications, privacy, rules, throttle, webhooks, workspace
from moderation.extensions import db
from moderation.models import (AuditEvent, AuthorTrust, Claim, Comment, LoginThrottle, Report, Site, UsedFormToken,
                               User, VerifiedEmail, utcnow)
from moderation.notifications import NotificationSetting, OutboxMessage

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


def test_purge_removes_old_ip_addresses_from_reports_and_login_throttling(app, runner, site):
    mine = store_comment(app, site, email=OTHER)
    with app.app_context():
        old, recent, by_token = (Report(comment_id=mine, reader=reader, reason="spam", created_at=utcnow() - age)
                                 for reader, age in (("ip:198.51.100.8", timedelta(days=31)),
                                                     ("ip:198.51.100.9", timedelta(days=2)),
                                                     ("key:abc", timedelta(days=31))))
        db.session.add_all([old, recent, by_token])
        throttle.record_failure(throttle.keys_for(EMAIL, "198.51.100.8"))
        db.session.add(LoginThrottle(key="ip:198.51.100.66", failures=30, blocked_until=utcnow() + timedelta(minutes=5)))
        db.session.commit()
        old_id = old.id
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert f"{site.key}: removed the IP address from 1 reader's report(s)" in result.output
    assert "Removed 1 login throttle(s) by IP address that no longer block." in result.output
    with app.app_context():
        readers = set(db.session.scalars(sa.select(Report.reader)))
        assert readers == {"ip:198.51.100.9", "key:abc", f"expired:{old_id}"}
        assert set(db.session.scalars(sa.select(LoginThrottle.key))) == {f"email:{EMAIL}", "ip:198.51.100.66"}


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


# --- erasure leaves nothing behind ---------------------------------------------------

ADA_IP = "203.0.113.77"
ADA_KEY = "ada-author-key-0123456789"
ADA_AGENT = "AdaBrowser/1.0 (Analytical Engine)"
# What must be gone after erasing: the email, the IP address (not a longer one that starts
# with it), the name and the user agent.
TRACES = re.compile(r"ada@example\.org|(?<![\d.])203\.0\.113\.77(?![\d])|lovelace|adabrowser", re.IGNORECASE)
# Every table, and how the test below puts the reader's data in it (or why it holds none).
TABLES = {
    "sites": "rules that block the email and the IP", "articles": "holds no personal data",
    "comments": "her comments", "users": "staff accounts only (removed with the user, not by a reader's erasure)",
    "moderator_sites": "holds no personal data", "audit_log": "an edit, bans, trust marks, a rules change",
    "author_trust": "marks by author token and by email", "reports": "reports she made, by token and by IP",
    "bans": "bans by email and by IP", "claims": "a claim of her comment", "used_form_tokens": "her form's nonce",
    "login_throttle": "failed logins with her email from her IP", "outbox": "mail to her, mail and webhooks about her",
    "notification_settings": "holds no personal data", "webhooks": "holds no personal data",
    "verified_emails": "her confirmed address",
}


def traces_in_database() -> list[str]:
    """Every cell of every table (search indexes included) that still shows a trace of the reader."""
    found = []
    for table in sa.inspect(db.engine).get_table_names():
        for row in db.session.execute(sa.text(f'SELECT * FROM "{table}"')).mappings():
            for column, value in row.items():
                shown = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                if TRACES.search(shown):
                    found.append(f"{table}.{column}: {shown[:120]!r}")
    return found


@pytest.fixture
def reader_everywhere(app, make_site, make_user):
    """The reader ada@example.org in every table that can hold her, through the code that writes there."""
    site = make_site("Riverside Gazette", blocked_emails=[EMAIL], blocked_ips=[ADA_IP])
    other = make_site("Hillside Herald")
    mod_id = make_user("mod@example.org", all_sites=True)
    digester_id = make_user("digest@example.org", all_sites=True)
    ada = store_comment(app, site, name="Ada Lovelace", ip=ADA_IP, author_key=ADA_KEY, user_agent=ADA_AGENT,
                        notify=True)
    held = store_comment(app, site, body="Waiting for a moderator.", ip=ADA_IP, author_key=ADA_KEY,
                         user_agent=ADA_AGENT, status="pending")
    store_comment(app, other, body="On the other site.", email="Ada@Example.org", ip=ADA_IP, author_key=ADA_KEY)
    grace = store_comment(app, site, body="A reply to Ada.", email=OTHER, name="Grace Hopper", ip="198.51.100.4",
                          parent_id=ada)
    grace_alone = store_comment(app, other, body="Grace on the other site.", email=OTHER, name="Grace Hopper",
                                ip="203.0.113.7")
    with app.app_context():
        moderator, comment = db.session.get(User, mod_id), db.session.get(Comment, ada)
        db.session.add_all([NotificationSetting(user_id=mod_id, site_id=site.id, mode="each"),
                            NotificationSetting(user_id=digester_id, site_id=site.id, mode="digest")])
        webhooks.register(db.session.get(Site, site.id), "https://hooks.example.net/in", list(webhooks.EVENTS))
        db.session.flush()
        notifications.comment_held(db.session.get(Comment, held))
        notifications.queue_digests(utcnow())
        notifications.comment_approved(db.session.get(Comment, grace))  # tells Ada of the reply
        webhooks.enqueue(comment, "comment.created")
        workspace.edit(moderator, comment, comment.version, "Ada's words, edited by the moderators.")
        workspace.ban(moderator, comment, "email", 7, note="spam")
        workspace.ban(moderator, comment, "ip", 7)
        workspace.report(db.session.get(Comment, grace), workspace.reader_of(ADA_KEY, ADA_IP), "spam",
                         "Reported by Ada Lovelace")
        workspace.report(db.session.get(Comment, grace_alone), workspace.reader_of(None, ADA_IP), "rude", "")
        db.session.add_all([
            AuthorTrust(site_id=site.id, author_key=ADA_KEY, author_name="Ada Lovelace", trusted=True),
            AuditEvent(site_id=site.id, comment_id=ada, action="author-trusted", detail={"author": "Ada Lovelace"}),
            AuthorTrust(site_id=other.id, email=EMAIL, trusted=False),
            AuditEvent(site_id=other.id, action="author-untrusted", detail={"email": EMAIL}),
            AuditEvent(site_id=site.id, action="rules-changed", detail={"before": {}, "after": db.session.get(
                Site, site.id).rules}),
            Claim(comment_id=ada, user_id=mod_id), UsedFormToken(nonce="n" * 32, comment_id=ada),
            VerifiedEmail(site_id=site.id, email=EMAIL, link_sent_at=utcnow(), verified_at=utcnow())])
        throttle.record_failure(throttle.keys_for(EMAIL, ADA_IP))
        db.session.commit()
        assert traces_in_database()  # the seeding worked
    return site, other, ada, grace


def test_every_table_is_covered_by_the_erasure_test(app):
    uncovered = sorted(set(db.metadata.tables) - set(TABLES))
    assert not uncovered, (f"new table(s) {uncovered}: store the reader's email or IP in them in "
                           "reader_everywhere, and make privacy.footprint find them")


@pytest.mark.parametrize("mode", privacy.ERASE_MODES)
def test_erase_leaves_no_trace_of_the_reader_in_any_table(app, runner, reader_everywhere, mode):
    site, other, ada, grace = reader_everywhere
    result = runner.invoke(args=["personal-data", "erase", EMAIL, "--mode", mode, "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert traces_in_database() == []
        # Others' data and the moderators' work stay.
        assert db.session.get(Comment, grace).author_email == OTHER
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 2
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(["edit", "ban"]))) == 3
        # The webhook call about Grace's comment (that Ada reported) stays; it names neither.
        assert db.session.scalars(sa.select(OutboxMessage.subject)).all() == ["comment.reported"]
        assert db.session.get(Site, site.id).rules["blocked_ips"] == []
    assert "2 ban(s), 2 trust mark(s) and 2 blocklist entr(ies) removed; 2 report(s) they made anonymised" \
        in result.output


def test_export_lists_everything_erase_removes(app, runner, reader_everywhere):
    site, other, ada, grace = reader_everywhere
    data = json.loads(runner.invoke(args=["personal-data", "export", EMAIL]).stdout)
    assert len(data["comments"]) == 3
    assert {(b["kind"], b["value"]) for b in data["bans"]} == {("email", EMAIL), ("ip", f"{ADA_IP}/32")}
    assert {(m["trusted"], m["email"]) for m in data["trust_marks"]} == {(True, None), (False, EMAIL)}
    assert [r["reason"] for r in data["reports_you_made"]] == ["spam", "rude"]
    edit = next(e for e in data["audit_log"] if e["action"] == "edit")
    assert edit["detail"]["original"] == "A fine article." and edit["comment_id"] == ada
    assert {(r["rule"], r["entry"]) for r in data["site_rules"]} == {("blocked_emails", EMAIL),
                                                                      ("blocked_ips", f"{ADA_IP}/32")}
    assert {t["key"] for t in data["login_throttling"]} == {f"email:{EMAIL}", f"ip:{ADA_IP}"}
    assert [(c["site"], c["verified_at"] is not None) for c in data["email_confirmations"]] == [(site.key, True)]
    assert [m["subject"] for m in data["emails_sent"]] == ["Grace Hopper replied to your comment on Riverside Gazette"]
    assert sorted(m["kind"] for m in data["messages_about_your_comments"]) == ["mail", "mail", "webhook"]
    erased = runner.invoke(args=["personal-data", "erase", EMAIL, "--mode", "delete", "--yes"])
    logged = audit_rows(app, "personal-data-erase")
    assert {site_id for site_id, _, _ in logged} == {site.id, other.id}
    detail = logged[0][2]
    assert (detail["bans"], detail["trust_marks"], detail["reports"]) == (
        len(data["bans"]), len(data["trust_marks"]), len(data["reports_you_made"]))
    assert detail["messages"] == len(data["emails_sent"]) + len(data["messages_about_your_comments"])
    assert (f"{len(data['login_throttling'])} login throttle(s) and {len(data['email_confirmations'])} "
            "email confirmation(s) removed") in erased.output
    assert EMAIL not in json.dumps(audit_rows(app, "personal-data-erase"))
