"""The rule test bench behind a site's settings page: try a pasted comment against the rules, replay
a changed rule set over the site's recent comments, and count each rule's hits and overrulings.
Reads only; the facts a comment had when it was posted (speed, honeypot) are not replayed."""
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from . import comments, rules, sanitize
from .extensions import db
from .models import AuditEvent, Comment, Site, utcnow
from .rules import Status

PREVIEW_SIZE = 1000
STATS_DAYS = 30


@dataclass
class Trial:
    """What the rules make of one comment: a refusal (nothing stored) or a decision."""

    refusal: rules.Refusal | None
    decision: rules.Decision | None

    @property
    def outcome(self) -> str:
        return f"refused ({self.refusal.status_code})" if self.refusal else self.decision.status.value


@dataclass
class Change:
    comment: Comment
    before: Trial
    after: Trial


def draft_of(body_html: str, name: str = "", email: str = "", website: str = "", ip: str = "") -> rules.Draft:
    text, links = sanitize.text_and_links(body_html)
    return rules.Draft(text=text, links=links, name=name, email=email, website=website, ip=ip)


def trial(draft: rules.Draft, site_rules: dict, facts: rules.Facts) -> Trial:
    refusal = rules.refuse(draft, site_rules, facts)
    return Trial(refusal, None if refusal else rules.decide(draft, site_rules, facts))


def try_comment(site: Site, body: str, name: str = "", email: str = "", website: str = "") -> Trial:
    """The rules' answer to a pasted comment from a new author, with any trust mark on its email."""
    facts = rules.Facts(author_trusted=comments.author_trust(site, None, email) if email else None)
    return trial(draft_of(sanitize.render(body), name, email, website), site.rules, facts)


def recent(site: Site, limit: int = PREVIEW_SIZE) -> list[Comment]:
    return list(db.session.scalars(sa.select(Comment).where(Comment.site_id == site.id)
                                   .order_by(Comment.id.desc()).limit(limit)))


def preview(site: Site, new_rules: dict) -> tuple[int, list[Change]]:
    """How many of the last PREVIEW_SIZE comments were replayed, and those the new rules decide otherwise."""
    latest = recent(site)
    # An author is known for a comment if they had an approved comment before it.
    first_approved = dict(db.session.execute(
        sa.select(Comment.author_key, sa.func.min(Comment.id))
        .where(Comment.site_id == site.id, Comment.status == Status.APPROVED, Comment.author_key.is_not(None))
        .group_by(Comment.author_key)).all())
    changes = []
    for comment in latest:
        known = comment.author_key in first_approved and first_approved[comment.author_key] < comment.id
        facts = rules.Facts(known_author=known)
        draft = draft_of(comment.body_html, comment.author_name, comment.author_email, comment.author_website,
                         comment.ip or "")
        before, after = trial(draft, site.rules, facts), trial(draft, new_rules, facts)
        if before.outcome != after.outcome:
            changes.append(Change(comment, before, after))
    return len(latest), changes


@dataclass
class RuleStats:
    rule: str
    hits: int
    overruled: int


def rule_stats(site: Site) -> list[RuleStats]:
    """Per rule: comments it stopped in the last STATS_DAYS days, and how many a moderator then approved."""
    since = utcnow() - timedelta(days=STATS_DAYS)
    rows = db.session.execute(sa.select(Comment.id, Comment.reasons)
                              .where(Comment.site_id == site.id, Comment.created_at >= since)).all()
    approved = set(db.session.scalars(
        sa.select(AuditEvent.comment_id)
        .where(AuditEvent.site_id == site.id, AuditEvent.to_status == Status.APPROVED.value,
               AuditEvent.user_id.is_not(None), AuditEvent.created_at >= since)))
    hits, overruled = Counter(), Counter()
    for comment_id, reasons in rows:
        for rule in {rules.rule_of(reason) for reason in reasons or []} - {None}:
            hits[rule] += 1
            overruled[rule] += comment_id in approved
    return [RuleStats(rule, hits[rule], overruled[rule]) for rule in sorted(hits, key=lambda r: (-hits[r], r))]
