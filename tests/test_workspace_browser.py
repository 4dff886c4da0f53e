"""The moderator's workspace in a real Chromium: a session from the keyboard alone, live updates
while another moderator decides, and axe-core on the widget and the moderator's pages."""
import os
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from moderation import comments, create_app
from moderation.extensions import db
from moderation.models import Claim, Comment, Role, Site, User
from moderation.rules import Status

from .conftest import empty_database
from .test_browser import SHOTS, free_port, widget

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parent.parent / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def live(database_url):
    """The demo service on a real port, polling for live updates every second."""
    port = free_port()
    app = create_app({"TESTING": True, "SECRET_KEY": "browser-test", "SQLALCHEMY_DATABASE_URI": database_url,
                      "PUBLIC_URL": f"http://127.0.0.1:{port}", "DEMO": True, "LIVE_POLL_SECONDS": 1})
    with app.app_context():
        empty_database()
    output = app.test_cli_runner().invoke(args=["demo"]).output
    password = re.search(r"password: (\S+)", output).group(1)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"app": app, "base": f"http://127.0.0.1:{port}", "article": f"http://localhost:{port}/demo/",
           "password": password}
    server.shutdown()
    with app.app_context():
        db.session.remove()
        empty_database()


def seed(live, count: int, **changes) -> list[int]:
    """count pending comments on the demo article, oldest first."""
    app = live["app"]
    ids = []
    with app.app_context():
        site = db.session.scalar(sa.select(Site))
        url = live["article"]
        for n in range(count):
            fields = {"url": url, "title": "Demo article", "name": f"Reader {n}", "email": f"reader{n}@example.org",
                      "body": f"Comment number {n} about the ferry timetable.", "ip": f"198.51.100.{n + 1}"}
            fields.update(changes)
            comment, _ = comments.submit(site, comments.Submission(**fields))
            if comment.status != Status.PENDING:
                comment.status = Status.PENDING
            db.session.commit()
            ids.append(comment.id)
    return ids


def status_of(live, comment_id: int) -> Status:
    with live["app"].app_context():
        return db.session.get(Comment, comment_id).status


def log_in_with_keys(page, live):
    page.goto(live["base"] + "/moderate/")
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "email":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type("admin@demo.example")
    page.keyboard.press("Tab")
    page.keyboard.type(live["password"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/moderate/$"))


def focused(page) -> str:
    return page.evaluate("document.activeElement.id")


def test_a_moderation_session_from_the_keyboard_alone(live, browser):
    oldest, middle, newest = seed(live, 3)
    page = browser.new_context(viewport={"width": 1200, "height": 1100}).new_page()
    log_in_with_keys(page, live)

    page.keyboard.press("j")
    assert focused(page) == f"c{newest}"
    page.keyboard.press("a")  # approve: back in the queue, on the next card
    page.wait_for_url(re.compile(rf"#c{middle}$"))
    page.locator(f"#c{middle}").wait_for()
    assert page.locator(f"#c{newest}").count() == 0
    assert focused(page) == f"c{middle}"
    assert status_of(live, newest) == Status.APPROVED

    page.keyboard.press("r")
    page.wait_for_url(re.compile(rf"#c{oldest}$"))
    assert focused(page) == f"c{oldest}"
    assert status_of(live, middle) == Status.REJECTED

    page.keyboard.press("x")
    assert page.locator(f"#c{oldest}-select").is_checked()
    page.keyboard.press("u")  # undo the reject
    page.wait_for_url(re.compile(rf"#c{middle}$"))
    page.locator(f"#c{middle}").wait_for()
    assert status_of(live, middle) == Status.PENDING
    assert focused(page) == f"c{middle}"

    page.keyboard.press("?")
    assert page.locator("#keys").evaluate("d => d.open")
    assert page.get_by_text("next / previous comment").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys").evaluate("d => d.open")

    page.keyboard.press("k")
    page.keyboard.press("j")
    assert focused(page) == f"c{oldest}"
    page.keyboard.press("f")
    page.get_by_text("Comment by Reader 0 flagged.").wait_for()
    assert status_of(live, oldest) == Status.FLAGGED

    page.keyboard.press("j")
    page.keyboard.press("e")  # edit: the comment's page, with the cursor in its text
    page.wait_for_url(re.compile(r"/moderate/comments/\d+#edit-body$"))
    page.wait_for_function("() => document.activeElement.id === 'edit-body'")
    page.keyboard.press("End")
    page.keyboard.type(" [edited]")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Save the edit"
    page.keyboard.press("Enter")
    page.get_by_text("edited; the original is in the audit log").wait_for()
    page.go_back()
    page.go_back()
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, "workspace-queue.png"), full_page=True)


def help_keys(page) -> list[str]:
    return page.locator("#keys dd").all_inner_texts()


def test_the_comment_page_from_the_keyboard(live, browser):
    older, newer = seed(live, 2)
    context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 1100})
    page = context.new_page()
    log_in_with_keys(page, live)
    page.keyboard.press("j")
    page.keyboard.press("e")  # from the queue to the comment's page, in its edit box
    page.wait_for_url(re.compile(rf"/moderate/comments/{newer}#edit-body$"))
    page.wait_for_function("() => document.activeElement.id === 'edit-body'")
    page.keyboard.press("Escape")  # out of the box: the keys work again
    page.keyboard.press("?")
    assert page.locator("#keys").evaluate("d => d.open")
    assert help_keys(page) == ["approve", "reject", "flag", "edit the text", "undo my last decision",
                               "show or hide this list"]  # no j / k, no x: there is one comment here
    if AXE.exists():
        assert serious_violations(page) == [], "comment page with the keys listed"
    page.keyboard.press("?")
    assert not page.locator("#keys").evaluate("d => d.open")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.url.endswith(f"/moderate/comments/{newer}#edit-body")

    page.keyboard.press("e")
    assert focused(page) == "edit-body"
    page.keyboard.press("Escape")
    page.keyboard.press("f")  # flag: back to the queue
    page.get_by_text("Comment by Reader 1 flagged.").wait_for()
    assert status_of(live, newer) == Status.FLAGGED

    page.goto(live["base"] + f"/moderate/comments/{newer}")
    assert "flag" not in help_keys(page)  # it is flagged already: f does nothing here
    page.keyboard.press("u")  # undo, staying on this page
    page.get_by_text("Undone: the comment by Reader 1 is pending again.").wait_for()
    page.wait_for_load_state()  # the flash shows while the page still loads; the keys work once it has
    assert page.url.startswith(live["base"] + f"/moderate/comments/{newer}")
    assert status_of(live, newer) == Status.PENDING

    page.keyboard.press("r")
    page.get_by_text("Comment by Reader 1 rejected.").wait_for()
    assert status_of(live, newer) == Status.REJECTED
    page.goto(live["base"] + f"/moderate/comments/{older}")
    page.keyboard.press("a")
    page.get_by_text("Comment by Reader 0 approved.").wait_for()
    assert status_of(live, older) == Status.APPROVED
    context.close()


def test_without_javascript_a_decision_lands_on_the_next_card(live, browser):
    older, newer = seed(live, 2)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live["base"] + "/moderate/")
    page.get_by_label("Email").fill("admin@demo.example")
    page.get_by_label("Password").fill(live["password"])
    page.get_by_role("button", name="Log in").click()
    page.locator(f"#c{newer}").get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_url(re.compile(rf"#c{older}$"))
    assert status_of(live, newer) == Status.APPROVED
    context.close()


def test_live_counts_new_comments_and_decisions_by_someone_else(live, browser):
    first, second = seed(live, 2)
    page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
    log_in_with_keys(page, live)
    before = int(page.locator('.count[data-tab="pending"]').inner_text())

    with live["app"].app_context():  # another moderator approves the first comment meanwhile
        other = db.session.scalar(sa.select(User))
        comment = db.session.get(Comment, first)
        comments.moderate(other, comment, "approve", comment.version)
        db.session.commit()
    notice = page.locator(f"#c{first} .live-change")
    notice.wait_for(state="visible", timeout=30_000)
    assert "already approved by admin@demo.example" in notice.inner_text()
    assert page.locator(f"#c{first}").get_by_role("button", name="Reject").is_disabled()
    page.wait_for_function(f"() => document.querySelector('.count[data-tab=pending]').textContent === '{before - 1}'")

    with live["app"].app_context():  # and a third opens the second one
        colleague = User(email="colleague@demo.example", role=Role.MODERATOR, all_sites=True)
        colleague.set_password("not used here")
        db.session.add(colleague)
        db.session.flush()
        db.session.add(Claim(comment_id=second, user_id=colleague.id))
        db.session.commit()
    page.locator(f"#c{second}").get_by_text("Being reviewed by colleague@demo.example").wait_for(timeout=30_000)

    seed(live, 1, email="late@example.org", ip="203.0.113.77", body="A late arrival.")
    page.get_by_text("1 new comment arrived.").wait_for(timeout=30_000)
    page.get_by_role("link", name="Show them").click()
    page.get_by_text("A late arrival.").wait_for()
    assert page.locator(f"#c{second}").count() == 1


def serious_violations(target) -> list[str]:
    target.add_script_tag(path=str(AXE))
    found = target.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(r =>
        r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => v.id + ': ' + v.help + ' -> ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ')))""")
    return found


def test_axe_finds_nothing_serious_in_the_widget_and_the_moderators_pages(live, browser):
    if not AXE.exists():
        pytest.skip("axe-core is not installed: npm install --prefix .cache/axe axe-core (make test does it)")
    ids = seed(live, 3)
    context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    with live["app"].app_context():
        admin = db.session.scalar(sa.select(User))
        approved = db.session.get(Comment, ids[0])
        comments.moderate(admin, approved, "approve", approved.version)
        db.session.commit()
    page.goto(live["article"])
    widget(page)
    frame = next(f for f in page.frames if "/embed/" in f.url)
    assert serious_violations(frame) == [], "widget"
    report_url = live["base"] + frame.locator("a.report").first.get_attribute("href")

    page.goto(report_url)
    assert serious_violations(page) == [], "report form"

    log_in_with_keys(page, live)
    for path in ("/moderate/", "/moderate/all", f"/moderate/comments/{ids[1]}", "/moderate/stats", "/moderate/audit"):
        page.goto(live["base"] + path)
        assert serious_violations(page) == [], path
        if path == f"/moderate/comments/{ids[1]}":
            page.screenshot(path=os.path.join(SHOTS, "workspace-comment.png"), full_page=True)
        if path == "/moderate/stats":
            page.screenshot(path=os.path.join(SHOTS, "workspace-stats.png"), full_page=True)
    context.close()
