"""Personal data: everything stored about an email address, exported or erased, and the
retention purge that removes IP addresses after each site's ip_retention_days.
Never commits (the caller does); writes its own AuditEvent rows, without the email in them."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import sanitize
from .comments import bump_thread
from .extensions import db
from .models import Article, AuditEvent, Comment, Site, utcnow
from .notifications import OutboxMessage
from .rules import DEFAULT_RULES

ERASE_MODES = ("anonymise", "delete")
ANONYMOUS = "Anonymous"
DELETED = "[deleted]"
SENT_MAIL_DAYS = 30  # sent messages in the outbox carry an address; kept this long for support questions


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def comments_by(email: str) -> sa.Select:
    """Every comment written with this email address, on every site, oldest first."""
    return (sa.select(Comment).where(sa.func.lower(Comment.author_email) == email.strip().lower())
            .order_by(Comment.id))


def mail_to(email: str) -> sa.Select:
    return sa.select(OutboxMessage).where(OutboxMessage.kind == "mail",
                                          sa.func.lower(OutboxMessage.recipient) == email.strip().lower())


def audit(sites: set[int], action: str, actor: str, detail: dict) -> None:
    for site_id in sorted(sites):
        db.session.add(AuditEvent(site_id=site_id, actor=actor, action=action, detail=detail))


def export_email(email: str, actor: str) -> dict:
    """All we keep about an email address, as a JSON-ready dict; the export is audit-logged."""
    rows = db.session.execute(
        comments_by(email).add_columns(Site.key, Site.name, Article.url, Article.title)
        .join(Site, Site.id == Comment.site_id).join(Article, Article.id == Comment.article_id)).all()
    comments = [{
        "id": c.id, "site": key, "site_name": name, "article_url": url, "article_title": title,
        "parent_id": c.parent_id, "status": c.status.value, "name": c.author_name, "email": c.author_email,
        "website": c.author_website, "body": c.body, "ip": c.ip, "user_agent": c.user_agent,
        "notify": c.notify, "created_at": iso(c.created_at), "decided_at": iso(c.decided_at),
    } for c, key, name, url, title in rows]
    messages = [{"subject": m.subject, "created_at": iso(m.created_at), "sent_at": iso(m.sent_at)}
                for m in db.session.scalars(mail_to(email))]
    audit({c.site_id for c, *_ in rows}, "personal-data-export", actor, {"comments": len(comments)})
    return {"email": email, "exported_at": iso(utcnow()), "comments": comments, "emails_sent": messages}


@dataclass
class Erasure:
    mode: str
    anonymised: int = 0
    deleted: int = 0
    kept_as_deleted: int = 0
    messages: int = 0
    sites: set[int] = field(default_factory=set)

    def summary(self) -> str:
        if self.mode == "anonymise":
            done = f"{self.anonymised} comment(s) anonymised"
        else:
            done = (f"{self.deleted} comment(s) deleted, {self.kept_as_deleted} kept as "
                    f"\"{DELETED}\" because others replied to them")
        return f"{done}; {self.messages} queued or sent email(s) removed."


def erase_email(email: str, mode: str, actor: str) -> Erasure:
    """Anonymise or delete every comment written with this email; a deleted comment that has
    replies stays as "[deleted]" so the replies keep their place in the thread."""
    if mode not in ERASE_MODES:
        raise ValueError(f"mode must be one of {', '.join(ERASE_MODES)}")
    result = Erasure(mode)
    targets = db.session.scalars(comments_by(email)).all()
    ids = [c.id for c in targets]
    result.sites = {c.site_id for c in targets}
    stripped = dict(author_email="", author_website="", ip=None, user_agent="", author_key=None, notify=False)
    if mode == "anonymise":
        for comment in targets:
            apply(comment, author_name=ANONYMOUS, **stripped)
        result.anonymised = len(targets)
    else:
        with_replies = set(db.session.scalars(sa.select(Comment.parent_id).where(Comment.parent_id.in_(ids))))
        placeholder = sanitize.render(DELETED)
        for comment in targets:
            if comment.id in with_replies:
                apply(comment, author_name=DELETED, body=DELETED, body_html=placeholder, **stripped)
                result.kept_as_deleted += 1
            else:
                db.session.delete(comment)
                result.deleted += 1
    for article_id in {c.article_id for c in targets}:
        bump_thread(article_id)  # cached copies of these threads show the old names
    for message in db.session.scalars(mail_to(email)):
        db.session.delete(message)
        result.messages += 1
    audit(result.sites, "personal-data-erase", actor,
          {"mode": mode, "comments": ids, "anonymised": result.anonymised, "deleted": result.deleted,
           "kept_as_deleted": result.kept_as_deleted})
    db.session.flush()
    return result


def apply(comment: Comment, **values) -> None:
    for name, value in values.items():
        setattr(comment, name, value)
    comment.version += 1


@dataclass
class Purge:
    ips_removed: dict[str, int] = field(default_factory=dict)  # site key -> comments
    messages_removed: int = 0

    def lines(self) -> list[str]:
        out = [f"{site}: removed the IP address and user agent of {n} comment(s)"
               for site, n in self.ips_removed.items() if n]
        if not any(self.ips_removed.values()):
            out.append("No IP addresses had expired.")
        out.append(f"Removed {self.messages_removed} sent email(s) older than {SENT_MAIL_DAYS} days.")
        return out


def purge(now: datetime | None = None) -> Purge:
    """Remove each site's IP addresses (and user agents) older than its ip_retention_days."""
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
        if result.rowcount:
            db.session.add(AuditEvent(site_id=site.id, actor="purge", action="ip-purge",
                                      detail={"comments": result.rowcount, "days": days}))
    result = db.session.execute(
        sa.delete(OutboxMessage)
        .where(OutboxMessage.sent_at < now - timedelta(days=SENT_MAIL_DAYS))
        .execution_options(synchronize_session=False))
    report.messages_removed = result.rowcount
    return report
