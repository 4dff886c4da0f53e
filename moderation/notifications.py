"""Telling people what happened: the outbox (mail and webhook deliveries written in the same
transaction as the change that caused them) and the moderators' notification settings."""
import email.policy
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import db_engine, tokens
from .extensions import db
from .models import Comment, User, VerifiedEmail, utcnow
from .rules import Status, with_defaults


class OutboxMessage(db.Model):
    """One email or webhook call to deliver; the send-mail worker drains due rows."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "sent_at", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # "mail" or "webhook"
    site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(sa.String(2000))  # an email address or a webhook URL
    subject: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # One message per event and recipient, however often the event is reported.
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationSetting(db.Model):
    """How one moderator hears about held comments on one site: "off", "each" or "digest"."""

    __tablename__ = "notification_settings"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    mode: Mapped[str] = mapped_column(sa.String(16), default="off", server_default="off")
    digest_minutes: Mapped[int] = mapped_column(default=60, server_default="60")
    last_digest_at: Mapped[datetime | None]


# --- what is said, and to whom -------------------------------------------------------

MODES = ("off", "each", "digest")
LINK_SALT = "mail-moderation"
UNSUBSCRIBE_SALT = "mail-unsubscribe"
LEASE = timedelta(minutes=5)  # a claimed message is not claimed again for this long


def serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=salt)


def one_line(text: str, limit: int = 200) -> str:
    """Safe in a header: no CR, LF or other control characters (names come from readers)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:limit]


def external(endpoint: str, **values) -> str:
    """An absolute link under PUBLIC_URL; works in the send-mail worker too, outside any request."""
    return current_app.config["PUBLIC_URL"] + current_app.url_map.bind("").build(endpoint, values)


def moderation_link(comment: Comment, user: User, action: str) -> str:
    token = serializer(LINK_SALT).dumps({"c": comment.id, "u": user.id, "a": action})
    return external("mail.confirm", token=token)


def read_moderation_link(token: str) -> dict | None:
    try:
        data = serializer(LINK_SALT).loads(token, max_age=current_app.config["MAIL_LINK_MAX_AGE"])
    except BadSignature:
        return None
    return data if isinstance(data, dict) and data.get("a") in ("approve", "reject") else None


def unsubscribe_token(**what) -> str:
    return serializer(UNSUBSCRIBE_SALT).dumps(what)


def read_unsubscribe_token(token: str) -> dict | None:
    try:
        data = serializer(UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def enqueue_mail(to: str, subject: str, text: str, unsubscribe: str, dedupe_key: str, site_id: int) -> None:
    """Write one email to the outbox, in the caller's transaction; the same dedupe_key twice is one email."""
    if not to or db.session.scalar(sa.select(sa.exists().where(OutboxMessage.dedupe_key == dedupe_key))):
        return
    db.session.add(OutboxMessage(kind="mail", site_id=site_id, recipient=to, subject=one_line(subject, 300),
                                 dedupe_key=dedupe_key, payload={"text": text, "unsubscribe": unsubscribe}))


MODERATORS_BY_MODE = (  # built once: it runs for every comment posted
    sa.select(User, NotificationSetting).join(NotificationSetting, NotificationSetting.user_id == User.id)
    .where(NotificationSetting.site_id == sa.bindparam("site_id"), NotificationSetting.mode == sa.bindparam("mode"),
           User.active.is_(True)))


ANY_SETTING_OF_MODE = sa.select(sa.exists().where(NotificationSetting.site_id == sa.bindparam("site_id"),
                                                   NotificationSetting.mode == sa.bindparam("mode")))


def moderators_of(site_id: int, mode: str) -> list[tuple[User, NotificationSetting]]:
    params = {"site_id": site_id, "mode": mode}
    # Asked first, in the caller's transaction (db_engine.read_value): where nobody chose this
    # mode, a post pays for that alone.
    if not db_engine.read_value(db.session, ANY_SETTING_OF_MODE, params):
        return []
    return db.session.execute(MODERATORS_BY_MODE, params).all()


def held_comment_text(comment: Comment, user: User) -> str:
    return (f"{one_line(comment.author_name)} wrote on {comment.article.title or comment.article.url}:\n\n"
            f"{comment.body}\n\nWhy it is waiting: {', '.join(comment.reasons) or 'every comment is reviewed'}\n\n"
            f"Approve: {moderation_link(comment, user, 'approve')}\n"
            f"Reject: {moderation_link(comment, user, 'reject')}\n"
            "(Each link opens a page where you confirm.)\n")


def comment_held(comment: Comment) -> None:
    """Tell the moderators who asked for an email per held comment."""
    if comment.status != Status.PENDING:
        return
    for user, _ in moderators_of(comment.site_id, "each"):
        if user.site_ids() is not None and comment.site_id not in user.site_ids():
            continue
        enqueue_mail(user.email, f"Comment waiting on {comment.site.name} from {comment.author_name}",
                     held_comment_text(comment, user),
                     external("mail.unsubscribe", token=unsubscribe_token(u=user.id, s=comment.site_id)),
                     f"held:{comment.id}:{user.id}", comment.site_id)


def comment_approved(comment: Comment) -> None:
    """A moderator approved this comment: tell its author, and the author it replies to, if they asked."""
    link = f"{comment.article.url}#comment-{comment.id}"
    if comment.notify and comment.author_email:
        enqueue_mail(comment.author_email, f"Your comment on {comment.site.name} is published",
                     f"Hello {one_line(comment.author_name)},\n\nyour comment on "
                     f"{comment.article.title or comment.article.url} is published:\n{link}\n",
                     external("mail.unsubscribe", token=unsubscribe_token(c=comment.id)),
                     f"approved:{comment.id}", comment.site_id)
    parent = comment.parent
    if (parent is not None and parent.notify and parent.author_email and parent.status == Status.APPROVED
            and parent.author_email.lower() != comment.author_email.lower()):
        enqueue_mail(parent.author_email, f"{comment.author_name} replied to your comment on {comment.site.name}",
                     f"Hello {one_line(parent.author_name)},\n\n{one_line(comment.author_name)} replied to your "
                     f"comment on {comment.article.title or comment.article.url}:\n\n{comment.body}\n\n{link}\n",
                     external("mail.unsubscribe", token=unsubscribe_token(c=parent.id)),
                     f"reply:{comment.id}:{parent.id}", comment.site_id)
    ask_to_verify_email(comment)


def comment_submitted(comment: Comment, publish_link: bool) -> None:
    """A new comment: tell the moderators if it waits; mail its author the "Publish my comment" link the rules
    asked for, or, if it was published at once as a known author's, the confirmation of their email address."""
    comment_held(comment)
    if publish_link:
        mail_publish_link(comment)
    elif comment.status == Status.APPROVED:
        ask_to_verify_email(comment)


def quoted(text: str) -> str:
    """A reader's text in a plain-text email, each line behind "> ", so it never reads as our own words or links."""
    return "\n".join("> " + line for line in text.splitlines() or [""])


def email_proof(site_id: int, email: str) -> VerifiedEmail | None:
    return db.session.scalar(sa.select(VerifiedEmail).where(VerifiedEmail.site_id == site_id,
                                                            VerifiedEmail.email == email.strip().lower()))


def ask_to_verify_email(comment: Comment) -> None:
    """After an approved comment on a site in "known_authors" mode: mail its author, once, a link to confirm their
    address, so that trust can follow them to another browser. Another link only once the first has expired."""
    email = comment.author_email.strip().lower()
    if not email or with_defaults(comment.site.rules)["moderation_mode"] != "known_authors":
        return
    now = utcnow()
    proof = email_proof(comment.site_id, email)
    if proof is None:
        try:
            with db.session.begin_nested():
                proof = VerifiedEmail(site_id=comment.site_id, email=email)
                db.session.add(proof)
        except IntegrityError:  # another approval got there a moment ago
            proof = email_proof(comment.site_id, email)
    max_age = timedelta(seconds=current_app.config["MAIL_LINK_MAX_AGE"])
    if proof.verified_at or proof.mail_stopped or (proof.link_sent_at and proof.link_sent_at > now - max_age):
        return
    proof.link_sent_at = now
    link = external("mail.verify_email", token=tokens.verify_email_link_token(proof.id))
    site = comment.site
    enqueue_mail(email, f"Confirm your email address for comments on {site.name}",
                 f"Hello {one_line(comment.author_name)},\n\n"
                 f"your comment on {one_line(comment.article.title or comment.article.url)} ({one_line(site.name)}) "
                 "is published.\n\n"
                 f"Please confirm that this email address is yours:\n{link}\n"
                 "(The link opens a page where you confirm. It works for "
                 f"{max(max_age.days, 1)} day(s).)\n\n"
                 f"Then, when you comment on {one_line(site.name)} from another browser or device, we email you a "
                 "one-click link that publishes your comment, instead of it waiting for a moderator. Typing your "
                 "name and email address is never enough on its own: anyone could type them.\n\n"
                 "If you did not write this comment, ignore this email: nothing happens without your confirmation.\n",
                 external("mail.unsubscribe", token=unsubscribe_token(v=proof.id)),
                 f"verify:{proof.id}:{now.isoformat()}", comment.site_id)


def mail_publish_link(comment: Comment) -> None:
    """A comment from a new browser with a verified email: mail that address a link that publishes it."""
    proof = email_proof(comment.site_id, comment.author_email)
    max_days = max(current_app.config["MAIL_LINK_MAX_AGE"] // 86400, 1)
    link = external("mail.publish_comment", token=tokens.publish_link_token(comment.id, proof.id))
    site = comment.site
    enqueue_mail(proof.email, f"Publish your comment on {site.name}?",
                 f"Hello {one_line(comment.author_name)},\n\n"
                 f"a comment was posted on {one_line(comment.article.title or comment.article.url)} "
                 f"({one_line(site.name)}) with this email address, from a browser we do not know yet.\n\n"
                 f"If you wrote it, publish it:\n{link}\n"
                 f"(The link opens a page where you confirm. It works for {max_days} day(s).)\n\n"
                 "If you did not write it, ignore this email: the comment waits for a moderator.\n\n"
                 f"The comment:\n\n{quoted(comment.body)}\n",
                 external("mail.unsubscribe", token=unsubscribe_token(v=proof.id)),
                 f"publish:{comment.id}", comment.site_id)


def queue_digests(now: datetime) -> int:
    """One email per moderator and site whose digest is due, listing the comments held since the last one."""
    sent = 0
    for setting in db.session.scalars(sa.select(NotificationSetting).where(NotificationSetting.mode == "digest")):
        if setting.last_digest_at and setting.last_digest_at + timedelta(minutes=setting.digest_minutes) > now:
            continue
        user = db.session.get(User, setting.user_id)
        held = db.session.scalars(
            sa.select(Comment).where(Comment.site_id == setting.site_id, Comment.status == Status.PENDING,
                                     Comment.created_at > (setting.last_digest_at or datetime.min))
            .order_by(Comment.id).limit(50)).all()
        setting.last_digest_at = now
        if not held or user is None or not user.active:
            continue
        site = held[0].site
        text = "\n\n----\n\n".join(held_comment_text(comment, user) for comment in held)
        enqueue_mail(user.email, f"{len(held)} comment(s) waiting on {site.name}", text,
                     external("mail.unsubscribe", token=unsubscribe_token(u=user.id, s=site.id)),
                     f"digest:{user.id}:{site.id}:{now.isoformat()}", site.id)
        sent += 1
    return sent


def unsubscribe(data: dict) -> str:
    """Apply an unsubscribe token; returns what stopped, in words."""
    if "c" in data:
        comment = db.session.get(Comment, data["c"])
        if comment is None or not comment.author_email:
            return "There was nothing left to unsubscribe from."
        db.session.execute(sa.update(Comment).where(
            Comment.site_id == comment.site_id, sa.func.lower(Comment.author_email) == comment.author_email.lower())
            .values(notify=False).execution_options(synchronize_session=False))
        return f"You will get no more emails about your comments on {comment.site.name}."
    if "v" in data:
        proof = db.session.get(VerifiedEmail, data["v"])
        if proof is None:
            return "There was nothing left to unsubscribe from."
        proof.mail_stopped = True
        return (f"You will get no more emails from {proof.site.name} asking you to "
                "confirm your address or publish a comment. Comments you post from a new browser wait for a moderator.")
    setting = db.session.get(NotificationSetting, (data.get("u"), data.get("s")))
    if setting is not None:
        setting.mode = "off"
    return "You will get no more emails about held comments on this site."


# --- the worker -----------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failure, at most six hours."""
    return timedelta(minutes=min(2 ** (attempts - 1), 360))


def as_email(message: OutboxMessage) -> EmailMessage:
    mail = EmailMessage(policy=email.policy.default)
    mail["From"] = current_app.config["MAIL_FROM"]
    mail["To"] = message.recipient
    mail["Subject"] = one_line(message.subject, 300)
    mail["Message-ID"] = f"<outbox-{message.id}.{message.created_at:%Y%m%d%H%M%S}@{urlsplit(current_app.config['PUBLIC_URL']).hostname}>"
    mail["Date"] = formatdate(localtime=False)
    mail["List-Unsubscribe"] = f"<{message.payload['unsubscribe']}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.payload["text"])
    return mail


def smtp_send(mail: EmailMessage) -> None:
    config = current_app.config
    kind = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    with kind(config["MAIL_SERVER"], int(config["MAIL_PORT"]), timeout=config["MAIL_TIMEOUT"]) as smtp:
        if config["MAIL_USE_STARTTLS"]:
            smtp.starttls()
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        smtp.send_message(mail)


def claim_due(now: datetime, limit: int = 100) -> list[int]:
    """Take due messages for this worker: each claim is a conditional UPDATE, so two workers
    never take the same message, and a worker that dies lets its claim lapse after LEASE."""
    due = db.session.execute(
        sa.select(OutboxMessage.id, OutboxMessage.next_attempt_at)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None), OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id).limit(limit)).all()
    claimed = []
    for message_id, seen in due:
        result = db.session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.next_attempt_at == seen, OutboxMessage.sent_at.is_(None))
            .values(next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            claimed.append(message_id)
    db.session.commit()
    return claimed


@dataclass
class Drained:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    digests: int = 0


def drain(now: datetime | None = None) -> Drained:
    """Queue the due digests, then deliver every due email and webhook call; commits as it goes."""
    from . import webhooks

    now = now or utcnow()
    report = Drained(digests=queue_digests(now))
    db.session.commit()
    for message_id in claim_due(max(now, utcnow())):  # the digests just queued are due too
        message = db.session.get(OutboxMessage, message_id)
        try:
            if message.kind == "mail":
                smtp_send(as_email(message))
            else:
                webhooks.deliver(message)
        except (OSError, smtplib.SMTPException, webhooks.DeliveryError) as error:
            message.last_error = f"{type(error).__name__}: {error}"[:2000]
            if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
                message.failed_at = utcnow()
                report.failed += 1
            else:
                message.next_attempt_at = utcnow() + backoff(message.attempts)
                report.retrying += 1
        else:
            message.sent_at = utcnow()
            message.last_error = ""
            report.sent += 1
        db.session.commit()
    return report
