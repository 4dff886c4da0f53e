"""Section A of security-cases.md: output encoding and sanitizing (XSS), cases 1-14.

Case 11 (an owner widening the allowlist) cannot happen: the allowlist is data inside
moderation/sanitize.py, no setting or rule changes it; the test shows the rules refuse such a key.
Case 13: notification emails are plain text only, so markup in a comment is shown as typed,
never rendered: no link text hides where it goes, no image loads a tracker."""
import json
import os
import re

import pytest

from moderation import comments, notifications, rules, sanitize
from moderation.extensions import db
from moderation.models import Comment, User

from ..conftest import ARTICLE
from .support import (REL, Markup, comment_ids, form_data, live_markup, post_api, post_form, publish, set_status,
                      stored, widget)

ALLOWED = {"a", "abbr", "b", "blockquote", "cite", "code", "del", "em", "i", "q", "s", "strike", "strong", "p", "br"}


def assert_allowlisted(html: str) -> None:
    markup = Markup(html)
    assert markup.other == [], html
    for tag, attrs in markup.tags:
        assert tag in ALLOWED, html
        assert set(attrs) <= {"a": {"href", "title", "rel"}, "abbr": {"title"}}.get(tag, set()), html


@pytest.mark.parametrize("body", [
    "<img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
])
def test_case_01_tags_outside_allowlist_do_not_survive(app, client, site, body):
    comment_id = publish(app, client, site, body=body)
    html = stored(app, comment_id).body_html
    assert_allowlisted(html)
    page = widget(client, site).get_data(as_text=True)
    assert live_markup(page) == []


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", "java&#09;script:alert(1)", "javascript&#58;alert(1)", " javascript:alert(1)",
    "\x08javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
    "JaVaScRiPt:alert(1)", "&#106;avascript:alert(1)",
])
def test_case_02_href_javascript_variants_dropped(href):
    html = sanitize.render(f'<a href="{href}">click</a>')
    links = Markup(html).find("a")
    assert links and all("href" not in link for link in links), html


WEBSITE = "http://x.com/?'onmouseover='alert(1)'x='"
WEBSITE_DQ = 'http://x.com/?"onmouseover="alert(1)"x="'


@pytest.mark.parametrize("website", [WEBSITE, WEBSITE_DQ])
@pytest.mark.parametrize("path", ["form", "api"])
def test_case_03_website_quotes_cannot_break_the_attribute(app, client, site, website, path):
    if path == "form":
        response = post_form(client, site, form_data(client, site, website=website))
        assert response.status_code == 303
        comment_id = comment_ids(app)[-1]
    else:
        comment_id = publish(app, client, site, website=website)
    set_status(app, comment_id)
    page = widget(client, site).get_data(as_text=True)
    author = Markup(page).find("a", rel=REL, target="_top")
    assert [a["href"] for a in author] == [website]  # one attribute, the whole value, nothing else
    assert not any(name.startswith("on") for a in author for name in a)
    assert live_markup(page) == []


@pytest.mark.parametrize("website", ["javascript:alert(1)", "data:text/html,x", "//evil.example", "ftp://x.org"])
def test_case_03_website_is_http_or_https_only(client, site, website):
    response = post_api(client, site, website=website)
    assert response.status_code == 400
    assert "website" in response.get_json()["errors"]


NAMES = ['<script>window.__xss=1</script>', '" onmouseover="window.__xss=1', "' onfocus='window.__xss=1' autofocus '",
         '</script><script>window.__xss=1</script>', "{{7*7}}"]


@pytest.mark.parametrize("name", NAMES)
def test_case_04_name_is_escaped_in_text_attributes_and_json(app, client, site, name):
    comment_id = publish(app, client, site, name=name)
    page = widget(client, site).get_data(as_text=True)
    assert live_markup(page) == []
    reply = Markup(page).find("a", **{"data-reply-to": str(comment_id)})
    assert reply[0]["data-author"] == name and reply[0]["aria-label"] == f"Reply to {name}"
    assert "<script>window" not in page
    if name == "{{7*7}}":  # shown as typed, never evaluated ("49" could be in the random site key)
        assert reply[0]["data-author"] == "{{7*7}}" and ">{{7*7}}<" in page.replace("<bdi>", "")
    answer = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE})
    assert answer.mimetype == "application/json" and answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.get_json()["comments"][0]["author"] == name  # data, never markup


def test_case_05_widget_takes_no_data_from_window_name_or_messages():
    """The widget's script only sends messages; the snippet's script accepts only the service's
    origin and reads a number from them, never into the DOM."""
    static = os.path.join(os.path.dirname(sanitize.__file__), "static")
    widget_js = open(os.path.join(static, "widget.js")).read()
    embed_js = open(os.path.join(static, "embed.js")).read()
    for source in (widget_js, embed_js):
        assert "window.name" not in source and "eval(" not in source and "outerHTML" not in source
        # Markup goes into the page only as the sanitizer's output; everything else is textContent.
        assert set(re.findall(r"innerHTML\s*=\s*([^;]+);", source)) <= {"comment.body_html"}
    assert 'addEventListener("message"' not in widget_js
    assert "event.origin !== service" in embed_js and "Number(data.height)" in embed_js
    assert "postMessage(" in widget_js and ", parentOrigin)" in widget_js  # an explicit targetOrigin


def test_case_06_too_long_body_refused_before_sanitizing(app, client, site):
    response = post_api(client, site, body="<b>" * 25_000)  # 75 KB
    assert response.status_code in (400, 413)
    with app.app_context():
        assert db.session.query(Comment).count() == 0


def test_case_06_four_byte_characters_are_stored_whole(app, client, site):
    body = "😀" * 9_980 + "<b>end</b>"
    raw = json.dumps({"site": site.key, "url": ARTICLE, "name": "Ada", "email": "ada@example.org", "body": body},
                     ensure_ascii=False).encode()
    response = client.post("/api/v1/comments", data=raw, content_type="application/json",
                           headers={"Origin": "https://news.example.org"})
    assert response.status_code == 201, response.get_json()
    comment = stored(app, response.get_json()["id"])
    assert comment.body == body
    assert comment.body_html.endswith("<b>end</b></p>")  # never truncated into broken HTML


def test_case_07_html_stored_by_an_older_sanitizer_is_rendered_again(app, client, site):
    comment_id = publish(app, client, site, body="an old comment")
    with app.app_context():
        db.session.execute(db.update(Comment).where(Comment.id == comment_id).values(
            body="<img src=x onerror=alert(1)>", body_html="<img src=x onerror=alert(1)>", sanitizer_version=0))
        db.session.commit()
    page = widget(client, site).get_data(as_text=True)
    assert "onerror" not in page.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert live_markup(page) == []
    answer = client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}).get_json()
    assert answer["comments"][0]["body_html"] == sanitize.render("<img src=x onerror=alert(1)>")


@pytest.mark.parametrize("body", [
    """<a title='x" onmouseover="alert(1)' href="https://a.example">t</a>""",
    """<a href="https://a.example" title="x' onmouseover='alert(1)">t</a>""",
    """<a href="https://a.example/?q=&quot;onmouseover=&quot;alert(1)">t</a>""",
])
def test_case_08_rel_is_added_inside_the_parser_not_by_text_rewriting(body):
    html = sanitize.render(body)
    (link,) = Markup(html).find("a")
    assert set(link) <= {"href", "title", "rel"} and link["rel"] == REL, html


@pytest.mark.parametrize("body", [
    '<a href="https://a.example" rel="me" target="_blank">t</a>',
    '<a href="https://a.example" target="_self" onclick="x()">t</a>',
    "see https://a.example.org/page",
])
def test_case_09_every_link_gets_our_rel_and_no_target(body):
    html = sanitize.render(body)
    links = Markup(html).find("a")
    assert links and all(link["rel"] == REL and "target" not in link and "onclick" not in link for link in links)


def test_case_09_author_link_gets_our_rel(app, client, site):
    publish(app, client, site, website="https://ada.example.org/")
    page = widget(client, site).get_data(as_text=True)
    (author,) = Markup(page).find("a", href="https://ada.example.org/")
    assert author["rel"] == REL


@pytest.mark.parametrize("text", ["ld.so", "example.com", "www.example.com/path", "see bank.com now"])
def test_case_10_only_explicit_http_addresses_are_linked(text):
    assert Markup(sanitize.render(text)).find("a") == []


@pytest.mark.parametrize(("body", "shown"), [
    ('<a href="https://evil.example/login">https://bank.com</a>', "https://evil.example/login"),
    ('<a href="https://evil.example">bank.com</a>', "https://evil.example"),
    ('<a href="https://bank.com@evil.example/">https://bank.com/</a>', "https://bank.com@evil.example/"),
])
def test_case_10_link_text_cannot_pretend_another_host(body, shown):
    html = sanitize.render(body)
    assert sanitize.plain_text(html) == shown


def test_case_10_honest_link_text_is_kept():
    assert sanitize.plain_text(sanitize.render('<a href="https://bank.com/x">bank.com</a>')) == "bank.com"
    assert sanitize.plain_text(sanitize.render('<a href="https://bank.com/x">my bank</a>')) == "my bank"


@pytest.mark.parametrize("key", ["allowed_tags", "allowed_attributes", "tags", "attributes"])
def test_case_11_owner_cannot_widen_the_allowlist(key):
    with pytest.raises(rules.RulesError):
        rules.validate_rules({key: ["svg", "style", "iframe", "onclick"]})
    assert "svg" not in sanitize._NH3_ARGS["tags"] and "style" not in str(sanitize._NH3_ARGS["attributes"])


@pytest.mark.parametrize("body", ["b<b></b>adword", "bad\u200bword", "b\u0430dword", "ＢＡＤＷＯＲＤ", "bad&shy;word"])
def test_case_12_word_rules_see_through_markup_invisibles_and_lookalikes(app, client, make_site, body):
    site = make_site(blocked_words=["badword"])
    response = post_api(client, site, body=f"Honest text then {body}.")
    assert response.status_code == 201
    assert response.get_json()["status"] == "rejected"


PHISH = ('Log in <a href="https://phish.example/login">at your bank</a> '
         '<img src="https://tracker.example/pixel.gif?reader=1" alt=""> and <b onclick="x()">more</b>.')


def only_plain_text(message) -> None:
    """Every part is text/plain: a mail client has no HTML to render, so no link text can hide its
    target and no image is fetched."""
    kinds = [part.get_content_type() for part in message.walk()]
    assert kinds == ["text/plain"], kinds
    assert "text/html" not in message.as_string().lower()


def test_case_13_notification_emails_are_plain_text_with_the_markup_shown_as_typed(
        app, client, site, make_user, inbox, mail_each):
    moderator = make_user("mod@example.org", sites=[site])
    parent = publish(app, client, site, body="Where do I park?", email="grace@example.org", name="Grace", notify=True)
    mail_each(moderator, site)
    reply = post_api(client, site, body=PHISH, parent_id=parent, name="Mallory <img src=x>")
    assert reply.status_code == 201 and reply.get_json()["status"] == "pending"
    with app.app_context():
        comment = db.session.get(Comment, reply.get_json()["id"])
        comments.moderate(db.session.get(User, moderator), comment, "approve", comment.version)
        db.session.commit()
        notifications.drain()
    held = [message for to, message in inbox.messages if to == ["mod@example.org"]]
    replied = [message for to, message in inbox.messages if to == ["grace@example.org"]]
    assert len(held) == len(replied) == 1, [to for to, _ in inbox.messages]
    for message in held + replied:
        only_plain_text(message)
        text = message.get_content()
        assert PHISH in text  # the reader sees the real address, not a friendly link text


@pytest.mark.parametrize(("path", "content_type"), [
    ("/embed.js", "text/javascript"),
    ("/static/widget.js", "text/javascript"),
    ("/static/widget.css", "text/css"),
    ("/api/v1/openapi.json", "application/json"),
    ("/moderate/login", "text/html"),
    ("/no-such-page", "text/html"),
    ("/api/v1/no-such-thing", "application/json"),
])
def test_case_14_everything_served_has_exact_type_nosniff_and_strict_csp(client, site, path, content_type):
    response = client.get(path)
    assert response.mimetype == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "script-src 'self'" in csp


def test_case_14_widget_and_thread_json_have_exact_type_and_strict_csp(client, site):
    for response, kind in ((widget(client, site), "text/html"),
                           (client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE}),
                            "application/json")):
        assert response.mimetype == kind
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
