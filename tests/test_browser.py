"""The whole loop in a real Chromium: a reader comments through the widget on the demo article
(another origin), a moderator approves it in the queue, and it appears under the article."""
import os
import re
import secrets
import socket
import threading

import pytest
from werkzeug.serving import make_server

from moderation import create_app
from moderation.extensions import db

from .conftest import empty_database

pytestmark = pytest.mark.browser
SHOTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "screenshots")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live(database_url):
    """The service on a real port, with the demo site, its admin and the demo article page."""
    port = free_port()
    app = create_app({"TESTING": True, "SECRET_KEY": "browser-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "PUBLIC_URL": f"http://127.0.0.1:{port}", "DEMO": True})
    with app.app_context():
        empty_database()
    output = app.test_cli_runner().invoke(args=["demo"]).output
    password = re.search(r"password: (\S+)", output).group(1)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": f"http://127.0.0.1:{port}", "article": f"http://localhost:{port}/demo/", "password": password}
    server.shutdown()
    with app.app_context():
        db.session.remove()
        empty_database()


def widget(page):
    page.wait_for_selector("iframe[title=Comments]")
    frame = page.frame_locator("iframe[title=Comments]")
    frame.get_by_role("textbox", name="Comment").wait_for()
    return frame


def test_reader_comments_moderator_approves_comment_appears(live, browser):
    os.makedirs(SHOTS, exist_ok=True)
    marker = "cm" + secrets.token_hex(4)
    reader = browser.new_context(viewport={"width": 900, "height": 1400})
    page = reader.new_page()
    page.goto(live["article"])
    frame = widget(page)
    assert frame.get_by_role("heading", name="Leave a Reply").is_visible()

    frame.get_by_role("textbox", name="Name").fill("Grace Hopper")
    frame.get_by_role("button", name="Post Comment").click()  # empty comment: the browser or we refuse
    frame.get_by_role("textbox", name="Comment").fill(f"What about parking near the ferry steps? {marker}")
    frame.get_by_role("textbox", name="Email").fill("not-an-email")
    frame.locator("form").evaluate("form => form.noValidate = true")
    frame.get_by_role("button", name="Post Comment").click()
    frame.get_by_text("Please enter a valid email address").wait_for()
    assert frame.get_by_role("textbox", name="Comment").input_value().endswith(marker), "the reader's text was lost"
    assert frame.get_by_role("textbox", name="Name").input_value() == "Grace Hopper"

    frame.get_by_role("textbox", name="Email").fill("grace@example.org")
    frame.get_by_role("button", name="Post Comment").click()
    frame.get_by_text("Your comment is awaiting moderation.").wait_for()
    page.screenshot(path=os.path.join(SHOTS, "widget-after-posting.png"), full_page=True)

    stranger = browser.new_context().new_page()
    stranger.goto(live["article"])
    widget(stranger)
    assert marker not in stranger.frames[-1].content(), "a pending comment is public"

    moderator = browser.new_context(viewport={"width": 1100, "height": 1000}).new_page()
    moderator.goto(live["base"] + "/moderate/")
    moderator.get_by_label("Email").fill("admin@demo.example")
    moderator.get_by_label("Password").fill(live["password"])
    moderator.get_by_role("button", name="Log in").click()
    card = moderator.locator("li.card", has_text=marker)
    card.wait_for()
    assert "grace@example.org" in card.inner_text()
    moderator.screenshot(path=os.path.join(SHOTS, "queue.png"), full_page=True)
    card.get_by_role("button", name="Approve").click()
    moderator.get_by_text("approved", exact=False).first.wait_for()
    assert moderator.locator("li.card", has_text=marker).count() == 0

    page.goto(live["article"])
    frame = widget(page)
    frame.get_by_text(marker).wait_for()
    page.screenshot(path=os.path.join(SHOTS, "widget-approved.png"), full_page=True)
    reader.close()
