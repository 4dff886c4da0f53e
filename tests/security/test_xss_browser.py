"""The XSS corpus (xss_payloads.txt, over a hundred payloads) sent through the widget's form and
the API as comment bodies, names and websites, approved, and rendered in a real Chromium in the
widget and the moderator's queue: no script runs (window.__xss stays unset, no dialog opens)
and no dangerous markup is left in the rendered page."""
import html
import os
import re
import socket
import threading
from urllib.parse import parse_qs, urlencode

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from moderation import comments, create_app, rules
from moderation.extensions import db
from moderation.models import Comment, Role, Site, User
from moderation.rules import Status

from ..conftest import ORIGIN, PASSWORD, empty_database
from .gunicorn_run import local_session
from .support import TOKEN

pytestmark = pytest.mark.browser
PER_ARTICLE = 20
ESCAPE = re.compile(r"\\(n|t|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def decode(line: str) -> str:
    return ESCAPE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), line)


def load_payloads() -> list[str]:
    path = os.path.join(os.path.dirname(__file__), "xss_payloads.txt")
    with open(path, encoding="utf-8") as corpus:
        return [decode(line) for line in corpus.read().splitlines() if line and not line.startswith("#")]


PAYLOADS = load_payloads()
NAMES = [p for p in PAYLOADS if len(p) <= 100][::3] + [
    '" onmouseover="window.__xss=1', "' autofocus onfocus='window.__xss=1", "</span><script>window.__xss=1</script>",
    '{{ "".__class__ }}', "<bdo dir=rtl>name</bdo>"]
WEBSITES = [
    "http://x.com/?'onmouseover='window.__xss=1'x='", 'https://x.com/?"onmouseover="window.__xss=1"x="',
    'https://x.com/"><script>window.__xss=1</script>', "https://x.com/'><img src=x onerror=window.__xss=1>",
    "https://x.com/#\"autofocus/onfocus=window.__xss=1//", "javascript:window.__xss=1", " javascript:window.__xss=1",
    "data:text/html,<script>window.__xss=1</script>", "https://x.com/%22onmouseover=%22window.__xss=1",
]

# Everything in the rendered page that could run script or load something: [] when the page is inert.
FIND_LIVE_MARKUP = """() => {
  const found = [];
  const urlAttrs = /^(href|src|action|formaction|xlink:href|data|poster|background|srcdoc|srcset)$/i;
  const forbidden = new Set(["IFRAME", "OBJECT", "EMBED", "SVG", "MATH", "BASE", "IMG", "IMAGE", "VIDEO",
    "AUDIO", "TEMPLATE", "MARQUEE", "KEYGEN", "ISINDEX", "FRAME", "FRAMESET", "APPLET"]);
  for (const el of document.querySelectorAll("*")) {
    const name = el.tagName.toUpperCase();
    if (forbidden.has(name)) found.push(name);
    if (name === "SCRIPT" && !(el.getAttribute("src") || "").startsWith("/static/")) found.push("inline SCRIPT");
    if ((name === "STYLE" || name === "META" || name === "LINK") && el.closest("body")) found.push(name + " in body");
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name) || attr.name === "style" || attr.name === "srcdoc") found.push(name + " " + attr.name);
      if (urlAttrs.test(attr.name) && /^\\s*[a-z0-9+.\\-]*:/i.test(attr.value) && !/^\\s*https?:/i.test(attr.value))
        found.push(name + " " + attr.name + "=" + attr.value);
    }
  }
  return found;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publisher_page(service: str, key: str):
    """A publisher's article page with the snippet, on its own origin; ?canonical= names the article."""
    def page(environ, start_response):
        canonical = html.escape(parse_qs(environ.get("QUERY_STRING", "")).get("canonical", [""])[0])
        body = (f'<!doctype html><title>Article</title><link rel="canonical" href="{canonical}">'
                f'<div data-site="{key}"></div><script src="{service}/embed.js"></script>').encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]
    return page


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The service on a real port over its own database, with one site and one moderator."""
    database = f"sqlite:///{tmp_path_factory.mktemp('xss') / 'xss.sqlite'}"
    url = os.environ.get("MODERATION_TEST_DATABASE_URL") or database
    port, page_port = free_port(), free_port()
    app = create_app({"TESTING": True, "SECRET_KEY": "xss-test", "SQLALCHEMY_DATABASE_URI": url,
                      "PUBLIC_URL": f"http://127.0.0.1:{port}", "RATELIMIT_ENABLED": False, "QUEUE_PAGE_SIZE": 1000})
    with app.app_context():
        from flask_migrate import upgrade
        upgrade(revision="heads")
        empty_database()
        site = Site(name="Corpus Gazette", rules=rules.validate_rules(
            {"allowed_origins": [ORIGIN, f"http://localhost:{page_port}"], "flood_seconds": 0, "max_links": 1000}))
        user = User(email="mod@example.org", role=Role.ADMIN)
        user.set_password(PASSWORD)
        db.session.add_all([site, user])
        db.session.commit()
        key = site.key
    server = make_server("127.0.0.1", port, app, threaded=True)
    publisher = make_server("127.0.0.1", page_port, publisher_page(f"http://127.0.0.1:{port}", key), threaded=True)
    for running in (server, publisher):
        threading.Thread(target=running.serve_forever, daemon=True).start()
    yield {"app": app, "base": f"http://127.0.0.1:{port}", "key": key, "page_origin": f"http://localhost:{page_port}"}
    server.shutdown()
    publisher.shutdown()
    with app.app_context():
        empty_database()
        db.session.remove()


def article(n: int) -> str:
    return f"{ORIGIN}/corpus/{n}.html"


@pytest.fixture(scope="module")
def corpus(live):
    """Every payload posted through the form and the API; returns the articles and the answers."""
    http, base, key = local_session(), live["base"], live["key"]
    answers = {"form": {}, "api": {}}
    entries = [{"body": p} for p in PAYLOADS] + [{"name": n} for n in NAMES] + [{"website": w} for w in WEBSITES]
    for i, entry in enumerate(entries):
        url = article(i // PER_ARTICLE)
        fields = {"name": "Reader", "email": f"r{i}@example.org", "website": "", "body": f"Payload {i}", **entry}
        page = http.get(f"{base}/embed/{key}", params={"url": url, "title": "Corpus"}).text
        form = {"token": TOKEN.search(page).group(1).replace("&#34;", '"'), "url": url, "title": "Corpus",
                "parent_id": "", "author_token": "", **fields}
        answers["form"][i] = http.post(f"{base}/embed/{key}", data=form, headers={"Origin": ORIGIN},
                                       allow_redirects=False).status_code
        api = {**fields, "site": key, "url": url, "email": f"a{i}@example.org"}
        answers["api"][i] = http.post(f"{base}/api/v1/comments", json=api, headers={"Origin": ORIGIN}).status_code
    return {"articles": sorted({article(i // PER_ARTICLE) for i in range(len(entries))}), "answers": answers,
            "entries": entries}


def approve_all(app):
    """Approve every waiting comment as the moderator does (audited, public from the next load)."""
    with app.app_context():
        moderator = db.session.scalar(sa.select(User))
        for comment in db.session.scalars(sa.select(Comment).where(Comment.status != Status.APPROVED)).all():
            comments.moderate(moderator, comment, "approve", comment.version)
        db.session.commit()
        return db.session.scalar(sa.select(sa.func.count()).select_from(Comment).where(
            Comment.status == Status.APPROVED))


def trapped_page(browser):
    """A page where any dialog is recorded and dismissed."""
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return page, dialogs


def assert_inert(page, dialogs, where):
    page.wait_for_timeout(300)  # let onerror/onload/onfocus handlers fire, if any survived
    for frame in page.frames:
        assert frame.evaluate("() => typeof window.__xss") == "undefined", where
        if "localhost" not in frame.url:  # the publisher's page (localhost) is not ours to check
            assert frame.evaluate(FIND_LIVE_MARKUP) == [], (where, frame.url)
    assert dialogs == [], where


def test_corpus_is_large_and_accepted_as_plain_comments(corpus):
    assert len(PAYLOADS) >= 100
    bodies = range(len(PAYLOADS))
    assert all(corpus["answers"]["form"][i] == 303 for i in bodies), corpus["answers"]["form"]
    assert all(corpus["answers"]["api"][i] == 201 for i in bodies), corpus["answers"]["api"]
    for path in ("form", "api"):  # a refused name or website is a 400 with a message, never a 5xx
        assert set(corpus["answers"][path].values()) <= {201, 303, 400}


def test_corpus_is_inert_in_the_moderator_queue_pending_then_approved(live, corpus, browser):
    page, dialogs = trapped_page(browser)
    page.goto(live["base"] + "/moderate/login")
    page.get_by_label("Email").fill("mod@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/moderate/$"))
    assert page.locator("text=Payload 1").count() >= 1
    assert_inert(page, dialogs, "pending queue")
    approved = approve_all(live["app"])
    assert approved >= 2 * len(PAYLOADS)
    page.goto(live["base"] + "/moderate/approved")
    assert_inert(page, dialogs, "approved queue")
    page.close()


def test_corpus_is_inert_in_the_widget(live, corpus, browser):
    approve_all(live["app"])
    page, dialogs = trapped_page(browser)
    shown = 0
    for url in corpus["articles"]:
        page.goto(f"{live['base']}/embed/{live['key']}?url={url}&title=Corpus")
        shown += page.locator("li.comment").count()
        assert_inert(page, dialogs, url)
    assert shown >= 2 * len(PAYLOADS)
    page.close()


def test_corpus_is_inert_in_the_widget_embedded_in_an_article(live, corpus, browser):
    """The widget inside an iframe on another origin, as readers see it; the parent stays clean too."""
    approve_all(live["app"])
    page, dialogs = trapped_page(browser)
    for n, url in enumerate(corpus["articles"]):
        page.goto(f"{live['page_origin']}/{n}?" + urlencode({"canonical": url}))
        page.frame_locator("iframe[title=Comments]").locator("li.comment").first.wait_for()
        assert_inert(page, dialogs, f"embedded widget for {url}")
    page.close()
