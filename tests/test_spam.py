"""Spam defence without a captcha: the honeypot, the time trap, flood control per IP and per email,
request rate limits, the same text on several articles, blocked senders and reply depth."""
import re
import time

import pytest
import sqlalchemy as sa

from .conftest import ORIGIN, comment_fields
from .test_embed import form_data, post, textarea, widget
from moderation import tokens
from moderation.extensions import db
from moderation.models import Comment
from moderation.rules import Status

SLOW = "Slow down."
FLOOD = "You are posting comments too quickly. Slow down."


def api(client, site, ip="192.0.2.10", **changes):
    return client.post("/api/v1/comments", json=comment_fields(site, **changes), headers={"Origin": ORIGIN},
                       environ_base={"REMOTE_ADDR": ip})


def stored(app, comment_id=None) -> Comment:
    with app.app_context():
        query = sa.select(Comment).order_by(Comment.id.desc())
        found = db.session.get(Comment, comment_id) if comment_id else db.session.scalars(query).first()
        db.session.expunge(found)
        return found


@pytest.fixture
def later(monkeypatch):
    """Moves the clock on by some seconds, as a person who takes their time to write."""
    def move(seconds):
        now = time.time()
        monkeypatch.setattr(tokens.time, "time", lambda: now + seconds)
    return move


# --- the honeypot -----------------------------------------------------------------------------


def test_honeypot_is_hidden_from_people_and_screen_readers(client, site):
    text = widget(client, site).get_data(as_text=True)
    match = re.search(r'<div class="hp" aria-hidden="true"><label for="topic">Leave this empty</label> (<input[^>]*>)',
                      text)
    assert match and 'tabindex="-1"' in match.group(1) and 'autocomplete="off"' in match.group(1)


def test_filled_honeypot_holds_the_comment_with_its_reason(app, client, make_site, later):
    site = make_site(moderation_mode="post")
    data = form_data(client, site, topic="cheap watches")
    later(10)
    assert post(client, site, data).status_code == 303
    comment = stored(app)
    assert comment.status == Status.PENDING
    assert comment.reasons == ["held: the hidden field 'Leave this empty' was filled in (people never see it)"]


# --- the time trap --------------------------------------------------------------------------


def test_form_sent_back_within_three_seconds_waits_in_pre_moderation(app, client, make_site, later):
    site = make_site(moderation_mode="pre")
    data = form_data(client, site)
    later(1)
    assert post(client, site, data).status_code == 303
    comment = stored(app)
    assert comment.status == Status.PENDING
    assert re.fullmatch(r"held: filled too fast \([12]\.\d s\)", comment.reasons[0])


def test_known_author_sending_the_form_too_fast_waits(app, client, make_site, later):
    site = make_site(moderation_mode="known_authors")
    first = post(client, site, form_data(client, site))
    with app.app_context():
        db.session.execute(sa.update(Comment).values(status=Status.APPROVED))
        db.session.commit()
    token = re.search(r'data-author-token="([^"]+)"', client.get(first.headers["Location"]).get_data(as_text=True))
    data = form_data(client, site, author_token=token.group(1), body="A second thought, typed in a hurry.")
    later(1)
    assert post(client, site, data).status_code == 303
    [reason] = stored(app).reasons
    assert re.fullmatch(r"held: filled too fast \(1\.\d s\)", reason)
    data = form_data(client, site, author_token=token.group(1), body="A third thought, after a while.")
    later(30)
    assert post(client, site, data).status_code == 303
    assert stored(app).reasons == ["approved: known author"]


def test_form_sent_back_too_fast_in_post_mode_is_published_and_easy_to_find(app, client, make_site, make_user,
                                                                            auth, later):
    site = make_site(moderation_mode="post")
    data = form_data(client, site, body="Fast fingers or a script?")
    later(1)
    assert post(client, site, data).status_code == 303
    comment = stored(app)
    assert comment.status == Status.APPROVED
    assert comment.reasons[0] == "approved: post-moderation"
    assert re.fullmatch(r"noted: filled too fast \(1\.\d s\)", comment.reasons[1])
    slow = form_data(client, site, body="Written with care.", email="grace@example.org")
    later(60)
    post(client, site, slow)
    make_user(sites=[site])
    auth.login()
    page = client.get("/moderate/approved", query_string={"reason": "fast"}).get_data(as_text=True)
    assert "Fast fingers or a script?" in page and comment.reasons[1] in page
    assert "Written with care." not in page
    assert "Filled too fast" in client.get("/moderate/").get_data(as_text=True)  # offered as a reason filter


def test_form_sent_back_after_three_seconds_is_published(app, client, make_site, later):
    site = make_site(moderation_mode="post")
    data = form_data(client, site)
    later(4)
    assert post(client, site, data).status_code == 303
    assert stored(app).reasons == ["approved: post-moderation"]


def test_api_has_no_form_token_and_no_time_trap(app, client, make_site):
    site = make_site(moderation_mode="known_authors")
    assert api(client, site).get_json()["status"] == "pending"
    assert stored(app).reasons == ["held: new author (no earlier approved comment)"]


# --- flood control and request rate limits ---------------------------------------------------------


def test_flood_is_per_email_too(app, client, make_site):
    site = make_site(flood_seconds=60)
    assert api(client, site, ip="203.0.113.1").status_code == 201
    response = api(client, site, ip="203.0.113.2", body="From another address, same email.")
    assert (response.status_code, response.get_json()) == (429, {"error": FLOOD})
    assert api(client, site, ip="203.0.113.3", body="Another person.", email="grace@example.org").status_code == 201


def test_api_rate_limit(app, client, site):
    app.config["COMMENT_RATE_LIMIT"] = "2 per minute"
    for n in range(2):
        assert api(client, site, body=f"Comment {n}.", email=f"r{n}@example.org").status_code == 201
    response = api(client, site, body="One too many.", email="r9@example.org")
    assert response.status_code == 429
    assert response.get_json() == {"error": "Too many comments from your address. Please wait a minute and try again."}
    assert api(client, site, ip="198.51.100.4", body="Someone else.", email="s@example.org").status_code == 201


def test_widget_rate_limit_keeps_the_text(app, client, site):
    app.config["COMMENT_RATE_LIMIT"] = "1 per minute"
    assert post(client, site, form_data(client, site)).status_code == 303
    data = form_data(client, site, body="My second, carefully typed thought.", email="b@example.org")
    response = post(client, site, data)
    assert response.status_code == 429
    text = response.get_data(as_text=True)
    assert "Too many comments from your address" in text
    assert textarea(text, "body") == "My second, carefully typed thought."


def test_login_rate_limit(app, client):
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    for _ in range(2):
        assert client.post("/moderate/login", data={"email": "a@example.org", "password": "x" * 12}).status_code == 200
    response = client.post("/moderate/login", data={"email": "a@example.org", "password": "x" * 12})
    assert response.status_code == 429
    assert "Too many login attempts from your address" in response.get_data(as_text=True)
    assert client.get("/moderate/login").status_code == 200


def test_rate_limits_default_to_memory_and_take_a_redis_uri(app):
    from moderation import create_app
    from moderation.extensions import limiter

    assert type(limiter.storage).__name__ == "MemoryStorage"
    create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15"})
    assert type(limiter.storage).__name__ == "RedisStorage"


# --- the same text on several articles ------------------------------------------------------------


def test_same_text_on_three_articles_within_a_day_is_held(app, client, make_site):
    site = make_site(moderation_mode="post")
    body = "Great post! Visit my page for more."
    for n in range(2):
        assert api(client, site, url=f"{ORIGIN}/a{n}.html", body=body).get_json()["status"] == "approved"
    third = api(client, site, url=f"{ORIGIN}/a2.html", body=body).get_json()
    assert third["status"] == "pending"
    assert stored(app, third["id"]).reasons == ["held: repeated on 3 articles within a day"]


# --- blocked senders and reply depth ----------------------------------------------------------------


@pytest.mark.parametrize("ip, status", [("203.0.113.50", "rejected"), ("::ffff:203.0.113.50", "rejected"),
                                        ("198.51.100.1", "approved")])
def test_blocked_ip_range(app, client, make_site, ip, status):
    site = make_site(moderation_mode="post", blocked_ips=["203.0.113.0/24"])
    assert api(client, site, ip=ip).get_json()["status"] == status


def test_too_short_comment_is_refused_beside_the_field(app, client, make_site):
    site = make_site(min_length=20)
    response = api(client, site, body="Nice.")
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"body": ["Your comment is too short: 5 characters (at least 20)."]}}


def test_replies_deeper_than_max_depth_are_flattened(app, client, make_site):
    site = make_site(moderation_mode="post", max_depth=2)
    top = api(client, site, body="Top.").get_json()["id"]
    first = api(client, site, body="Reply.", parent_id=top).get_json()["id"]
    second = api(client, site, body="Reply to reply.", parent_id=first).get_json()["id"]
    third = api(client, site, body="Too deep.", parent_id=second).get_json()["id"]
    assert stored(app, second).parent_id == first
    assert stored(app, third).parent_id == first  # a sibling of `second`, at depth 2


def test_flagging_word_list_puts_a_new_comment_in_the_flagged_queue(app, client, make_site):
    site = make_site(moderation_mode="post", held_words=["lawsuit"], held_words_action="flag")
    answer = api(client, site, body="Expect a lawsuit.").get_json()
    assert answer["status"] == "flagged"


@pytest.mark.parametrize("first_ip, second_ip, limited", [
    ("2001:db8:1:2::1", "2001:db8:1:2::ffff", True), ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("198.51.100.7", "::ffff:198.51.100.7", True), ("198.51.100.7", "198.51.100.8", False)])
def test_rate_limit_counts_an_ipv6_64_as_one_client(app, client, site, first_ip, second_ip, limited):
    app.config["COMMENT_RATE_LIMIT"] = "1 per minute"
    assert api(client, site, ip=first_ip).status_code == 201
    response = api(client, site, ip=second_ip, body="Another.", email="b@example.org")
    assert (response.status_code == 429) == limited


def test_an_app_without_rate_limits_leaves_the_next_app_limited(app, client, site):
    from moderation import create_app

    create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://", "RATELIMIT_ENABLED": False})
    limited = create_app({key: app.config[key] for key in ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI")}
                         | {"COMMENT_RATE_LIMIT": "1 per minute"})
    with limited.app_context():
        other = limited.test_client()
        assert api(other, site).status_code == 201
        assert api(other, site, body="Again.", email="b@example.org").status_code == 429
