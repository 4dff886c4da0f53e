"""Personal data: everything stored about an email address, exported or erased, and the
retention purge that removes IP addresses after each site's ip_retention_days.

What we hold about a reader is found once, by `footprint`, from the email and from what their
comments carry (the IP addresses and author tokens): their comments, bans and trust marks on
them, the reports they made, audit events that quote them, mail and webhook calls about them,
login throttling by their address, the proof that they own the address, and the site rules that
block them. Export lists all of it;
erase removes or anonymises all of it. Never commits (the caller does); writes its own
AuditEvent rows, without the email in them."""
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import sanitize, search
from .comments import bump_thread
from .extensions import db
from .models import (Article, AuditEvent, AuthorTrust, Ban, Comment, LoginThrottle, Report, Site, VerifiedEmail,
                     utcnow)
from .notifications import OutboxMessage, one_line
from .rules import DEFAULT_RULES

ERASE_MODES = ("anonymise", "delete")
ANONYMOUS = "Anonymous"
DELETED = "[deleted]"
ERASED = "[erased]"
SENT_MAIL_DAYS = 30  # sent messages in the outbox carry an address; kept this long for support questions
# Audit detail that quotes the author of the event's comment: their words and their name.
QUOTED_KEYS = ("original", "author")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def comments_by(email: str) -> sa.Select:
    """Every comment written with this email address, on every site, oldest first."""
    return (sa.select(Comment).where(sa.func.lower(Comment.author_email) == email.strip().lower())
            .order_by(Comment.id))


def audit(sites: set[int], action: str, actor: str, detail: dict) -> None:
    for site_id in sorted(sites):
        db.session.add(AuditEvent(site_id=site_id, actor=actor, action=action, detail=detail))


def address_forms(ips: set[str]) -> set[str]:
    """An address as comments store it and as a ban or a blocked_ips rule stores it (a /32 or /128)."""
    forms = set(ips)
    for ip in ips:
        forms.add(str(ipaddress.ip_network(ip)))
    return forms


@dataclass
class Footprint:
    """Every row that holds this reader's personal data."""

    email: str
    comments: list[Comment]
    ips: set[str]
    author_keys: set[str]
    bans: list[Ban]
    marks: list[AuthorTrust]
    reports: list[tuple[Report, int]]  # (report, the site of the reported comment)
    audit_events: list[AuditEvent]
    messages: list[OutboxMessage]
    throttles: list[LoginThrottle]
    rule_entries: list[tuple[Site, str, str]]  # (site, "blocked_emails" or "blocked_ips", entry)
    verified: list[VerifiedEmail]
    ip_pattern: re.Pattern | None = field(init=False)

    def __post_init__(self):
        # "203.0.113.5" but not "203.0.113.50": an address is no prefix of another one.
        self.ip_pattern = re.compile(r"(?<![\w.:])(?:%s)(?![\w:]|\.\w)" % "|".join(
            map(re.escape, sorted(self.ips)))) if self.ips else None

    def mentions(self, value: str) -> bool:
        """Does this text quote the email or one of the IP addresses?"""
        return self.email in value.lower() or bool(self.ip_pattern and self.ip_pattern.search(value))

    def sites(self) -> set[int]:
        return ({c.site_id for c in self.comments} | {b.site_id for b in self.bans} | {m.site_id for m in self.marks}
                | {e.site_id for e in self.audit_events} | {site.id for site, _, _ in self.rule_entries}
                | {m.site_id for m in self.messages if m.site_id} | {site_id for _, site_id in self.reports}
                | {v.site_id for v in self.verified})


def footprint(email: str) -> Footprint:
    email = email.strip().lower()
    comments = db.session.scalars(comments_by(email)).all()
    ids = {c.id for c in comments}
    ips = {c.ip for c in comments if c.ip}
    keys = {c.author_key for c in comments if c.author_key}
    forms = address_forms(ips)
    bans = db.session.scalars(sa.select(Ban).where(sa.or_(
        sa.and_(Ban.kind == "email", sa.func.lower(Ban.value) == email),
        sa.and_(Ban.kind == "ip", Ban.value.in_(forms)))).order_by(Ban.id)).all()
    marks = db.session.scalars(sa.select(AuthorTrust).where(sa.or_(
        sa.func.lower(AuthorTrust.email) == email, AuthorTrust.author_key.in_(keys))).order_by(AuthorTrust.id)).all()
    readers = [f"key:{key}" for key in keys] + [f"ip:{ip}" for ip in ips]
    reports = [tuple(row) for row in db.session.execute(
        sa.select(Report, Comment.site_id).join(Comment, Comment.id == Report.comment_id)
        .where(Report.reader.in_(readers)).order_by(Report.id))]
    verified = db.session.scalars(sa.select(VerifiedEmail).where(VerifiedEmail.email == email)
                                  .order_by(VerifiedEmail.id)).all()
    found = Footprint(email, comments, ips, keys, bans, marks, reports, [], [], [], [], verified)

    quoting = [sa.func.lower(sa.cast(AuditEvent.detail, sa.Text)).contains(value, autoescape=True)
               for value in (email, *ips)]
    events = db.session.scalars(sa.select(AuditEvent).where(sa.or_(AuditEvent.comment_id.in_(ids), *quoting))
                                .order_by(AuditEvent.id)).all()
    found.audit_events = [e for e in events if e.comment_id in ids or found.mentions(str(e.detail))]

    bodies = [c.body for c in comments if len(c.body) > 2]
    names = {one_line(c.author_name) for c in comments}
    candidates = db.session.scalars(sa.select(OutboxMessage).where(sa.or_(
        sa.func.lower(OutboxMessage.recipient) == email,
        sa.func.lower(sa.cast(OutboxMessage.payload, sa.Text)).contains(email, autoescape=True),
        OutboxMessage.site_id.in_({c.site_id for c in comments}))).order_by(OutboxMessage.id)).all()
    found.messages = [m for m in candidates if about(m, email, ids, names, bodies)]

    throttle_keys = [f"email:{email}"] + [f"ip:{ip}" for ip in ips]
    found.throttles = db.session.scalars(sa.select(LoginThrottle).where(LoginThrottle.key.in_(throttle_keys))).all()
    for site in db.session.scalars(sa.select(Site).order_by(Site.id)):
        found.rule_entries += [(site, "blocked_emails", entry) for entry in site.rules.get("blocked_emails", [])
                               if entry.lower() == email]
        found.rule_entries += [(site, "blocked_ips", entry) for entry in site.rules.get("blocked_ips", [])
                               if entry in forms]
    return found


def about(message: OutboxMessage, email: str, ids: set[int], names: set[str], bodies: list[str]) -> bool:
    """Is this outbox message to the reader, or does it carry one of their comments?"""
    if message.recipient.lower() == email or email in str(message.payload).lower():
        return True
    parts = (message.dedupe_key or "").split(":")
    kind = parts[0]
    if kind == "hook":  # hook:<webhook>:<event>:<comment>:<version>
        return len(parts) == 5 and parts[3].isdigit() and int(parts[3]) in ids
    if kind in ("held", "approved", "reply"):  # held:<comment>:<user>, approved:<comment>, reply:<comment>:<parent>
        return len(parts) > 1 and parts[1].isdigit() and int(parts[1]) in ids
    if kind == "digest":
        text = message.payload.get("text", "")
        return any(f"{name} wrote on" in text for name in names) and any(body in text for body in bodies)
    return False


def export_email(email: str, actor: str) -> dict:
    """All we keep about an email address, as a JSON-ready dict; the export is audit-logged."""
    found = footprint(email)
    places = {article_id: rest for article_id, *rest in db.session.execute(
        sa.select(Article.id, Site.key, Site.name, Article.url, Article.title)
        .join(Site, Site.id == Article.site_id).where(Article.id.in_({c.article_id for c in found.comments})))}
    site_keys = dict(db.session.execute(sa.select(Site.id, Site.key)).all())
    comments = []
    for c in found.comments:
        key, name, url, title = places[c.article_id]
        comments.append({
            "id": c.id, "site": key, "site_name": name, "article_url": url, "article_title": title,
            "parent_id": c.parent_id, "status": c.status.value, "name": c.author_name, "email": c.author_email,
            "website": c.author_website, "body": c.body, "ip": c.ip, "user_agent": c.user_agent,
            "notify": c.notify, "created_at": iso(c.created_at), "decided_at": iso(c.decided_at)})
    mail_to_them = [m for m in found.messages if m.recipient.lower() == found.email]
    data = {
        "email": email, "exported_at": iso(utcnow()), "comments": comments,
        "emails_sent": [{"subject": m.subject, "created_at": iso(m.created_at), "sent_at": iso(m.sent_at)}
                        for m in mail_to_them],
        "messages_about_your_comments": [
            {"site": site_keys.get(m.site_id), "kind": m.kind, "subject": m.subject, "created_at": iso(m.created_at),
             "sent_at": iso(m.sent_at)} for m in found.messages if m not in mail_to_them],
        "bans": [{"site": site_keys[b.site_id], "kind": b.kind, "value": b.value, "until": iso(b.until),
                  "note": b.note, "created_at": iso(b.created_at)} for b in found.bans],
        "trust_marks": [{"site": site_keys[m.site_id], "trusted": m.trusted, "name": m.author_name,
                         "email": m.email, "created_at": iso(m.created_at)} for m in found.marks],
        "reports_you_made": [{"site": site_keys[site_id], "comment_id": r.comment_id, "reason": r.reason,
                              "text": r.text, "created_at": iso(r.created_at)} for r, site_id in found.reports],
        "audit_log": [{"site": site_keys[e.site_id], "comment_id": e.comment_id, "action": e.action,
                       "detail": e.detail, "created_at": iso(e.created_at)} for e in found.audit_events],
        "site_rules": [{"site": site.key, "rule": rule, "entry": entry} for site, rule, entry in found.rule_entries],
        "email_confirmations": [{"site": site_keys[v.site_id], "link_sent_at": iso(v.link_sent_at),
                                 "verified_at": iso(v.verified_at), "mail_stopped": v.mail_stopped}
                                for v in found.verified],
        "login_throttling": [{"key": t.key, "failures": t.failures, "blocked_until": iso(t.blocked_until)}
                             for t in found.throttles],
    }
    audit(found.sites(), "personal-data-export", actor, {"comments": len(comments)})
    return data


@dataclass
class Erasure:
    mode: str
    anonymised: int = 0
    deleted: int = 0
    kept_as_deleted: int = 0
    messages: int = 0
    bans: int = 0
    marks: int = 0
    reports: int = 0
    audit_events: int = 0
    rule_entries: int = 0
    throttles: int = 0
    verified: int = 0
    sites: set[int] = field(default_factory=set)

    def summary(self) -> str:
        if self.mode == "anonymise":
            done = f"{self.anonymised} comment(s) anonymised"
        else:
            done = (f"{self.deleted} comment(s) deleted, {self.kept_as_deleted} kept as "
                    f"\"{DELETED}\" because others replied to them")
        return (f"{done}; {self.messages} queued or sent email(s) or webhook call(s) removed; "
                f"{self.bans} ban(s), {self.marks} trust mark(s) and {self.rule_entries} blocklist entr(ies) removed; "
                f"{self.reports} report(s) they made anonymised; {self.audit_events} audit event(s) cleaned; "
                f"{self.throttles} login throttle(s) and {self.verified} email confirmation(s) removed.")


def erase_email(email: str, mode: str, actor: str) -> Erasure:
    """Anonymise or delete every comment written with this email; a deleted comment that has
    replies stays as "[deleted]" so the replies keep their place in the thread. Everything else
    that names them, or carries their IP address or author token, goes too."""
    if mode not in ERASE_MODES:
        raise ValueError(f"mode must be one of {', '.join(ERASE_MODES)}")
    found = footprint(email)
    result = Erasure(mode, sites=found.sites())
    ids = [c.id for c in found.comments]

    quoted = QUOTED_KEYS + (("edited",) if mode == "delete" else ())
    for event in found.audit_events:
        own = {k: ERASED for k in quoted if k in event.detail} if event.comment_id in ids else {}
        cleaned = scrub({**event.detail, **own}, found)
        if cleaned != event.detail:
            event.detail = cleaned
            result.audit_events += 1
    for report, _ in found.reports:
        report.reader, report.text = f"erased:{secrets.token_hex(8)}", ""
    result.reports = len(found.reports)
    for row in (*found.bans, *found.marks, *found.messages, *found.throttles, *found.verified):
        db.session.delete(row)
    result.bans, result.marks = len(found.bans), len(found.marks)
    result.messages, result.throttles = len(found.messages), len(found.throttles)
    result.verified = len(found.verified)
    for site, rule, entry in found.rule_entries:
        site.rules = {**site.rules, rule: [e for e in site.rules[rule] if e != entry]}
    result.rule_entries = len(found.rule_entries)

    stripped = dict(author_email="", author_website="", ip=None, user_agent="", author_key=None, notify=False)
    if mode == "anonymise":
        for comment in found.comments:
            apply(comment, author_name=ANONYMOUS, **stripped)
        result.anonymised = len(ids)
    else:
        with_replies = set(db.session.scalars(sa.select(Comment.parent_id).where(Comment.parent_id.in_(ids))))
        placeholder = sanitize.render(DELETED)
        for comment in found.comments:
            if comment.id in with_replies:
                apply(comment, author_name=DELETED, body=DELETED, body_html=placeholder, **stripped)
                result.kept_as_deleted += 1
            else:
                db.session.delete(comment)
                result.deleted += 1
    for article_id in {c.article_id for c in found.comments}:
        bump_thread(article_id)  # cached copies of these threads show the old names
    db.session.flush()
    search.forget_changed_words()
    audit(result.sites, "personal-data-erase", actor,
          {"mode": mode, "comments": ids, "anonymised": result.anonymised, "deleted": result.deleted,
           "kept_as_deleted": result.kept_as_deleted, "bans": result.bans, "trust_marks": result.marks,
           "reports": result.reports, "audit_events": result.audit_events, "messages": result.messages,
           "email_confirmations": result.verified})
    db.session.flush()
    return result


def scrub(value, found: Footprint):
    """The JSON value with every string that quotes the email or an IP address replaced."""
    if isinstance(value, dict):
        return {k: scrub(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, found) for v in value]
    if isinstance(value, str) and found.mentions(value):
        return ERASED
    return value


def apply(comment: Comment, **values) -> None:
    for name, value in values.items():
        setattr(comment, name, value)
    comment.version += 1


@dataclass
class Purge:
    ips_removed: dict[str, int] = field(default_factory=dict)  # site key -> comments
    reports_removed: dict[str, int] = field(default_factory=dict)  # site key -> reports made from an IP address
    throttles_removed: int = 0
    messages_removed: int = 0

    def lines(self) -> list[str]:
        out = [f"{site}: removed the IP address and user agent of {n} comment(s)"
               for site, n in self.ips_removed.items() if n]
        out += [f"{site}: removed the IP address from {n} reader's report(s)"
                for site, n in self.reports_removed.items() if n]
        if not any(self.ips_removed.values()) and not any(self.reports_removed.values()):
            out.append("No IP addresses had expired.")
        out.append(f"Removed {self.throttles_removed} login throttle(s) by IP address that no longer block.")
        out.append(f"Removed {self.messages_removed} sent email(s) older than {SENT_MAIL_DAYS} days.")
        return out


def purge(now: datetime | None = None) -> Purge:
    """Remove each site's IP addresses (and user agents) older than its ip_retention_days, from
    comments and from the reports of readers who had no author token; and login throttling by IP
    address once it no longer blocks."""
    now = now or utcnow()
    report = Purge()
    for site in db.session.scalars(sa.select(Site).order_by(Site.id)):
        days = site.rules.get("ip_retention_days", DEFAULT_RULES["ip_retention_days"])
        result = db.session.execute(
            sa.update(Comment)
            .where(Comment.site_id == site.id, Comment.created_at < now - timedelta(days=days),
                   sa.or_(Comment.ip.is_not(None), Comment.user_agent != ""))
            .values(ip=None, user_agent="")
            .execution_options(synchronize_session=False))
        report.ips_removed[site.key] = result.rowcount
        reports = db.session.execute(
            sa.update(Report)
            .where(Report.reader.like("ip:%"), Report.created_at < now - timedelta(days=days),
                   Report.comment_id.in_(sa.select(Comment.id).where(Comment.site_id == site.id)))
            .values(reader=sa.literal("expired:") + sa.cast(Report.id, sa.String))
            .execution_options(synchronize_session=False))
        report.reports_removed[site.key] = reports.rowcount
        if result.rowcount or reports.rowcount:
            db.session.add(AuditEvent(site_id=site.id, actor="purge", action="ip-purge",
                                      detail={"comments": result.rowcount, "reports": reports.rowcount, "days": days}))
    report.throttles_removed = db.session.execute(
        sa.delete(LoginThrottle)
        .where(LoginThrottle.key.like("ip:%"),
               sa.or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now))
        .execution_options(synchronize_session=False)).rowcount
    result = db.session.execute(
        sa.delete(OutboxMessage)
        .where(OutboxMessage.sent_at < now - timedelta(days=SENT_MAIL_DAYS))
        .execution_options(synchronize_session=False))
    report.messages_removed = result.rowcount
    return report
