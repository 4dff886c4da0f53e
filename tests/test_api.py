"""The JSON API from the outside: reading a thread, posting a comment, CORS and the OpenAPI document."""
import re

import pytest

from moderation.extensions import db
from moderation.models import Comment
from moderation.rules import Status

from .conftest import ARTICLE, ORIGIN, comment_fields, count

OTHER_ARTICLE = ORIGIN + "/2026/11/bridge-repairs.html"
DUPLICATE = "Duplicate comment detected; it looks as though you've already said that!"


def post_json(client, payload, origin=ORIGIN, headers=(), **kwargs):
    return client.post("/api/v1/comments", json=payload, headers={"Origin": origin, **dict(headers)}, **kwargs)


def get_thread(client, site, url=ARTICLE, **kwargs):
    return client.get("/api/v1/threads", query_string={"site": site.key, "url": url}, **kwargs)


def stored(app, comment_id):
    with app.app_context():
        comment = db.session.get(Comment, comment_id)
        db.session.expunge(comment)
        return comment


def set_status(app, comment_id, status):
    with app.app_context():
        db.session.get(Comment, comment_id).status = status
        db.session.commit()


def comment_count(app):
    with app.app_context():
        return count(Comment)


@pytest.fixture
def post_site(make_site):
    """A site in post-moderation mode: comments are public at once."""
    return make_site(moderation_mode="post")


@pytest.fixture
def flood_site(make_site):
    """A site that wants 60 seconds between two comments from one IP address."""
    return make_site(flood_seconds=60)


# --- GET /api/v1/threads ------------------------------------------------------


def test_thread_shape(client, post_site, post_comment):
    created = post_comment(post_site, website="https://ada.example.org")
    data = get_thread(client, post_site).get_json()
    [comment] = data.pop("comments")
    assert data == {"url": ARTICLE, "title": "Council backs riverside park plan", "count": 1}
    assert set(comment) == {"id", "parent_id", "author", "website", "body_html", "created_at"}
    assert comment["id"] == created["id"]
    assert comment["parent_id"] is None
    assert comment["author"] == "Ada Lovelace"
    assert comment["website"] == "https://ada.example.org"
    assert "Good to see the footpath finally funded." in comment["body_html"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", comment["created_at"])


def test_thread_of_article_without_comments_is_empty(client, site):
    assert get_thread(client, site).get_json() == {"url": ARTICLE, "title": "", "count": 0, "comments": []}


@pytest.mark.parametrize("status", [Status.PENDING, Status.REJECTED, Status.FLAGGED])
def test_thread_shows_approved_comments_only(app, client, post_site, post_comment, status):
    hidden = post_comment(post_site, body="Hide me.")
    shown = post_comment(post_site, body="Show me.")
    set_status(app, hidden["id"], status)
    data = get_thread(client, post_site).get_json()
    assert data["count"] == 1
    assert [comment["id"] for comment in data["comments"]] == [shown["id"]]


def test_thread_is_oldest_first(client, post_site, post_comment):
    ids = [post_comment(post_site, body=f"Comment number {n}.")["id"] for n in range(3)]
    comments = get_thread(client, post_site).get_json()["comments"]
    assert [comment["id"] for comment in comments] == ids
    assert [f"number {n}" in comment["body_html"] for n, comment in enumerate(comments)] == [True] * 3


def test_thread_reply_has_parent_id(client, post_site, post_comment):
    top = post_comment(post_site, body="Top level.")
    reply = post_comment(post_site, body="A reply.", parent_id=top["id"])
    parents = {c["id"]: c["parent_id"] for c in get_thread(client, post_site).get_json()["comments"]}
    assert parents == {top["id"]: None, reply["id"]: top["id"]}


def test_thread_unknown_site_is_404(client):
    response = client.get("/api/v1/threads", query_string={"site": "nosuchsite", "url": ARTICLE})
    assert response.status_code == 404
    assert response.get_json()["error"]


def test_thread_without_url_is_400(client, site):
    response = client.get("/api/v1/threads", query_string={"site": site.key})
    assert response.status_code == 400
    assert "url" in response.get_json()["error"]


# --- POST /api/v1/comments: accepted ---------------------------------------------


def test_create_on_pre_site_is_pending_and_stored(app, site, post_comment):
    created = post_comment(site)
    assert created["status"] == "pending"
    assert isinstance(created["id"], int)
    comment = stored(app, created["id"])
    assert comment.status == Status.PENDING
    assert comment.author_name == "Ada Lovelace"
    assert comment.author_email == "ada@example.org"
    assert comment.body == "Good to see the footpath finally funded."


def test_create_ignores_extra_keys(app, client, site):
    payload = comment_fields(site, status="approved", ip="198.51.100.1", site_id=999, id=1)
    response = post_json(client, payload, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 201
    assert response.get_json()["status"] == "pending"
    comment = stored(app, response.get_json()["id"])
    assert comment.status == Status.PENDING
    assert comment.ip == "203.0.113.9"
    assert comment.site_id == site.id


# --- POST /api/v1/comments: invalid fields ---------------------------------------


@pytest.mark.parametrize("field", ["name", "email", "body", "url"])
def test_create_missing_field(client, site, field):
    payload = comment_fields(site)
    del payload[field]
    response = post_json(client, payload)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == [field]


@pytest.mark.parametrize("changes, field", [
    ({"email": ""}, "email"),
    ({"body": ""}, "body"),
    ({"name": "   "}, "name"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "@example.org"}, "email"),
    ({"website": "javascript:alert(1)"}, "website"),
    ({"website": "ftp://x"}, "website"),
    ({"body": "x" * 10_001}, "body"),
    ({"name": "n" * 101}, "name"),
    ({"name": 123}, "name"),
    ({"body": ["a list"]}, "body"),
    ({"parent_id": "abc"}, "parent_id"),
    ({"parent_id": True}, "parent_id"),
    ({"parent_id": 1.5}, "parent_id"),
])
def test_create_invalid_field(app, client, site, changes, field):
    response = post_json(client, comment_fields(site, **changes))
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert list(errors) == [field]
    assert all(isinstance(message, str) and message for message in errors[field])
    assert comment_count(app) == 0


@pytest.mark.parametrize("changes", [
    {},
    {"email": "Ada@EXAMPLE.org", "website": "https://ada.example.org/me", "title": "  A  title \u200b "},
    {"name": " \u202eAda\x00 Lovelace\t", "body": "Line one\r\nline two\x07\ud800 end"},
    {"name": "", "email": "", "body": "   ", "url": ""},
    {"name": None, "email": None, "body": None, "url": None},
    {"email": "x" * 250 + "@example.org"},  # too long and, past 64 characters before the @, not valid
    {"email": "not-an-email", "website": "ftp://x", "title": "t" * 301, "author_token": "a" * 1001},
    {"website": "   ", "title": "", "author_token": ""},
    {"url": " ", "body": "b" * 10_001, "name": "n" * 101},
])
def test_the_api_checks_its_fields_as_the_form_does(app, site, changes):
    """check_fields, the API's validation, gives the form's data and errors for the same values."""
    from werkzeug.datastructures import MultiDict

    from moderation.forms import ApiCommentForm, check_fields

    values = {key: value for key, value in dict(comment_fields(site), **changes).items()
              if value is not None and key != "site"}
    with app.test_request_context():
        form = ApiCommentForm(formdata=MultiDict(values))
        form.validate()
        data, errors = check_fields(ApiCommentForm, values)
        assert set(data) == {"body", "name", "email", "website", "url", "title", "author_token"}
        assert data == {name: form[name].data for name in data}
    assert errors == form.errors
    assert list(errors) == list(form.errors)


def test_check_fields_refuses_a_form_whose_validators_it_would_not_see():
    from wtforms import Form, StringField
    from wtforms.validators import DataRequired, ValidationError

    from moderation.forms import check_fields

    class Positional(Form):
        name = StringField("Name", [DataRequired()])

    class Inline(Form):
        name = StringField("Name", validators=[DataRequired()])

        def validate_name(self, field):
            raise ValidationError("never seen by check_fields")

    for form_class in (Positional, Inline):
        with pytest.raises(TypeError, match="by keyword only"):
            check_fields(form_class, {"name": "Ada"})


@pytest.mark.parametrize("kwargs", [
    {"data": "{not json", "content_type": "application/json"},
    {"data": b'{"name": "\xff"}', "content_type": "application/json"},
    {"json": ["a", "list"]},
    {"json": "a string"},
    {"data": '{"name": "Ada"}', "content_type": "text/plain"},
    {"data": {"name": "Ada"}},
    ({"data": "[" * 100_000, "content_type": "application/json"}),
])
def test_create_malformed_request(client, kwargs):
    response = client.post("/api/v1/comments", headers={"Origin": ORIGIN}, **kwargs)
    assert response.status_code == 400
    assert response.get_json()["error"]


@pytest.mark.parametrize("field", ["name", "title", "body"])
def test_create_drops_lone_surrogates_from_text(client, post_site, field):
    response = post_json(client, comment_fields(post_site, **{field: "Riverside\ud800 park"}))
    assert response.status_code == 201
    thread = get_thread(client, post_site).get_json()
    comment = thread["comments"][0]
    shown = {"name": comment["author"], "title": thread["title"], "body": comment["body_html"]}[field]
    assert "Riverside park" in shown


@pytest.mark.parametrize("key, value, expected", [
    ("url", ARTICLE + "\ud800", 400),
    ("url", ARTICLE + "\x00", 400),
    ("site", "a\ud800", 404),
    ("author_token", "a\ud800", 201),
])
def test_create_unstorable_text_is_refused_not_500(app, client, site, key, value, expected):
    response = post_json(client, dict(comment_fields(site), **{key: value}))
    assert response.status_code == expected
    if expected != 201:
        assert comment_count(app) == 0


# --- POST /api/v1/comments: refusals ---------------------------------------------


def test_create_from_disallowed_origin_is_403(app, client, site):
    response = post_json(client, comment_fields(site), origin="https://evil.example.net")
    assert response.status_code == 403
    assert "https://evil.example.net" in response.get_json()["error"]
    assert "Access-Control-Allow-Origin" not in response.headers
    assert comment_count(app) == 0


def test_create_for_url_on_another_origin_is_403(app, client, site):
    response = post_json(client, comment_fields(site, url="https://evil.example.net/page.html"))
    assert response.status_code == 403
    assert response.get_json()["error"]
    assert comment_count(app) == 0


def test_create_unknown_site_is_404(client, site):
    response = post_json(client, dict(comment_fields(site), site="nosuchsite"))
    assert response.status_code == 404
    assert response.get_json()["error"]


def test_create_duplicate_is_409(app, client, site, post_comment):
    post_comment(site)
    response = post_json(client, comment_fields(site))
    assert response.status_code == 409
    assert response.get_json() == {"error": DUPLICATE}
    assert comment_count(app) == 1


def test_create_same_text_as_reply_is_not_duplicate(post_site, post_comment):
    top = post_comment(post_site, body="Same words.")
    post_comment(post_site, body="Same words.", parent_id=top["id"])


def test_create_too_large_is_413(app, client, site):
    response = post_json(client, comment_fields(site, body="x" * 200_000))
    assert response.status_code == 413
    assert response.get_json()["error"]
    assert comment_count(app) == 0


def test_create_too_fast_is_429(app, flood_site, post_comment):
    post_comment(flood_site, body="First.")
    answer = post_comment(flood_site, expect=429, body="Second.")
    assert answer == {"error": "You are posting comments too quickly. Slow down."}
    assert comment_count(app) == 1


def test_create_flood_is_per_ip(client, flood_site, post_comment):
    post_comment(flood_site, body="First.")
    response = post_json(client, comment_fields(flood_site, body="Second.", email="grace@example.org"),
                         environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 201


# --- POST /api/v1/comments: replies ----------------------------------------------


def test_reply_to_pending_comment_is_400(client, site, post_comment):
    parent = post_comment(site, body="Still waiting.")
    response = post_json(client, comment_fields(site, body="A reply.", parent_id=parent["id"]))
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["parent_id"]


def test_reply_to_comment_of_another_article_is_400(client, post_site, post_comment):
    post_comment(post_site, body="On this article.")
    elsewhere = post_comment(post_site, url=OTHER_ARTICLE, body="On another article.")
    response = post_json(client, comment_fields(post_site, body="A reply.", parent_id=elsewhere["id"]))
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["parent_id"]


def test_reply_to_unknown_comment_is_400(client, post_site, post_comment):
    parent = post_comment(post_site)
    response = post_json(client, comment_fields(post_site, body="A reply.", parent_id=parent["id"] + 1000))
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["parent_id"]


def test_reply_to_approved_comment_is_stored_with_parent(app, post_site, post_comment):
    parent = post_comment(post_site)
    reply = post_comment(post_site, body="A reply.", parent_id=parent["id"])
    assert stored(app, reply["id"]).parent_id == parent["id"]


# --- Rules through the API ---------------------------------------------------------


def test_held_word_is_pending_with_reason(app, make_site, post_comment):
    site = make_site(moderation_mode="post", held_words=["refund"])
    created = post_comment(site, body="Where is my refund?")
    assert created["status"] == "pending"
    assert any("refund" in reason for reason in stored(app, created["id"]).reasons)


def test_blocked_word_is_rejected(app, make_site, post_comment):
    site = make_site(moderation_mode="post", blocked_words=["casino"])
    created = post_comment(site, body="Best casino in town.")
    assert created["status"] == "rejected"
    assert stored(app, created["id"]).status == Status.REJECTED


def test_too_many_links_is_pending_with_reason(app, make_site, post_comment):
    site = make_site(moderation_mode="post", max_links=2)
    body = "See https://a.example.com/ and https://b.example.com/ and https://c.example.com/"
    created = post_comment(site, body=body)
    assert created["status"] == "pending"
    assert "held: contains 3 links (limit 2)" in stored(app, created["id"]).reasons


def test_post_mode_is_approved(post_site, post_comment):
    assert post_comment(post_site)["status"] == "approved"


def test_known_author_with_token_is_approved(app, make_site, post_comment):
    site = make_site(moderation_mode="known_authors")
    first = post_comment(site, body="My first comment.")
    assert first["status"] == "pending"
    set_status(app, first["id"], Status.APPROVED)
    second = post_comment(site, body="My second comment.", author_token=first["author_token"])
    assert second["status"] == "approved"


@pytest.mark.parametrize("token", [None, "forged.token.value"])
def test_known_author_without_valid_token_is_pending(app, make_site, post_comment, token):
    site = make_site(moderation_mode="known_authors")
    first = post_comment(site, body="My first comment.")
    set_status(app, first["id"], Status.APPROVED)
    second = post_comment(site, body="My second comment.", author_token=token)
    assert second["status"] == "pending"


def test_known_author_token_from_another_secret_is_pending(app, make_site, post_comment):
    from itsdangerous import URLSafeTimedSerializer

    from moderation.tokens import AUTHOR_SALT

    site = make_site(moderation_mode="known_authors")
    first = post_comment(site, body="My first comment.")
    set_status(app, first["id"], Status.APPROVED)
    author_key = stored(app, first["id"]).author_key
    forged = URLSafeTimedSerializer("guessed-secret", salt=AUTHOR_SALT).dumps(author_key)
    assert post_comment(site, body="My second comment.", author_token=forged)["status"] == "pending"


# --- Privacy -----------------------------------------------------------------------


def test_thread_never_shows_email_ip_or_user_agent(client, post_site):
    response = post_json(client, comment_fields(post_site), environ_base={"REMOTE_ADDR": "203.0.113.9"},
                         headers={"User-Agent": "SecretBrowser/9.9"})
    assert response.status_code == 201
    thread = get_thread(client, post_site).get_data(as_text=True)
    assert "Ada Lovelace" in thread
    for secret in ("ada@example.org", "203.0.113.9", "SecretBrowser"):
        assert secret not in thread


# --- CORS ----------------------------------------------------------------------------


def preflight(client, origin, path="/api/v1/comments"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type"})


@pytest.mark.parametrize("path", ["/api/v1/comments", "/api/v1/threads"])
def test_preflight_from_allowed_origin(client, site, path):
    response = preflight(client, ORIGIN, path)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("origin", ["https://evil.example.net", "null", ORIGIN + ".evil.test", "http://news.example.org"])
def test_preflight_from_other_origin_is_not_allowed(client, site, origin):
    response = preflight(client, origin)
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


@pytest.mark.parametrize("origin, allowed", [
    (ORIGIN, True),
    ("https://evil.example.net", False),
    ("null", False),
    (ORIGIN + ".evil.test", False),
])
def test_thread_echoes_allowed_origin_only(client, site, origin, allowed):
    response = get_thread(client, site, headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    assert "Origin" in response.vary


def test_origin_allowed_by_another_site_gets_no_cors_on_this_site(client, make_site):
    site = make_site()
    make_site(name="Other paper", origins=["https://other.example.com"])
    response = get_thread(client, site, headers={"Origin": "https://other.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_create_echoes_allowed_origin(client, site):
    response = post_json(client, comment_fields(site))
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("origin", [ORIGIN, "https://evil.example.net", "null"])
def test_cors_never_wildcard(client, site, origin):
    responses = [preflight(client, origin), get_thread(client, site, headers={"Origin": origin}),
                 post_json(client, comment_fields(site), origin=origin)]
    assert all(r.headers.get("Access-Control-Allow-Origin") != "*" for r in responses)


# --- OpenAPI -------------------------------------------------------------------------


def test_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert "get" in document["paths"]["/threads"]
    assert "post" in document["paths"]["/comments"]


def test_thread_matches_openapi_schema(client, post_site, post_comment):
    post_comment(post_site)
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    thread = get_thread(client, post_site).get_json()
    assert set(schemas["Thread"]["required"]) <= set(thread)
    for comment in thread["comments"]:
        assert set(schemas["Comment"]["required"]) <= set(comment)
    assert set(thread) <= set(schemas["Thread"]["properties"])
    assert set(thread["comments"][0]) <= set(schemas["Comment"]["properties"])


def test_created_matches_openapi_schema(client, site):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    created = post_json(client, comment_fields(site)).get_json()
    assert set(schemas["Created"]["required"]) <= set(created) <= set(schemas["Created"]["properties"])
    assert created["status"] in schemas["Created"]["properties"]["status"]["enum"]
