"""Section E of security-cases.md: privacy, cases 42-47.

Case 46: export and erasure are done by an admin (the admin page) or the operator (the command
line), who checks that the person asking owns the address; readers have no self-service page,
so the ownership check that applies here is that nobody else (a moderator, a reader) can run them."""
import base64
import hashlib
import io
import json
import logging
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from moderation import comments, notifications
from moderation.extensions import db
from moderation.models import Comment, User, utcnow

from ..conftest import ARTICLE, ORIGIN, Auth, comment_fields
from .support import Markup, form_data, post_form, set_status, stored, widget

EMAIL = "Private.Reader@Example.org"
IP = "198.51.100.77"
AGENT = "SecretAgent/7.0 (unique-ua-marker)"


def secrets_of(email=EMAIL):
    lower = email.lower()
    found = {email, lower, IP, AGENT, "unique-ua-marker", base64.b64encode(lower.encode()).decode().rstrip("=")}
    for text in (email, lower):
        for algorithm in ("md5", "sha1", "sha256"):
            found.add(hashlib.new(algorithm, text.encode()).hexdigest())
    return found


def public_responses(client, site, location):
    yield client.get(location)
    yield widget(client, site)
    yield client.get("/api/v1/threads", query_string={"site": site.key, "url": ARTICLE})
    yield client.get("/embed.js")
    yield client.get("/api/v1/openapi.json")


def test_case_42_no_public_response_reveals_email_ip_agent_or_hash(app, client, site):
    response = client.post("/api/v1/comments", json=comment_fields(site, email=EMAIL, body="Public words."),
                           headers={"Origin": ORIGIN, "User-Agent": AGENT}, environ_base={"REMOTE_ADDR": IP})
    assert response.status_code == 201
    set_status(app, response.get_json()["id"])
    assert set(response.get_json()) <= {"id", "status", "author_token"}
    posted = post_form(client, site, form_data(client, site, email=EMAIL, body="Pending words."),
                       headers={"User-Agent": AGENT}, environ_base={"REMOTE_ADDR": IP})
    assert posted.status_code == 303
    secrets = secrets_of()
    for answer in [posted, *public_responses(client, site, posted.location)]:
        text = answer.get_data(as_text=True) + str(answer.headers) + (answer.location or "")
        assert answer.status_code < 400
        leaked = {secret for secret in secrets if secret.lower() in text.lower()}
        assert not leaked, (answer.request.path, leaked)


def test_case_43_no_gravatar_or_email_hash_in_avatars(app, client, site):
    response = client.post("/api/v1/comments", json=comment_fields(site, email=EMAIL), headers={"Origin": ORIGIN})
    set_status(app, response.get_json()["id"])
    page = widget(client, site).get_data(as_text=True)
    assert "gravatar" not in page.lower()
    for tag, attrs in Markup(page).tags:
        if tag == "img":
            assert attrs.get("src", "").startswith(("/", "data:")), attrs


def test_case_44_the_receipt_link_carries_no_email(client, site):
    posted = post_form(client, site, form_data(client, site, email=EMAIL))
    assert not {secret for secret in secrets_of() if secret.lower() in posted.location.lower()}
    assert posted.headers.get("Referrer-Policy", "strict-origin-when-cross-origin") in (
        "strict-origin-when-cross-origin", "no-referrer", "same-origin", "strict-origin")


URL = re.compile(r"https?://[^\s<>]+")


def token_payload(url: str) -> str:
    """What an itsdangerous token in a link says, decoded (it is signed, not encrypted)."""
    payload = urlsplit(url).path.rsplit("/", 1)[1].split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


@pytest.fixture
def request_log():
    """The request log lines written while the test runs."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    logging.getLogger("moderation.requests").addHandler(handler)
    yield lines
    logging.getLogger("moderation.requests").removeHandler(handler)


def test_case_44_unsubscribe_and_moderation_links_are_opaque_tokens(
        app, client, site, make_user, inbox, mail_each, request_log):
    moderator = make_user("mod@example.org", sites=[site])
    mail_each(moderator, site)
    response = client.post("/api/v1/comments", json=comment_fields(site, email=EMAIL, notify=True),
                           headers={"Origin": ORIGIN, "User-Agent": AGENT}, environ_base={"REMOTE_ADDR": IP})
    with app.app_context():
        comment = db.session.get(Comment, response.get_json()["id"])
        notifications.drain()  # the moderators' email, with approve / reject links
        comments.moderate(db.session.get(User, moderator), comment, "approve", comment.version)
        db.session.commit()
        notifications.drain()  # the reader's "published" email, with its unsubscribe link
    links = set()
    for _, message in inbox.messages:
        links |= set(URL.findall(message.get_content())) | {message["List-Unsubscribe"].strip("<>")}
    ours = sorted(link for link in links if "/mail/" in link)
    assert len(ours) == 4, links  # approve, reject, the moderator's unsubscribe, the reader's
    secrets = secrets_of() | secrets_of("mod@example.org")
    for link in ours:
        said = token_payload(link)
        assert "@" not in said and not {s for s in secrets if s.lower() in (link + said).lower()}, (link, said)

    app.config["REQUEST_LOG"] = True
    for link in ours:
        path = urlsplit(link).path
        for answer in (client.get(path, headers={"User-Agent": AGENT}), client.post(path, data={"version": 2}),
                       client.get(path + "x")):
            assert answer.headers["Referrer-Policy"] == "no-referrer", (path, answer.status_code)
            assert answer.headers["Cache-Control"] == "no-store"
    logged = request_log.getvalue()
    assert logged.count("/mail/") == 3 * len(ours)
    assert not {s for s in secrets if s.lower() in logged.lower()}
    for link in ours:  # nor the tokens: each is the key to a decision or a subscription
        assert token_of(link) not in logged


def token_of(link: str) -> str:
    return urlsplit(link).path.rsplit("/", 1)[1]


def test_case_45_remember_me_is_unchecked_and_nothing_is_stored_unless_ticked(client, site):
    page = widget(client, site)
    boxes = [attrs for tag, attrs in Markup(page.get_data(as_text=True)).tags
             if tag == "input" and attrs.get("type") == "checkbox"]
    assert all("checked" not in box for box in boxes)
    posted = post_form(client, site, form_data(client, site, email=EMAIL))
    assert "Set-Cookie" not in page.headers and "Set-Cookie" not in posted.headers


@pytest.fixture
def reader_on_two_sites(app, client, make_site):
    """The reader's comments on two sites (one with a reply by someone else), plus another reader's."""
    first, second = make_site("Riverside Gazette"), make_site("Hillside Herald", origins=["https://hillside.example"])
    posted = []
    for site, origin, name, email in ((first, ORIGIN, "Priya Private", EMAIL),
                                      (second, "https://hillside.example", "Priya Private", EMAIL.lower()),
                                      (first, ORIGIN, "Grace", "grace@example.org")):
        fields = comment_fields(site, email=email, website="https://private-reader.example/", notify=True,
                                url=origin + "/story.html", name=name, body=f"Words for {site.name} by {name.split()[0][0]}.")
        response = client.post("/api/v1/comments", json=fields, headers={"Origin": origin, "User-Agent": AGENT},
                               environ_base={"REMOTE_ADDR": IP})
        assert response.status_code == 201, response.get_json()
        set_status(app, response.get_json()["id"])
        posted.append(response.get_json()["id"])
    return first, second, posted


def test_case_46_only_an_admin_exports_or_erases(app, client, make_user, reader_on_two_sites):
    first, second, (mine, _, _) = reader_on_two_sites
    for attempt in (lambda: client.post("/admin/privacy/export", data={"export-email": EMAIL}),
                    lambda: client.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "anonymise",
                                                                       "erase-confirm": "y"})):
        assert attempt().status_code == 302  # no session: to the login page
    make_user("mod@example.org", sites=[first, second])  # a moderator of both sites is not enough
    Auth(client).login()
    assert client.post("/admin/privacy/export", data={"export-email": EMAIL}).status_code == 403
    assert client.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "anonymise",
                                                     "erase-confirm": "y"}).status_code == 403
    assert stored(app, mine).author_email.lower() == EMAIL.lower()


def test_case_46_export_covers_every_site_and_erase_leaves_anonymous(app, client, make_user, reader_on_two_sites):
    first, second, (mine, also_mine, others) = reader_on_two_sites
    make_user("admin@example.org", role="admin")
    Auth(client).login("admin@example.org")
    export = client.post("/admin/privacy/export", data={"export-email": EMAIL.upper()})
    assert export.status_code == 200 and export.mimetype == "application/json"
    assert export.headers["Cache-Control"] == "no-store" and "attachment" in export.headers["Content-Disposition"]
    data = json.loads(export.get_data(as_text=True))
    assert [(c["id"], c["site"]) for c in data["comments"]] == [(mine, first.key), (also_mine, second.key)]
    assert {c["ip"] for c in data["comments"]} == {IP} and {c["user_agent"] for c in data["comments"]} == {AGENT}

    for site, origin in ((first, ORIGIN), (second, "https://hillside.example")):
        assert "Priya Private" in client.get("/api/v1/threads", query_string={
            "site": site.key, "url": origin + "/story.html"}).text
    erased = client.post("/admin/privacy/erase", data={"erase-email": EMAIL, "erase-mode": "anonymise",
                                                      "erase-confirm": "y"})
    assert erased.status_code == 302
    for comment_id in (mine, also_mine):
        comment = stored(app, comment_id)
        assert comment.author_name == "Anonymous"
        assert (comment.author_email, comment.author_website, comment.user_agent) == ("", "", "")
        assert comment.ip in (None, "", "198.51.100.0") and comment.author_key is None and not comment.notify
        assert comment.body.startswith("Words for")  # the text stays, per the chosen mode
    other = stored(app, others)
    assert (other.author_name, other.author_email, other.ip) == ("Grace", "grace@example.org", IP)

    with app.app_context():  # nothing of the reader is left anywhere in the database
        rows = [str(tuple(row)) for table in db.metadata.sorted_tables
                for row in db.session.execute(table.select())]
    left = "\n".join(row for row in rows if "grace@example.org" not in row)
    assert not {s for s in secrets_of() | {"Priya Private", "private-reader.example"} if s.lower() in left.lower()}, left
    for site, origin in ((first, ORIGIN), (second, "https://hillside.example")):  # cached before, too
        text = client.get("/api/v1/threads", query_string={"site": site.key, "url": origin + "/story.html"}).text
        assert "Anonymous" in text and "Priya Private" not in text
    again = json.loads(client.post("/admin/privacy/export", data={"export-email": EMAIL}).get_data(as_text=True))
    assert again["comments"] == []


def test_case_47_stored_ips_are_truncated_or_purged(app, client, site, runner):
    response = client.post("/api/v1/comments", json=comment_fields(site), headers={"Origin": ORIGIN},
                           environ_base={"REMOTE_ADDR": IP})
    comment_id = response.get_json()["id"]
    with app.app_context():
        db.session.get(Comment, comment_id).created_at = utcnow() - timedelta(days=3650)
        db.session.commit()
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert stored(app, comment_id).ip in (None, "", "198.51.100.0")
