"""Trust by email in "known_authors" mode: one confirmation link after a reader's first approved
comment, then a "Publish my comment" link for a comment from a browser without their author token.
Every link opens a page and acts only on POST; typing a verified address publishes nothing."""
import base64
import re
from urllib.parse import urlsplit

import sqlalchemy as sa

from moderation import comments, tokens
from moderation.comments import EMAIL_CONFIRMED
from moderation.extensions import db
from moderation.models import AuditEvent, Comment, User, VerifiedEmail
from moderation.notifications import OutboxMessage
from moderation.rules import Status

from .data_helpers import load
from .test_notifications import LINK, approve, body_of, drain, inbox  # noqa: F401 (inbox is a fixture)

NEW_AUTHOR = "held: new author (no earlier approved comment)"
LINK_SENT = "held: new author on this browser, with a verified email: a 'Publish my comment' link was emailed"


def mails_to(inbox, address="ada@example.org"):
    return [message for recipients, message in inbox.messages if recipients == [address]]


def link_in(message, kind: str) -> str:
    return next(path for path in LINK.findall(body_of(message)) if path.startswith(f"/mail/{kind}/"))


def proof_of(app, site, email="ada@example.org") -> VerifiedEmail | None:
    with app.app_context():
        found = db.session.scalar(sa.select(VerifiedEmail).where(VerifiedEmail.site_id == site.id,
                                                                 VerifiedEmail.email == email))
        if found is not None:
            db.session.expunge(found)
        return found


def verify_token(app, proof_id) -> str:
    with app.app_context():
        return tokens.verify_email_link_token(proof_id)


def verified_reader(app, client, inbox, site, post_comment, email="ada@example.org") -> dict:
    """A reader whose first comment was approved and who confirmed their address; returns that first answer."""
    first = post_comment(site, email=email, body="My first comment here.")
    approve(app, first["id"])
    drain(app)
    [message] = mails_to(inbox, email)
    assert client.post(link_in(message, "verify")).status_code == 200
    inbox.messages.clear()
    return first


def publish_link_for_new_browser(app, client, inbox, site, post_comment) -> tuple[int, str]:
    """A verified reader comments from a browser without their author token: (that comment's id, the
    "Publish my comment" link mailed to them)."""
    verified_reader(app, client, inbox, site, post_comment)
    comment_id = post_comment(site, body="Posted from my phone.")["id"]
    drain(app)
    return comment_id, link_in(mails_to(inbox)[0], "publish")


def test_confirmation_is_mailed_once_and_only_after_an_approval(app, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    first = post_comment(site, body="Is the café open on Sundays?")
    drain(app)
    assert mails_to(inbox) == [] and proof_of(app, site) is None  # held: nothing to the reader yet
    approve(app, first["id"])
    drain(app)
    [message] = mails_to(inbox)
    assert message["Subject"] == "Confirm your email address for comments on Riverside Gazette"
    assert message["List-Unsubscribe"].startswith("<http://comments.test/mail/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link_in(message, "verify") and "anyone could type them" in body_of(message)
    assert proof_of(app, site).verified_at is None
    second = post_comment(site, body="A second comment, approved too.", author_token=first["author_token"])
    assert second["status"] == "approved"  # a known author: the same confirmation is not sent again
    approve(app, post_comment(site, body="And a third.")["id"])
    drain(app)
    assert len(mails_to(inbox)) == 1


def test_no_confirmation_outside_known_authors_mode(app, inbox, site, make_user, post_comment):
    make_user(sites=[site])
    approve(app, post_comment(site)["id"])
    drain(app)
    assert mails_to(inbox) == [] and proof_of(app, site) is None


def test_confirmation_page_acts_on_post_only(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    approve(app, post_comment(site)["id"])
    drain(app)
    link = link_in(mails_to(inbox)[0], "verify")
    page = client.get(link)  # what a mail scanner's prefetch does
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Confirm my email address" in page.get_data(as_text=True)
    assert proof_of(app, site).verified_at is None
    done = client.post(link)
    assert done.status_code == 200 and "is confirmed for comments on Riverside Gazette" in done.get_data(as_text=True)
    assert proof_of(app, site).verified_at is not None


def test_tampered_or_expired_links_are_refused_with_a_clear_message(app, client, inbox, make_site, make_user,
                                                                      post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    approve(app, post_comment(site)["id"])
    drain(app)
    link = link_in(mails_to(inbox)[0], "verify")
    for bad in (link[:-3] + "abc", link[:40]):  # changed, or cut short
        answer = client.post(bad)
        assert answer.status_code == 400 and "cut short or changed on the way" in answer.get_data(as_text=True)
    unknown = client.post(f"/mail/verify/{verify_token(app, proof_of(app, site).id + 1)}")  # signed, erased since
    assert unknown.status_code == 404 and "nothing to confirm" in unknown.get_data(as_text=True)
    app.config["MAIL_LINK_MAX_AGE"] = -1
    expired = client.post(link)
    assert expired.status_code == 400 and "This link has expired" in expired.get_data(as_text=True)
    assert proof_of(app, site).verified_at is None


def test_links_never_carry_the_email_address(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    _, link = publish_link_for_new_browser(app, client, inbox, site, post_comment)
    payload = link.rsplit("/", 1)[1].split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"ada" not in decoded.lower() and b"@" not in decoded


def test_typed_verified_email_without_the_token_waits_for_the_link(app, client, inbox, make_site, make_user,
                                                                   post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    verified_reader(app, client, inbox, site, post_comment)
    answer = post_comment(site, body="Posted from my phone.")  # no author token: another browser, or anyone
    assert answer["status"] == "pending"
    assert load(app, Comment, answer["id"]).reasons == [LINK_SENT]
    drain(app)
    [message] = mails_to(inbox)
    assert message["Subject"] == "Publish your comment on Riverside Gazette?"
    assert "> Posted from my phone." in body_of(message)  # the reader's text is quoted, never our own words
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert load(app, Comment, answer["id"]).status == Status.PENDING  # the email alone published nothing


def test_the_publish_link_publishes_on_post_and_gives_the_author_token(app, client, inbox, make_site, make_user,
                                                                       post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    comment_id, link = publish_link_for_new_browser(app, client, inbox, site, post_comment)
    page = client.get(link)
    assert page.status_code == 200 and "Publish my comment" in page.get_data(as_text=True)
    assert load(app, Comment, comment_id).status == Status.PENDING  # GET changes nothing
    done = client.post(link, data={"version": load(app, Comment, comment_id).version})
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    comment = load(app, Comment, comment_id)
    assert comment.status == Status.APPROVED and comment.reasons == [LINK_SENT, EMAIL_CONFIRMED]
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.comment_id == comment_id)).one()
        assert (event.action, event.actor, event.user_id, event.to_status) == ("approve", "author", None, "approved")
        assert event.detail == {"reason": "approved: author confirmed by email"}
    token = re.search(r'data-author-token="([^"]+)"', done.get_data(as_text=True)).group(1)
    assert post_comment(site, body="Now this browser is known.", author_token=token)["status"] == "approved"
    again = client.post(link, data={"version": comment.version})
    assert again.status_code == 409 and "already approved" in again.get_data(as_text=True)


def test_a_rejected_comment_is_not_published_by_its_link(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    comment_id, link = publish_link_for_new_browser(app, client, inbox, site, post_comment)
    version = load(app, Comment, comment_id).version
    with app.app_context():  # a moderator rejects it in the meantime
        moderator = db.session.scalar(sa.select(User))
        comments.moderate(moderator, db.session.get(Comment, comment_id), "reject", version)
        db.session.commit()
    answer = client.post(link, data={"version": version})
    assert answer.status_code == 409 and load(app, Comment, comment_id).status == Status.REJECTED


def test_tampered_or_expired_publish_links_are_refused(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    comment_id, link = publish_link_for_new_browser(app, client, inbox, site, post_comment)
    version = load(app, Comment, comment_id).version
    eve = post_comment(site, email="eve@example.net", body="Eve's own comment.")
    with app.app_context():
        other = f"/mail/publish/{tokens.publish_link_token(eve['id'], proof_of(app, site).id)}"
    assert client.post(other, data={"version": 1}).status_code == 404  # signed, but not this address's comment
    assert load(app, Comment, eve["id"]).status == Status.PENDING
    tampered = client.post(link[:-3] + "abc", data={"version": version})
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)
    app.config["MAIL_LINK_MAX_AGE"] = -1
    expired = client.post(link, data={"version": version})
    assert expired.status_code == 400 and "This link has expired" in expired.get_data(as_text=True)
    assert load(app, Comment, comment_id).status == Status.PENDING


def test_another_sites_verified_email_does_not_count(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors")
    other = make_site("Hillside Herald", moderation_mode="known_authors")
    make_user(sites=[site, other])
    verified_reader(app, client, inbox, site, post_comment)
    answer = post_comment(other, body="First time on the Herald.")
    assert load(app, Comment, answer["id"]).reasons == [NEW_AUTHOR]
    drain(app)
    assert mails_to(inbox) == []


def test_unconfirmed_email_and_held_words_get_no_link(app, client, inbox, make_site, make_user, post_comment):
    site = make_site(moderation_mode="known_authors", held_words=["parking"])
    make_user(sites=[site])
    approve(app, post_comment(site)["id"])  # confirmation sent, never confirmed
    assert load(app, Comment, post_comment(site, body="Unconfirmed.")["id"]).reasons == [NEW_AUTHOR]
    drain(app)
    client.post(link_in(mails_to(inbox)[0], "verify"))
    held = post_comment(site, body="What about parking?")
    assert load(app, Comment, held["id"]).reasons == ["held: matched held word 'parking'", NEW_AUTHOR]


def test_publish_links_stop_on_unsubscribe_and_are_capped_per_hour(app, client, inbox, make_site, make_user,
                                                                   post_comment):
    site = make_site(moderation_mode="known_authors")
    make_user(sites=[site])
    verified_reader(app, client, inbox, site, post_comment)
    reasons = [load(app, Comment, post_comment(site, body=f"Comment {n}.")["id"]).reasons for n in range(4)]
    assert reasons == [[LINK_SENT]] * 3 + [[NEW_AUTHOR]]  # nobody can flood an inbox by typing its address
    drain(app)
    assert len(mails_to(inbox)) == 3
    with app.app_context():
        db.session.execute(sa.delete(OutboxMessage))
        db.session.commit()
    unsubscribe = urlsplit(mails_to(inbox)[0]["List-Unsubscribe"].strip("<>")).path
    assert "no more emails" in client.post(unsubscribe).get_data(as_text=True)
    assert load(app, Comment, post_comment(site, body="After unsubscribing.")["id"]).reasons == [NEW_AUTHOR]
