"""The moderator's queue queries: tabs, filters, search, an author's history, who is reviewing
what, and the audit log. Each returns a Select (or plain data) scoped by comments.visible_to."""
import functools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, selectinload

from . import search
from .comments import visible_to
from .extensions import db
from .models import Article, AuditEvent, Claim, Comment, Site, User, utcnow
from .rules import Status

TABS = ("pending", "flagged", "reported", "approved", "rejected", "all")
# Reason filters: what a moderator picks, and the words of the held reasons that mean it.
REASONS = {
    "words": ("Word list", ("matched held word", "matched blocked word")),
    "links": ("Links", ("link",)),
    "flood": ("Flood", ("flood", "too quickly")),
    "new": ("New author", ("new author",)),
    "fast": ("Filled too fast", ("filled too fast",)),
    "reported": ("Reported", ()),
}
CLAIM_SECONDS = 120
COUNT_CAP = 10_000  # tabs show "10000+" past this
HISTORY_SIZE = 5  # an author's latest other comments, listed on the card and the comment page
EXCERPT = 140  # characters of each of them shown


@dataclass(frozen=True)
class Filter:
    """What the moderator is looking at: a tab, and optionally one site, one reason, a search."""

    tab: str = "pending"
    site_id: int | None = None
    reason: str = ""
    q: str = ""

    def args(self) -> dict:
        """The filter as query-string arguments (empty ones left out), for links and forms."""
        return {key: value for key, value in (("site", self.site_id), ("reason", self.reason), ("q", self.q))
                if value}


@dataclass
class Earlier:
    """One of an author's other comments, as their history lists it."""

    id: int
    status: Status
    created_at: datetime
    article: str  # its title, or its address when it has none
    excerpt: str  # the first EXCERPT characters of its text (one more when there is more)

    @property
    def text(self) -> str:
        return self.excerpt[:EXCERPT] + ("…" if len(self.excerpt) > EXCERPT else "")


@dataclass
class History:
    """An author's record on a site: their other comments by the same email, IP or author token."""

    counts: dict[str, int] = field(default_factory=dict)
    latest: list[Earlier] = field(default_factory=list)


def in_tab(tab: str) -> sa.ColumnElement[bool]:
    if tab == "all":
        return sa.true()
    if tab == "reported":
        return Comment.reports > 0
    return Comment.status == Status(tab)


def scope(user: User, site_id: int | None) -> sa.ColumnElement[bool]:
    """The user's sites (or one of them), spelled out even for admins, so that a query by
    status starts from an index that leads with site_id (a rare status is then no scan)."""
    site_ids = [site_id] if site_id else user.site_ids()
    if site_ids is None:
        site_ids = db.session.scalars(sa.select(Site.id)).all()
    return sa.and_(visible_to(user), Comment.site_id.in_(site_ids))


def matching(user: User, view: Filter) -> sa.Select:
    """Every comment the filter selects, newest first (without paging or eager loads)."""
    query = sa.select(Comment).where(in_tab(view.tab))
    if view.site_id or (view.tab != "all" and not view.q):
        query = query.where(scope(user, view.site_id))
    else:  # newest first by the primary key, or from the search index's matches
        query = query.where(visible_to(user))
    if view.reason == "reported":
        query = query.where(Comment.reports > 0)
    elif view.reason in REASONS:
        reasons = sa.cast(Comment.reasons, sa.Text)
        query = query.where(sa.or_(*(reasons.like(f"%{word}%") for word in REASONS[view.reason][1])))
    if view.q:
        query = query.where(search.matching(view.q))
    return query.order_by(Comment.id.desc())


def page(user: User, view: Filter, before: int | None, size: int) -> sa.Select:
    """One page of the queue (size + 1 rows, so the caller knows if there is more)."""
    query = matching(user, view)
    if before:
        query = query.where(Comment.id < before)
    return query.limit(size + 1).options(
        selectinload(Comment.article), selectinload(Comment.site),
        selectinload(Comment.decided_by), selectinload(Comment.parent))


def counts(user: User, site_id: int | None = None) -> dict[str, int]:
    """How many comments each tab holds, for the user's sites (or one of them); counted up to
    COUNT_CAP + 1 at most, so a queue of 100,000 costs what one of 10,000 does."""
    where = [scope(user, site_id)]
    result = {}
    for tab in TABS:
        rows = sa.select(sa.literal(1)).where(*where, in_tab(tab)).limit(COUNT_CAP + 1).subquery()
        result[tab] = db.session.scalar(sa.select(sa.func.count()).select_from(rows))
    return result


def sites_of(user: User) -> list[Site]:
    site_ids = user.site_ids()
    query = sa.select(Site).order_by(Site.name)
    if site_ids is not None:
        query = query.where(Site.id.in_(site_ids))
    return list(db.session.scalars(query))


def same_author(comment: Comment) -> sa.ColumnElement[bool]:
    """Comments by the same email, IP or author token on the same site."""
    alike = [Comment.author_email == comment.author_email]
    if comment.ip:
        alike.append(Comment.ip == comment.ip)
    if comment.author_key:
        alike.append(Comment.author_key == comment.author_key)
    return sa.and_(Comment.site_id == comment.site_id, sa.or_(*alike))


@functools.cache
def other_comments_by_same_author() -> sa.Subquery:
    """(card_id, id, status): for each comment whose id is in the "card_ids" parameter, every
    other comment on its site with the same email, IP or author token. A union of three joins,
    each on its own index (an OR in one join condition makes SQLite read the whole site); the
    status comes along, as joining the ids back to comments made PostgreSQL hash the whole table.
    Built once: building its aliased joins cost more than running it on a small site."""
    card = aliased(Comment, name="card")
    card_ids = sa.bindparam("card_ids", expanding=True)

    def alike(mine, theirs) -> sa.Select:
        return (sa.select(card.id.label("card_id"), Comment.id.label("id"), Comment.status.label("status"))
                .join(Comment, sa.and_(Comment.site_id == card.site_id, mine == theirs))
                .where(card.id.in_(card_ids), Comment.id != card.id))

    return sa.union(alike(Comment.author_email, card.author_email), alike(Comment.ip, card.ip),
                    alike(Comment.author_key, card.author_key)).subquery("same_author")


# What makes two comments on a site "by the same author": any of these alike (and not NULL).
AUTHOR_COLUMNS = (Comment.author_email, Comment.ip, Comment.author_key)


def history_counts(comments: list[Comment]) -> dict[int, dict[str, int]]:
    """comment id -> how many other comments its author has on its site by status: those alike
    in email, IP or token, for a whole page in two queries whatever its size.

    Of each comment's three sets of alike comments, the largest is only counted (a range of its
    column's index, once per distinct value on the page); the rows of the other two are read,
    and those outside the largest added. So a flood of 30,000 comments from one IP address is
    counted once for the page, not joined row by row for every card that shows one of them."""
    result: dict[int, dict[str, int]] = {comment.id: {} for comment in comments}
    if not comments:
        return result
    sizes: dict[tuple, Counter] = {}  # (column, site, value) -> comments with that value, by status
    for column, site_id, value, status, count in db.session.execute(sa.union_all(*(
            sa.select(sa.literal(i), Comment.site_id, AUTHOR_COLUMNS[i], Comment.status, sa.func.count())
            .where(alike_in(i, site_id, values))
            .group_by(Comment.site_id, AUTHOR_COLUMNS[i], Comment.status)
            for (i, site_id), values in values_on_page(comments).items()))):
        sizes.setdefault((column, site_id, value), Counter())[status] = count

    def size(comment: Comment, column: int) -> int:
        return sizes.get((column, comment.site_id, author_values(comment)[column]), Counter()).total()

    largest = {comment.id: max(alike_columns(comment), key=lambda column: size(comment, column))
               for comment in comments}
    rows: dict[tuple, list] = {}  # (column, site, value) -> (id, status, values) of the comments alike in it
    smaller = values_on_page(comments, skip=largest)
    if smaller:
        for column, comment_id, site_id, status, *values in db.session.execute(sa.union_all(*(
                sa.select(sa.literal(i), Comment.id, Comment.site_id, Comment.status, *AUTHOR_COLUMNS)
                .where(alike_in(i, site_id, values))
                for (i, site_id), values in smaller.items()))):
            rows.setdefault((column, site_id, values[column]), []).append((comment_id, status, values))
    for comment in comments:
        mine, big = author_values(comment), largest[comment.id]
        tally = Counter(sizes.get((big, comment.site_id, mine[big]), {}))
        added = set()
        for column in alike_columns(comment):
            for other_id, status, values in rows.get((column, comment.site_id, mine[column]), ()):
                if values[big] != mine[big] and other_id not in added:
                    added.add(other_id)
                    tally[status] += 1
        tally[comment.status] -= 1  # the comment itself, one of its own largest set
        result[comment.id] = {status.value: count for status, count in tally.items() if count}
    return result


def alike_in(column: int, site_id: int, values: set) -> sa.ColumnElement[bool]:
    """The comments of the site whose AUTHOR_COLUMNS[column] is one of values."""
    return sa.and_(Comment.site_id == site_id, AUTHOR_COLUMNS[column].in_(values))


def author_values(comment: Comment) -> tuple:
    """The comment's values of AUTHOR_COLUMNS, in their order."""
    return tuple(getattr(comment, column.key) for column in AUTHOR_COLUMNS)


def alike_columns(comment: Comment) -> list[int]:
    return [column for column, value in enumerate(author_values(comment)) if value is not None]


def values_on_page(comments: list[Comment], skip: dict[int, int] | None = None) -> dict[tuple, set]:
    """(column, site) -> the comments' distinct values of that column (but a comment's skip[id] column)."""
    found: dict[tuple, set] = {}
    for comment in comments:
        for column in alike_columns(comment):
            if skip is None or skip[comment.id] != column:
                found.setdefault((column, comment.site_id), set()).add(author_values(comment)[column])
    return found


def history(comment: Comment) -> History:
    """The author's record for the comment's page: the counts, and the latest few comments."""
    matches = other_comments_by_same_author()
    latest = db.session.execute(
        sa.select(Comment.id, Comment.status, Comment.created_at,
                  sa.func.coalesce(sa.func.nullif(Article.title, ""), Article.url),
                  sa.func.substr(Comment.body, 1, EXCERPT + 1))
        .join(matches, matches.c.id == Comment.id).join(Article, Article.id == Comment.article_id)
        .order_by(Comment.id.desc()).limit(HISTORY_SIZE), {"card_ids": [comment.id]})
    return History(history_counts([comment])[comment.id], [Earlier(*row) for row in latest])


def pending_from_author(comment: Comment) -> sa.Select:
    return sa.select(Comment).where(same_author(comment), Comment.status == Status.PENDING)


def reviewers(user: User, comment_ids: list[int]) -> dict[int, str]:
    """comment id -> the email of another moderator who opened it in the last two minutes."""
    if not comment_ids:
        return {}
    since = utcnow() - timedelta(seconds=CLAIM_SECONDS)
    rows = db.session.execute(
        sa.select(Claim.comment_id, User.email).join(User, User.id == Claim.user_id)
        .where(Claim.comment_id.in_(comment_ids), Claim.user_id != user.id, Claim.claimed_at > since))
    return dict(rows.all())


def claim(user: User, comment: Comment) -> None:
    """Mark comment as being reviewed by user, replacing an older claim. Two requests may claim it
    at once (the queue's script claims the card a click is opening): on PostgreSQL the second
    insert then meets the first one's row, and takes it over instead."""
    take_over = (sa.update(Claim).where(Claim.comment_id == comment.id)
                 .values(user_id=user.id, claimed_at=utcnow()).execution_options(synchronize_session=False))
    if db.session.execute(take_over).rowcount:
        return
    try:
        with db.session.begin_nested():
            db.session.add(Claim(comment_id=comment.id, user_id=user.id, claimed_at=utcnow()))
    except IntegrityError:
        db.session.execute(take_over)


def audit_log(user: User, site_id: int | None = None, actor: str = "", action: str = "") -> sa.Select:
    """Audit events of the user's sites, newest first, optionally filtered."""
    site_ids = user.site_ids()
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc())
    if site_ids is not None:
        query = query.where(AuditEvent.site_id.in_(site_ids))
    if site_id:
        query = query.where(AuditEvent.site_id == site_id)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    return query


def by_ids(user: User, ids: list[int]) -> sa.Select:
    return sa.select(Comment).where(visible_to(user), Comment.id.in_(ids))
