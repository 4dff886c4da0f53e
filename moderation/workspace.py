"""The moderator's decisions beyond a single approve / reject / flag: edit, ban, bulk,
"reject all pending from this author", undo, and reader reports. Each writes its own audit
events; none commits (the view does)."""
import ipaddress
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from . import comments, queue, sanitize, webhooks
from .addresses import client_key
from .comments import ACTIONS, Conflict
from .extensions import db
from .models import AuditEvent, Ban, Comment, Report, User, utcnow
from .rules import Status

BULK_LIMIT = 500
UNDO_LOOKBACK = 50
REPORTS_PER_HOUR = 10
DEFAULT_REPORT_THRESHOLD = 3
REPORT_FORM_USED = ("This report form was already sent, so nothing more was recorded. "
                    "To report a comment, open its Report link again.")


@dataclass
class Outcome:
    """What a bulk decision did: how many applied, how many had changed meanwhile."""

    applied: int = 0
    skipped: int = 0
    more: bool = False


def audit(user: User | None, comment: Comment, action: str, from_status, to_status, **detail) -> None:
    db.session.add(AuditEvent(site_id=comment.site_id, comment_id=comment.id, user_id=user.id if user else None,
                              actor=user.email if user else "readers", action=action,
                              from_status=from_status, to_status=to_status, detail=detail))


def record_refused(user: User, comment: Comment, action: str, why: str, to_status=None, **detail) -> None:
    """Audit an attempt that was not applied, and why, so that every attempt is in the log."""
    audit(user, comment, f"{action}-refused", comment.status, to_status, why=why, **detail)


def bump(comment: Comment, *statuses: Status) -> None:
    """The public thread changed if the comment was or becomes approved."""
    if Status.APPROVED in statuses:
        comments.bump_thread(comment.article_id)


def claim_version(comment: Comment, seen_version: int, **values) -> None:
    """Apply values if the comment is still at seen_version; else Conflict with who changed it."""
    result = db.session.execute(
        sa.update(Comment).where(Comment.id == comment.id, Comment.version == seen_version)
        .values(version=Comment.version + 1, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(comment)
        raise Conflict(comments.describe_change(comment))
    db.session.refresh(comment)


def edit(user: User, comment: Comment, seen_version: int, body: str, note: str = "") -> None:
    """Replace the comment's text (re-rendered by the sanitizer); the original goes to the audit log."""
    original = comment.body
    claim_version(comment, seen_version, body=body, body_hash=comments.body_hash(body),
                  body_html=sanitize.render(body), sanitizer_version=sanitize.SANITIZER_VERSION)
    audit(user, comment, "edit", comment.status, comment.status, original=original, edited=body, note=note)
    bump(comment, comment.status)


def ban(user: User, comment: Comment, kind: str, days: int, cidr: int = 24, note: str = "") -> Ban:
    """Ban the comment's author from its site by email, IP or IP range, for days."""
    if kind == "email":
        value = comment.author_email.lower()
    elif not comment.ip:
        raise ValueError("This comment has no IP address on record; ban by email instead.")
    else:
        address = ipaddress.ip_address(comment.ip)
        prefix = address.max_prefixlen if kind == "ip" else min(max(cidr, 8 if address.version == 4 else 16),
                                                                 address.max_prefixlen)
        value = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    found = Ban(site_id=comment.site_id, kind="email" if kind == "email" else "ip", value=value,
                until=utcnow() + timedelta(days=days), note=note, created_by_id=user.id)
    db.session.add(found)
    audit(user, comment, "ban", None, None, ban=value, until=found.until.isoformat(timespec="minutes"), note=note)
    return found


def decide_many(user: User, targets: list[tuple[Comment, int]], action: str, detail: dict) -> Outcome:
    """Apply one decision to many comments, each only if still at the version given."""
    outcome = Outcome()
    for comment, version in targets:
        try:
            with db.session.begin_nested():
                comments.moderate(user, comment, action, version, detail)
            outcome.applied += 1
        except Conflict as conflict:
            outcome.skipped += 1
            record_refused(user, comment, action, str(conflict), ACTIONS[action], seen_version=version, **detail)
    return outcome


def decide_matching(user: User, query: sa.Select, action: str, detail: dict) -> Outcome:
    """Apply a decision to every comment a query selects (at most BULK_LIMIT at a time)."""
    rows = list(db.session.scalars(query.limit(BULK_LIMIT + 1)))
    outcome = decide_many(user, [(comment, comment.version) for comment in rows[:BULK_LIMIT]], action, detail)
    outcome.more = len(rows) > BULK_LIMIT
    return outcome


def reject_author(user: User, comment: Comment) -> Outcome:
    """Reject every pending comment by the same email, IP or author token on this site."""
    return decide_matching(user, queue.pending_from_author(comment), "reject",
                           {"reason": "All pending comments from this author"})


def last_decision(user: User) -> AuditEvent | None:
    """The user's latest decision not yet undone, if there is one among their recent events."""
    events = list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.user_id == user.id,
                                    AuditEvent.action.in_([*ACTIONS, "undo"]))
        .order_by(AuditEvent.id.desc()).limit(UNDO_LOOKBACK)))
    undone = {event.detail.get("undoes") for event in events if event.action == "undo"}
    return next((event for event in events if event.action != "undo" and event.id not in undone
                 and event.comment_id is not None), None)


def undo(user: User, last: AuditEvent) -> Comment:
    """Put back the comment of that decision, if nobody changed it since; audited as "undo"."""
    comment = db.session.get(Comment, last.comment_id)
    if comment is None or comment.status != last.to_status or comment.decided_by_id != user.id:
        raise Conflict(comments.describe_change(comment) if comment else "That comment no longer exists.")
    back = Status(last.from_status)
    pending = back == Status.PENDING
    claim_version(comment, comment.version, status=back, decided_at=None if pending else utcnow(),
                  decided_by_id=None if pending else user.id)
    audit(user, comment, "undo", last.to_status, back, undoes=last.id)
    bump(comment, Status(last.to_status), back)
    return comment


def reader_of(author_key: str | None, ip: str | None) -> str:
    """Who is reporting: the signed author token's key if the reader has one, else the IP
    address (an IPv6 /64 is one reader)."""
    return f"key:{author_key}" if author_key else f"ip:{client_key(ip) if ip else 'unknown'}"


def report(comment: Comment, reader: str, reason: str, text: str, nonce: str | None = None) -> str:
    """Record a reader's report (sent with the report form whose token carried nonce); past the
    site's threshold the comment is hidden until a moderator decides. Returns a message for the reader."""
    if nonce and db.session.scalar(sa.select(sa.exists().where(Report.nonce == nonce))):
        raise comments.Refused(409, REPORT_FORM_USED)
    if comment.status != Status.APPROVED:
        return "Thank you; this comment is already with the moderators."
    hour_ago = utcnow() - timedelta(hours=1)
    recent = db.session.scalar(sa.select(sa.func.count()).where(Report.reader == reader,
                                                                Report.created_at > hour_ago))
    if recent >= REPORTS_PER_HOUR:
        raise comments.Refused(429, "You have sent many reports in the last hour; please try again later.")
    if db.session.scalar(sa.select(sa.exists().where(Report.comment_id == comment.id, Report.reader == reader))):
        return "You have already reported this comment; the moderators will look at it."
    db.session.add(Report(comment_id=comment.id, reader=reader, reason=reason, text=text, nonce=nonce))
    db.session.execute(sa.update(Comment).where(Comment.id == comment.id)
                       .values(reports=Comment.reports + 1).execution_options(synchronize_session=False))
    db.session.refresh(comment)
    webhooks.enqueue(comment, "comment.reported")
    threshold = comment.site.rules.get("report_threshold", DEFAULT_REPORT_THRESHOLD)
    if comment.reports >= threshold:
        reason_text = f"hidden: reported by {comment.reports} readers (threshold {threshold})"
        db.session.execute(sa.update(Comment).where(Comment.id == comment.id).values(
            status=Status.PENDING, version=Comment.version + 1, reasons=[*comment.reasons, reason_text],
            decided_at=None, decided_by_id=None).execution_options(synchronize_session=False))
        audit(None, comment, "hide", Status.APPROVED, Status.PENDING, reason=reason_text)
        bump(comment, Status.APPROVED)
        db.session.refresh(comment)
    return "Thank you for your report; a moderator will look at this comment."


def report_summary(comment_ids: list[int]) -> dict[int, dict[str, int]]:
    """comment id -> {reason: how many readers gave it since the last moderator's decision}."""
    if not comment_ids:
        return {}
    since = sa.func.coalesce(Comment.decided_at, Comment.created_at)
    rows = db.session.execute(sa.select(Report.comment_id, Report.reason, sa.func.count())
                              .join(Comment, Comment.id == Report.comment_id)
                              .where(Report.comment_id.in_(comment_ids), Report.created_at >= since)
                              .group_by(Report.comment_id, Report.reason))
    result: dict[int, dict[str, int]] = {}
    for comment_id, reason, count in rows:
        result.setdefault(comment_id, {})[reason] = count
    return result
