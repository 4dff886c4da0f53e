"""The reader's own browser: the "save my details" checkbox and their pending comments on return."""
import html
import json
import re

import pytest

from moderation.extensions import db
from moderation.models import Comment
from moderation.rules import Status

from .conftest import CHROMIUM
from .test_browser import live, widget  # noqa: F401  (live is a fixture)
from .test_embed import form_data, post
from .test_embed import widget as widget_page

RECEIPT = re.compile(r'data-pending-receipt="([^"]+)"')
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run"]
SAVE = "Save my name, email, and website in this browser for the next time I comment."


def posted_receipt(client, site, **changes) -> tuple[int, str]:
    response = post(client, site, form_data(client, site, **changes))
    assert response.status_code == 303
    page = client.get(response.location).get_data(as_text=True)
    match = RECEIPT.search(page)
    assert match, "the page after posting carries no receipt for the pending comment"
    comment_id = int(re.search(r'data-pending-id="(\d+)"', page).group(1))
    return comment_id, html.unescape(match.group(1))


def mine(client, site, *receipts):
    return client.get(f"/embed/{site.key}/mine", query_string={"r": list(receipts)})


def test_receipt_tells_its_holder_how_the_comment_stands(app, client, site):
    comment_id, receipt = posted_receipt(client, site, body="Is the ferry running on Sunday?")
    response = mine(client, site, receipt)
    assert response.headers["Cache-Control"] == "no-store"
    [entry] = response.get_json()["comments"]
    assert entry["id"] == comment_id and entry["status"] == "pending"
    assert entry["author"] == "Ada Lovelace" and "ferry running on Sunday" in entry["body_html"]
    assert "ada@example.org" not in response.get_data(as_text=True)
    with app.app_context():
        db.session.get(Comment, comment_id).status = Status.APPROVED
        db.session.commit()
    [entry] = mine(client, site, receipt).get_json()["comments"]
    assert entry == {"id": comment_id, "status": "approved"}


def test_forged_or_foreign_receipts_get_nothing(client, make_site):
    site = make_site()
    other = make_site("Hillside Herald")
    _, receipt = posted_receipt(client, site)
    assert mine(client, other, receipt).get_json()["comments"] == []
    assert mine(client, site, receipt[:-2] + "xx", "1", "").get_json()["comments"] == []
    assert client.get("/embed/nosuchsite1/mine").status_code == 404


def test_public_page_has_no_receipt_and_the_checkbox_is_unticked(client, site):
    post(client, site, form_data(client, site))
    page = widget_page(client, site).get_data(as_text=True)
    assert "data-pending-receipt" not in page
    box = re.search(r'<input type="checkbox" id="save-details"[^>]*>', page).group(0)
    assert "checked" not in box and "name=" not in box  # nothing of it reaches the server
    assert SAVE in page


@pytest.fixture
def storage_browser(browser, tmp_path):
    """Chromium as most readers run it: a regular profile (not incognito), so the widget's frame
    may keep things in its (partitioned) storage."""
    profile = tmp_path / "profile" / "Default"
    profile.mkdir(parents=True)
    # Third-party cookies (and with them third-party storage) allowed, as in Chrome's default settings.
    (profile / "Preferences").write_text(json.dumps({"profile": {"cookie_controls_mode": 0,
                                                                 "block_third_party_cookies": False}}))
    context = browser.browser_type.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                             headless=True, args=BROWSER_ARGS)
    yield context
    context.close()


@pytest.mark.browser
def test_with_third_party_storage_blocked_the_box_is_hidden_and_the_form_works(live, browser):  # noqa: F811 (live is a fixture)
    page = browser.new_context().new_page()
    page.goto(live["article"])
    frame = widget(page)
    assert not frame.get_by_label(SAVE).is_visible()
    frame.get_by_role("textbox", name="Comment").fill("Posted with storage blocked.")
    frame.get_by_role("textbox", name="Name").fill("Grace Hopper")
    frame.get_by_role("textbox", name="Email").fill("grace@example.org")
    frame.get_by_role("button", name="Post Comment").click()
    frame.get_by_text("Your comment is awaiting moderation.").wait_for()


@pytest.mark.browser
def test_saved_details_and_pending_comment_come_back_in_the_same_browser_only(live, browser, storage_browser):  # noqa: F811 (live is a fixture)
    context = storage_browser
    # Routing turns off Chromium's HTTP cache: each visit gets a fresh form (and a fresh form token).
    context.route("**/embed/**", lambda route: route.continue_())
    page = context.new_page()
    page.goto(live["article"])
    frame = widget(page)
    assert not frame.get_by_label(SAVE).is_checked()
    frame.get_by_role("textbox", name="Comment").fill("Will the footbridge be step-free?")
    frame.get_by_role("textbox", name="Name").fill("Grace Hopper")
    frame.get_by_role("textbox", name="Email").fill("grace@example.org")
    frame.get_by_label(SAVE).check()
    frame.get_by_role("button", name="Post Comment").click()
    frame.get_by_text("Your comment is awaiting moderation.").wait_for()
    frame.get_by_label(SAVE).wait_for()  # shown by widget.js, which also keeps the receipt

    page.goto(live["article"])
    frame = widget(page)
    frame.get_by_text("Will the footbridge be step-free?").wait_for()
    assert frame.locator(".own-pending .badge").inner_text() == "awaiting moderation"
    assert frame.get_by_role("textbox", name="Name").input_value() == "Grace Hopper"
    assert frame.get_by_role("textbox", name="Email").input_value() == "grace@example.org"
    assert frame.get_by_label(SAVE).is_checked()

    stranger = browser.new_context().new_page()  # another browser: nothing of the reader's
    stranger.goto(live["article"])
    other = widget(stranger)
    assert other.get_by_role("textbox", name="Name").input_value() == ""
    assert other.locator(".own-pending").count() == 0

    # Unticking forgets the details at the next post.
    frame.get_by_label(SAVE).uncheck()
    frame.get_by_role("textbox", name="Comment").fill("And the ramp at the ferry steps?")
    frame.get_by_role("button", name="Post Comment").click()
    frame.get_by_text("Your comment is awaiting moderation.").wait_for()
    frame.get_by_label(SAVE).wait_for()  # shown by widget.js, which also keeps the receipt
    page.goto(live["article"])
    frame = widget(page)
    frame.get_by_text("And the ramp at the ferry steps?").wait_for()
    assert frame.get_by_role("textbox", name="Name").input_value() == ""
