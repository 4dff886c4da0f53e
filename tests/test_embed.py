"""The widget: /embed.js, the thread and reply form at /embed/<key>, and its plain-HTML POST."""
import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from .conftest import ARTICLE, ORIGIN, comment_fields, count
from moderation.extensions import db
from moderation.models import Article, Comment
from moderation.rules import Status

TITLE = "Council backs riverside park plan"
BODY = "Good to see the footpath finally funded."
AWAITING = "Your comment is awaiting moderation."
TOKEN = re.compile(r'name="token"[^>]*value="([^"]*)"')


class Page(HTMLParser):
    """Every start tag of a page with its attributes, and the text of each label by its `for`."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "label":
            self._label = dict(attrs).get("for")
            self.labels[self._label] = ""

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        if self._label is not None:
            self.labels[self._label] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        return [found for name, found in self.tags
                if name == tag and all(found.get(k) == v for k, v in attrs.items())]

    def one(self, tag: str, **attrs) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</', page, re.S)
    assert match, f"no element with id {element_id}"
    return html.unescape(match.group(1)).strip()


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1)).strip()


def widget(client, site, url=ARTICLE, **params):
    return client.get(f"/embed/{site.key}", query_string={"url": url, "title": TITLE, **params})


def token_in(response) -> str:
    match = TOKEN.search(response.get_data(as_text=True))
    assert match, "the page has no form token"
    return html.unescape(match.group(1))


def form_data(client, site, url=ARTICLE, **changes) -> dict:
    """What a reader's browser sends: the page's token and hidden fields, and what they typed."""
    data = {"token": token_in(widget(client, site, url)), "url": url, "title": TITLE, "parent_id": "",
            "author_token": "", "body": BODY, "name": "Ada Lovelace", "email": "ada@example.org", "website": ""}
    data.update(changes)
    return data


def post(client, site, data, **kwargs):
    return client.post(f"/embed/{site.key}", data=data, **kwargs)


def add_comment(app, client, site, status=Status.APPROVED, **changes) -> int:
    """A comment through the API, then put in `status` as a moderator would."""
    response = client.post("/api/v1/comments", json=comment_fields(site, **changes), headers={"Origin": ORIGIN})
    assert response.status_code == 201, response.get_json()
    comment_id = response.get_json()["id"]
    with app.app_context():
        db.session.get(Comment, comment_id).status = status
        db.session.commit()
    return comment_id


def assert_text_kept(page: str, data: dict):
    form = Page(page)
    assert textarea(page, "body") == data["body"]
    for name in ("name", "email", "website"):
        assert form.one("input", name=name).get("value", "") == data[name]


# --- /embed.js ---------------------------------------------------------------


def test_embed_js_is_javascript_and_not_sniffed(client):
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"/embed/" in response.data


# --- the page ----------------------------------------------------------------


def test_form_has_heading_labels_note_and_button(client, site):
    response = widget(client, site)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    form = Page(page)
    assert re.search(r"<h2[^>]*>Leave a Reply</h2>", page)
    labels = {key: " ".join(text.split()) for key, text in form.labels.items()}
    assert labels == {"body": "Comment *", "name": "Name *", "email": "Email *", "website": "Website",
                      "topic": "Leave this empty",
                      "save-details": "Save my name, email, and website in this browser for the next time I comment.",
                      "notify": "Notify me when my comment is approved or replied to"}
    for name in ("body", "name", "email", "website"):
        assert form.find("textarea" if name == "body" else "input", id=name, name=name)
    assert "Your email address will not be published. Required fields are marked" in page
    assert re.search(r'<button type="submit">Post Comment</button>', page)


def test_page_may_be_framed_by_the_sites_origins_only(client, make_site):
    site = make_site(origins=[ORIGIN, "https://www.news.example.org"])
    response = widget(client, site)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors https://news.example.org https://www.news.example.org" in csp
    assert "frame-ancestors 'none'" not in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers.get("X-Frame-Options", "").upper() != "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("key", "query", "status"), [
    ("nosuchsite", {"url": ARTICLE}, 404),
    (None, {}, 400),
    (None, {"url": ""}, 400),
    (None, {"url": "https://evil.example/2026/11/riverside-park.html"}, 403),
    (None, {"url": "javascript:alert(1)"}, 400),
])
def test_page_refuses_unknown_site_missing_or_foreign_url(client, site, key, query, status):
    response = client.get(f"/embed/{key or site.key}", query_string=query)
    assert response.status_code == status
    assert "Leave a Reply" not in response.get_data(as_text=True)


# --- posting -----------------------------------------------------------------


def test_post_redirects_back_with_receipt_and_shows_own_pending_comment(app, client, site):
    data = form_data(client, site)
    response = post(client, site, data, environ_base={"REMOTE_ADDR": "203.0.113.7"},
                    headers={"User-Agent": "ReaderBrowser/1.0"})
    assert response.status_code == 303
    location = urlsplit(response.location)
    assert location.path == f"/embed/{site.key}"
    query = parse_qs(location.query)
    assert query["url"] == [ARTICLE] and query["posted"][0]

    shown = client.get(response.location)
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200
    assert AWAITING in page
    assert BODY in page and "Ada Lovelace" in page
    assert shown.headers["Cache-Control"] == "no-store"

    with app.app_context():
        comment = db.session.scalars(sa.select(Comment)).one()
        assert comment.status == Status.PENDING
        assert (comment.author_name, comment.author_email, comment.body) == ("Ada Lovelace", "ada@example.org", BODY)
        assert comment.ip == "203.0.113.7"
        assert comment.user_agent == "ReaderBrowser/1.0"
        assert comment.article.url == ARTICLE and comment.article.title == TITLE


def test_pending_comment_is_not_shown_without_the_receipt(client, site):
    assert post(client, site, form_data(client, site)).status_code == 303
    page = widget(client, site).get_data(as_text=True)
    assert AWAITING not in page
    assert BODY not in page
    assert widget(client, site).headers.get("Cache-Control") != "no-store"


def test_forged_receipt_shows_nothing(client, site):
    assert post(client, site, form_data(client, site)).status_code == 303
    page = widget(client, site, posted="1").get_data(as_text=True)
    assert AWAITING not in page and BODY not in page


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""),
    ("email", "not-an-email"),
    ("website", "javascript:alert(1)"),
])
def test_invalid_field_comes_back_marked_with_text_kept(app, client, site, field, value):
    typed = {"body": "A long comment I would hate to type again.", "name": "Grace Hopper",
             "email": "grace@example.org", "website": "https://grace.example.org/"}
    data = form_data(client, site, **{**typed, field: value})
    response = post(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    marked = Page(page).one("input", name=field)
    assert marked.get("aria-invalid") == "true"
    assert text_of(page, marked["aria-describedby"])
    assert_text_kept(page, data)
    with app.app_context():
        assert count(Comment) == 0


def test_missing_comment_is_marked_on_the_textarea(app, client, site):
    data = form_data(client, site, body="")
    response = post(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    marked = Page(page).one("textarea", name="body")
    assert marked.get("aria-invalid") == "true"
    assert text_of(page, marked["aria-describedby"]) == "Please write your comment."
    assert_text_kept(page, data)
    with app.app_context():
        assert count(Comment) == 0


@pytest.mark.parametrize("token", ["forged", "", None, "other-article"])
def test_bad_token_keeps_text_and_offers_a_fresh_one(app, client, site, token):
    data = form_data(client, site, body="Typed before the token went stale.")
    if token is None:
        del data["token"]
    elif token == "other-article":
        data["token"] = token_in(widget(client, site, url=ORIGIN + "/2026/11/other-story.html"))
    else:
        data["token"] = token
    response = post(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert_text_kept(page, {**data, "token": ""})
    with app.app_context():
        assert count(Comment) == 0

    again = post(client, site, {**data, "token": token_in(response)})
    assert again.status_code == 303
    with app.app_context():
        assert count(Comment) == 1


@pytest.mark.parametrize(("origin", "status"), [
    ("https://evil.example", 403),
    ("https://news.example.org.evil.example", 403),
    ("null", 403),
    (ORIGIN, 303),
    ("http://comments.test", 303),
])
def test_post_is_checked_against_the_origin_header(app, client, site, origin, status):
    response = post(client, site, form_data(client, site), headers={"Origin": origin})
    assert response.status_code == status
    with app.app_context():
        assert count(Comment) == (1 if status == 303 else 0)


def test_post_works_with_csrf_protection_on_and_no_cookies(app, client, site):
    """The widget has its own signed token; the moderators' session CSRF must not apply to it."""
    app.config["WTF_CSRF_ENABLED"] = True
    data = form_data(client, site)
    response = post(client, site, data)
    assert response.status_code == 303
    with app.app_context():
        assert count(Comment) == 1


# --- replies -----------------------------------------------------------------


def test_reply_link_opens_form_under_that_comment(app, client, site):
    first = add_comment(app, client, site, body="The first word.")
    second = add_comment(app, client, site, body="The second word.")
    page = widget(client, site).get_data(as_text=True)
    reply_links = Page(page).find("a", **{"class": "reply"})
    assert {link["data-reply-to"] for link in reply_links} == {str(first), str(second)}
    assert any(f"reply_to={first}" in link["href"] for link in reply_links)

    response = widget(client, site, reply_to=first)
    page = response.get_data(as_text=True)
    assert Page(page).one("input", name="parent_id")["value"] == str(first)
    assert page.index(f'id="comment-{first}"') < page.index('id="reply-slot"') < page.index('id="comment-form"')
    assert page.index('id="comment-form"') < page.index(f'id="comment-{second}"')


def test_reply_is_stored_with_its_parent(app, client, site):
    parent = add_comment(app, client, site)
    response = post(client, site, form_data(client, site, parent_id=str(parent), body="Agreed."))
    assert response.status_code == 303
    with app.app_context():
        reply = db.session.scalars(sa.select(Comment).where(Comment.body == "Agreed.")).one()
        assert reply.parent_id == parent


@pytest.mark.parametrize("status", [Status.PENDING, Status.REJECTED, Status.FLAGGED])
def test_reply_to_unpublished_comment_is_refused_with_text_kept(app, client, site, status):
    parent = add_comment(app, client, site, status=status)
    assert Page(widget(client, site, reply_to=parent).get_data(as_text=True)).one(
        "input", name="parent_id")["value"] == ""
    data = form_data(client, site, parent_id=str(parent), body="A reply to a hidden comment.")
    response = post(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "You can only reply to a published comment" in page
    assert_text_kept(page, data)
    with app.app_context():
        assert count(Comment) == 1


def test_reply_to_a_comment_of_another_article_is_refused(app, client, site):
    elsewhere = add_comment(app, client, site, url=ORIGIN + "/2026/11/other-story.html")
    add_comment(app, client, site, body="Something on this article.")
    response = post(client, site, form_data(client, site, parent_id=str(elsewhere), body="Cross-thread."))
    assert response.status_code == 400
    with app.app_context():
        assert count(Comment) == 2


# --- the thread --------------------------------------------------------------


def test_thread_shows_approved_comments_threaded_and_nothing_else(app, client, site):
    parent = add_comment(app, client, site, body="Top-level approved.")
    reply = add_comment(app, client, site, parent_id=parent, body="A reply, approved.")
    add_comment(app, client, site, status=Status.PENDING, body="Still pending.")
    add_comment(app, client, site, status=Status.REJECTED, body="Rejected spam.")
    add_comment(app, client, site, status=Status.FLAGGED, body="Flagged for a second look.")
    page = widget(client, site).get_data(as_text=True)
    items = {item["id"]: item["class"] for item in Page(page).find("li") if item.get("id", "").startswith("comment-")}
    assert items == {f"comment-{parent}": "comment depth-0", f"comment-{reply}": "comment depth-1"}
    assert page.index(f'id="comment-{parent}"') < page.index(f'id="comment-{reply}"')
    assert "Top-level approved." in page and "A reply, approved." in page
    for hidden in ("Still pending.", "Rejected spam.", "Flagged for a second look."):
        assert hidden not in page


def test_thread_never_shows_email_ip_or_user_agent(app, client, site):
    response = client.post("/api/v1/comments", headers={"Origin": ORIGIN, "User-Agent": "SecretAgent/7.3"},
                           environ_base={"REMOTE_ADDR": "198.51.100.23"},
                           json=comment_fields(site, email="private.person@example.org",
                                               website="https://ada.example.org/"))
    comment_id = response.get_json()["id"]
    with app.app_context():
        db.session.get(Comment, comment_id).status = Status.APPROVED
        db.session.commit()
    page = widget(client, site).get_data(as_text=True)
    assert f'id="comment-{comment_id}"' in page
    for secret in ("private.person", "198.51.100.23", "SecretAgent"):
        assert secret not in page


XSS_BODY = "<script>alert(1)</script><img src=x onerror=alert(1)>"
XSS_NAME = '"><script>alert(1)</script>'
XSS_WEBSITE = "https://x.org/?'onmouseover='alert(1)'"


def assert_nothing_live(page: str):
    for tag, attrs in Page(page).tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), attrs
        if tag in ("a", "img"):
            for name in ("href", "src"):
                assert not attrs.get(name, "").strip().lower().startswith("javascript:"), attrs


def test_hostile_comment_renders_inert_in_the_thread(app, client, site):
    comment_id = add_comment(app, client, site, body=XSS_BODY, name=XSS_NAME, website=XSS_WEBSITE)
    page = widget(client, site).get_data(as_text=True)
    assert f'id="comment-{comment_id}"' in page
    assert_nothing_live(page)
    author = Page(page).one("a", rel="nofollow ugc noopener noreferrer", target="_top")
    assert author["href"] == XSS_WEBSITE


def test_hostile_comment_renders_inert_in_the_posted_view(client, site):
    data = form_data(client, site, body=XSS_BODY, name=XSS_NAME, website=XSS_WEBSITE)
    response = post(client, site, data, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert AWAITING in page
    assert_nothing_live(page)


def test_hostile_values_are_inert_in_a_rejected_form(client, site):
    data = form_data(client, site, body=XSS_BODY, name=XSS_NAME, website=XSS_WEBSITE, email="bad")
    response = post(client, site, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert_nothing_live(page)
    assert_text_kept(page, data)


# --- closed articles and flooding ----------------------------------------------


def test_closed_article_has_no_form_and_refuses_posts(app, client, site):
    add_comment(app, client, site, body="Said before it closed.")
    data = form_data(client, site, body="Too late.")
    with app.app_context():
        db.session.scalars(sa.select(Article)).one().closed = True
        db.session.commit()
    page = widget(client, site).get_data(as_text=True)
    assert "Comments are closed" in page
    assert 'id="comment-form"' not in page and "Post Comment" not in page
    assert not Page(page).find("a", **{"class": "reply"})
    response = post(client, site, data)
    assert response.status_code == 403
    with app.app_context():
        assert count(Comment) == 1


def test_posting_too_fast_is_refused_with_text_kept(app, client, make_site):
    site = make_site(flood_seconds=60)
    assert post(client, site, form_data(client, site)).status_code == 303
    data = form_data(client, site, body="A second thought, too soon.")
    response = post(client, site, data)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "You are posting comments too quickly. Slow down." in page
    assert_text_kept(page, data)
    with app.app_context():
        assert count(Comment) == 1


def test_flood_limit_is_per_ip(app, client, make_site):
    site = make_site(flood_seconds=60)
    assert post(client, site, form_data(client, site), environ_base={"REMOTE_ADDR": "203.0.113.1"}).status_code == 303
    response = post(client, site, form_data(client, site, body="From elsewhere.", email="grace@example.org"),
                    environ_base={"REMOTE_ADDR": "203.0.113.2"})
    assert response.status_code == 303
    with app.app_context():
        assert count(Comment) == 2
