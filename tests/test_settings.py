"""A site's settings page: every rule, validation beside the field, the audit log, the preview on past
comments, the test bench, per-rule figures, closing articles, and trusted or untrusted authors."""
import json
import re

import pytest
import sqlalchemy as sa

from .conftest import ORIGIN, comment_fields, count
from moderation import rules
from moderation.extensions import db
from moderation.models import Article, AuditEvent, AuthorTrust, Comment, Site


@pytest.fixture
def moderator(make_user, auth, site):
    make_user(sites=[site])
    assert auth.login().status_code == 302


def form_of(site_rules: dict, **changes) -> dict:
    """What the settings form sends for a rules document."""
    data = {key: "\n".join(value) if isinstance(value, list) else str(value)
            for key, value in {**rules.DEFAULT_RULES, **site_rules, **changes}.items()}
    return data


def saved_rules(app, site) -> dict:
    with app.app_context():
        return db.session.get(Site, site.id).rules


def page(response) -> str:
    return response.get_data(as_text=True)


def add_comment(client, site, expect=201, **changes):
    response = client.post("/api/v1/comments", json=comment_fields(site, **changes), headers={"Origin": ORIGIN})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def error_of(text: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', text)
    return match.group(1) if match else ""


# --- showing and saving the rules ---------------------------------------------------------------


def test_page_shows_every_rule_with_its_value(client, moderator, site):
    text = page(client.get(f"/admin/sites/{site.key}/settings"))
    for key in rules.DEFAULT_RULES:
        assert f'name="{key}"' in text, key
    assert ORIGIN in text
    assert "anyone can type someone else's name and email" in text


def test_save_changes_rules_and_writes_audit_with_actor(app, client, moderator, site):
    data = form_of(site.rules, moderation_mode="known_authors", blocked_words="casino*\nviagra",
                   held_words_action="flag", blocked_ips="203.0.113.7/24", min_length="5", max_depth="3")
    response = client.post(f"/admin/sites/{site.key}/settings", data=data)
    assert response.status_code == 302
    after = saved_rules(app, site)
    assert after["blocked_words"] == ["casino*", "viagra"] and after["blocked_ips"] == ["203.0.113.0/24"]
    assert after["held_words_action"] == "flag" and after["min_length"] == 5 and after["max_depth"] == 3
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent))
    assert (event.action, event.actor, event.site_id) == ("rules-changed", "mod@example.org", site.id)
    assert event.detail == {"before": rules.with_defaults(site.rules), "after": after}
    assert "Rules changed by mod@example.org" in page(client.get(response.headers["Location"]))


def test_every_bad_field_is_marked_and_nothing_is_saved(app, client, moderator, site):
    data = form_of(site.rules, allowed_origins="https://ok.example\nnot an origin", blocked_ips="10.0.0.0/33",
                   held_words="\n".join(f"w{n}" for n in range(5001)), flood_seconds="-3")
    response = client.post(f"/admin/sites/{site.key}/settings", data=data)
    assert response.status_code == 400
    text = page(response)
    assert "Entry 2 must be an origin like" in error_of(text, "allowed_origins")
    assert "Entry 1 must be an IP address or range" in error_of(text, "blocked_ips")
    assert error_of(text, "held_words") == "Must have at most 5000 entries, got 5001"
    assert "from 0 to 86400, got -3" in error_of(text, "flood_seconds")
    assert "w4999" in text  # what was typed is kept
    assert saved_rules(app, site) == site.rules
    with app.app_context():
        assert count(AuditEvent) == 0


def test_min_length_over_max_length_is_refused(app, client, moderator, site):
    response = client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, min_length="50",
                                                                           max_length="20"))
    assert response.status_code == 400
    assert "Must not be more than max_length (20)" in error_of(page(response), "min_length")


def test_not_a_number_is_marked(client, moderator, site):
    response = client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, max_links="many"))
    assert response.status_code == 400 and error_of(page(response), "max_links")


def test_settings_round_trip_through_site_rules(app, client, runner, moderator, site, tmp_path):
    client.post(f"/admin/sites/{site.key}/settings",
                data=form_of(site.rules, blocked_emails="spam@x.org", blocked_words_action="hold"))
    printed = runner.invoke(args=["site-rules", site.key]).output
    document = json.loads(printed)
    assert document == saved_rules(app, site) and document["blocked_emails"] == ["spam@x.org"]
    path = tmp_path / "rules.json"
    path.write_text(printed)
    assert runner.invoke(args=["site-rules", site.key, "--load", str(path)]).exit_code == 0
    assert saved_rules(app, site) == document


# --- preview on past comments, test bench, figures -----------------------------------------------


def test_preview_lists_changed_decisions_and_saves_nothing(app, client, moderator, site):
    casino = add_comment(client, site, body="Try the casino tonight.")["id"]
    add_comment(client, site, body="A fine plan for the park.", email="b@example.org")
    response = client.post(f"/admin/sites/{site.key}/settings",
                           data=form_of(site.rules, blocked_words="casino", preview="1"))
    assert response.status_code == 200
    text = page(response)
    assert "Preview: 1 of the last 2 comments would be decided differently" in text
    assert f'<a href="/moderate/comments/{casino}">#{casino}</a>' in text
    assert "matched blocked word &#39;casino&#39;" in text
    assert saved_rules(app, site)["blocked_words"] == []


def test_bench_shows_the_checks_that_fire(client, moderator, site, app):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, held_words="refund*",
                                                                  blocked_email_domains="spam.example"))
    text = page(client.post(f"/admin/sites/{site.key}/bench", data={"body": "I want my rеfunds", "name": "Bo"}))
    assert "Decision: pending" in text
    assert "held: matched held word &#39;refund*&#39; (as &#39;rеfunds&#39;)" in text
    assert "held: pre-moderation" in text
    text = page(client.post(f"/admin/sites/{site.key}/bench", data={"body": "Hello", "email": "a@spam.example"}))
    assert "Decision: rejected" in text and "blocked email domain &#39;spam.example&#39;" in text
    with app.app_context():
        assert count(Comment) == 0


def test_bench_shows_a_refusal(client, moderator, site):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, min_length="20"))
    text = page(client.post(f"/admin/sites/{site.key}/bench", data={"body": "Too short"}))
    assert "Decision: refused (400)" in text and "Your comment is too short" in text


def test_rule_figures_count_hits_and_overrulings(app, client, moderator, site):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, held_words="refund"))
    first = add_comment(client, site, body="refund now")["id"]
    add_comment(client, site, body="refund later", email="b@example.org")
    client.post(f"/moderate/comments/{first}/approve", data={"version": 1})
    text = page(client.get(f"/admin/sites/{site.key}/settings"))
    assert re.search(r"<td>held words</td><td>2</td><td>1 \(50%\)</td>", text), text[text.find("Rules at work"):][:800]
    assert re.search(r"<td>moderation mode</td><td>2</td><td>1 \(50%\)</td>", text)


# --- closing articles by hand ------------------------------------------------------------------------


def test_close_and_reopen_an_article(app, client, moderator, site):
    add_comment(client, site)
    with app.app_context():
        article_id = db.session.scalar(sa.select(Article.id))
    assert client.post(f"/admin/sites/{site.key}/articles/{article_id}/close").status_code == 302
    assert add_comment(client, site, expect=403, body="Another.") == {"error": "Comments are closed on this article."}
    client.post(f"/admin/sites/{site.key}/articles/{article_id}/open")
    add_comment(client, site, body="Another.")
    with app.app_context():
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "article-closed", "article-opened"]


# --- trusted and untrusted authors ---------------------------------------------------------------------


def test_trusted_author_is_published_at_once_in_known_authors_mode(app, client, moderator, site):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, moderation_mode="known_authors"))
    first = add_comment(client, site)
    assert first["status"] == "pending"
    response = client.post(f"/admin/sites/{site.key}/trust", data={"comment_id": first["id"], "trusted": "yes"})
    assert response.status_code == 302
    second = add_comment(client, site, body="Second thought.", author_token=first["author_token"])
    assert second["status"] == "approved"
    # The same name and email without the author token is a new author.
    assert add_comment(client, site, body="Third.")["status"] == "pending"
    with app.app_context():
        assert db.session.get(Comment, second["id"]).reasons == ["approved: trusted author"]
        assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action.like("author-%"))) == "author-trusted"


def test_untrusted_author_always_waits(app, client, moderator, site):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, moderation_mode="post"))
    first = add_comment(client, site)
    assert first["status"] == "approved"
    client.post(f"/admin/sites/{site.key}/trust", data={"comment_id": first["id"], "trusted": "no"})
    # By token, and by email from another browser.
    assert add_comment(client, site, body="Again.", author_token=first["author_token"])["status"] == "pending"
    later = add_comment(client, site, body="And again.", url=ORIGIN + "/other.html")
    with app.app_context():
        assert db.session.get(Comment, later["id"]).reasons == ["held: author marked untrusted by a moderator"]


def test_distrust_an_email_from_settings_and_remove_the_mark(app, client, moderator, site):
    client.post(f"/admin/sites/{site.key}/settings", data=form_of(site.rules, moderation_mode="post"))
    client.post(f"/admin/sites/{site.key}/distrust", data={"distrust-email": "Ada@Example.org"})
    assert add_comment(client, site)["status"] == "pending"
    with app.app_context():
        mark_id = db.session.scalar(sa.select(AuthorTrust.id))
    client.post(f"/admin/sites/{site.key}/trust/{mark_id}/remove")
    assert add_comment(client, site, body="Now then.")["status"] == "approved"


def test_trust_from_another_sites_comment_is_404(app, client, make_site, make_user, auth, site):
    other = make_site("Other", origins=["https://other.example"])
    response = client.post("/api/v1/comments", json=comment_fields(other, url="https://other.example/a.html"),
                           headers={"Origin": "https://other.example"})
    make_user(sites=[site])
    auth.login()
    assert client.post(f"/admin/sites/{site.key}/trust",
                       data={"comment_id": response.get_json()["id"], "trusted": "yes"}).status_code == 404
    with app.app_context():
        assert count(AuthorTrust) == 0


def test_queue_card_offers_trust_buttons_that_work(app, client, moderator, site):
    first = add_comment(client, site)
    text = page(client.get("/moderate/"))
    assert f'action="/admin/sites/{site.key}/trust"' in text and "Trust author" in text and "Distrust author" in text
    response = client.post(f"/admin/sites/{site.key}/trust",
                           data={"comment_id": first["id"], "trusted": "no", "back": "/moderate/?tab=pending"})
    assert response.headers["Location"] == "/moderate/?tab=pending"
    response = client.post(f"/admin/sites/{site.key}/trust",
                           data={"comment_id": first["id"], "trusted": "yes", "back": "//evil.example/"})
    assert response.headers["Location"].endswith(f"/admin/sites/{site.key}/settings#trust")
    with app.app_context():
        assert [mark.trusted for mark in db.session.scalars(sa.select(AuthorTrust))] == [True]


def test_site_rules_prints_rules_added_since_a_site_was_made(app, runner, site):
    with app.app_context():
        db.session.get(Site, site.id).rules = {key: site.rules[key] for key in rules.CONTRACT_KEYS}
        db.session.commit()
    printed = json.loads(runner.invoke(args=["site-rules", site.key]).output)
    assert printed["max_depth"] == 5 and set(printed) == set(rules.DEFAULT_RULES)
