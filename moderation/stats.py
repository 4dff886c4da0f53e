"""Figures for the stats page of one site: comments per day, approval rate, time to decision,
top reasons and busiest articles, over a recent window."""
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa

from .extensions import db
from .models import Article, Comment, utcnow
from .rules import Status

WINDOW_DAYS = 30
SAMPLE = 20_000  # decided comments read for the time-to-decision percentiles


@dataclass
class SiteStats:
    days: list[tuple[str, int]] = field(default_factory=list)
    approved: int = 0
    rejected: int = 0
    median_minutes: float | None = None
    p90_minutes: float | None = None
    reasons: list[tuple[str, int]] = field(default_factory=list)
    articles: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def approval_rate(self) -> float | None:
        decided = self.approved + self.rejected
        return self.approved / decided if decided else None


def reason_kind(reason: str) -> str:
    """A held reason without its particulars: "held: contains 3 links (limit 2)" -> "held: contains links"."""
    words = [word for word in reason.split("(")[0].split() if not word.isdigit()]
    if "word" in words and "matched" in words:
        return " ".join(words[:words.index("word") + 1])
    return " ".join("links" if word == "link" else word for word in words).rstrip(":")


def for_site(site_id: int, today: date | None = None) -> SiteStats:
    today = today or utcnow().date()
    start = today - timedelta(days=WINDOW_DAYS - 1)
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=WINDOW_DAYS - 1)
    recent = sa.and_(Comment.site_id == site_id, Comment.created_at >= since)
    stats = SiteStats()
    per_day = dict((str(day), n) for day, n in db.session.execute(
        sa.select(sa.func.date(Comment.created_at), sa.func.count()).where(recent)
        .group_by(sa.func.date(Comment.created_at))))
    stats.days = [(str(start + timedelta(days=n)), per_day.get(str(start + timedelta(days=n)), 0))
                  for n in range(WINDOW_DAYS)]
    for status, n in db.session.execute(sa.select(Comment.status, sa.func.count()).where(recent)
                                        .group_by(Comment.status)):
        if status == Status.APPROVED:
            stats.approved = n
        elif status == Status.REJECTED:
            stats.rejected = n
    waits = sorted((decided - created).total_seconds() / 60 for created, decided in db.session.execute(
        sa.select(Comment.created_at, Comment.decided_at)
        .where(recent, Comment.decided_by_id.is_not(None), Comment.decided_at.is_not(None)).limit(SAMPLE)))
    if waits:
        stats.median_minutes = statistics.median(waits)
        stats.p90_minutes = statistics.quantiles(waits, n=10, method="inclusive")[-1] if len(waits) > 1 else waits[0]
    reasons = Counter(reason_kind(reason) for (held,) in db.session.execute(
        sa.select(Comment.reasons).where(recent).limit(SAMPLE)) for reason in held or []
        if not reason.startswith("approved"))
    stats.reasons = reasons.most_common(8)
    stats.articles = [(title or url, url, n) for title, url, n in db.session.execute(
        sa.select(Article.title, Article.url, sa.func.count(Comment.id)).join(Comment, Comment.article_id == Article.id)
        .where(recent).group_by(Article.id, Article.title, Article.url)
        .order_by(sa.func.count(Comment.id).desc()).limit(8))]
    return stats
