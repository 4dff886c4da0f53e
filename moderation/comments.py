"""What happens to comments: submitting one, moderating one, and the queries behind the
thread and the queue. Gathers the facts the rules need; never commits (the view does)."""
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import rules, sanitize, tokens
from .extensions import db
from .models import Article, AuditEvent, Comment, Site, User, utcnow
from .rules import Status

ACTIONS = {"approve": Status.APPROVED, "reject": Status.REJECTED, "flag": Status.FLAGGED}
DUPLICATE = "Duplicate comment detected; it looks as though you've already said that!"


class Refused(Exception):
    """A request that is turned away, with a message for the person who made it."""

    def __init__(self, status_code: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field


class Conflict(Exception):
    """A decision on a comment that someone else changed since the moderator saw it."""


@dataclass
class Submission:
    url: str
    title: str
    name: str
    email: str
    body: str
    website: str = ""
    parent_id: int | None = None
    ip: str | None = None
    user_agent: str = ""
    author_token: str | None = None


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def site_by_key(key: str | None) -> Site | None:
    if not key or len(key) > 32 or not (key.isascii() and key.isalnum()):
        return None
    return db.session.scalar(sa.select(Site).where(Site.key == key))


def article_for(site: Site, url: str) -> Article | None:
    return db.session.scalar(sa.select(Article).where(Article.site_id == site.id, Article.url == url))


def approved_comments(article: Article) -> sa.Select:
    """The public thread: approved comments, oldest first."""
    return (sa.select(Comment)
            .where(Comment.article_id == article.id, Comment.status == Status.APPROVED)
            .order_by(Comment.id))


def is_clean_url(url: str) -> bool:
    """No control characters, spaces or lone surrogates, and a sane length."""
    return 0 < len(url) <= 2000 and all(32 < ord(ch) < 0xD800 or 0xDFFF < ord(ch) for ch in url)


def check_article_url(site: Site, url: str) -> None:
    """An article must live on one of the site's allowed origins."""
    if not is_clean_url(url):
        raise Refused(400, "The article address is not a valid URL.", "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refused(400, "The article address must be an absolute http(s) URL.", "url")
    if origin_of(url) not in site.allowed_origins:
        raise Refused(403, f"This site does not accept comments for pages on {origin_of(url)}.")


def get_or_create_article(site: Site, url: str, title: str) -> Article:
    article = article_for(site, url)
    if article is None:
        try:
            with db.session.begin_nested():
                article = Article(site_id=site.id, url=url, title=title.strip()[:300])
                db.session.add(article)
        except IntegrityError:  # another request created it a moment ago
            article = article_for(site, url)
    elif title and not article.title:
        article.title = title.strip()[:300]
    return article


def is_known_author(site: Site, author_key: str | None) -> bool:
    if not author_key:
        return False
    return db.session.scalar(
        sa.select(sa.exists().where(Comment.site_id == site.id, Comment.author_key == author_key,
                                    Comment.status == Status.APPROVED))) or False


def seconds_since_last_from(site: Site, ip: str | None) -> float | None:
    if not ip:
        return None
    last = db.session.scalar(sa.select(sa.func.max(Comment.created_at))
                             .where(Comment.site_id == site.id, Comment.ip == ip))
    return (utcnow() - last).total_seconds() if last else None


def is_duplicate(article: Article, submission: Submission) -> bool:
    return db.session.scalar(sa.select(sa.exists().where(
        Comment.article_id == article.id, Comment.author_email == submission.email,
        Comment.parent_id == submission.parent_id if submission.parent_id else Comment.parent_id.is_(None),
        Comment.body == submission.body))) or False


def check_parent(article: Article | None, parent_id: int | None) -> None:
    if parent_id is None:
        return
    parent = db.session.get(Comment, parent_id)
    if (article is None or parent is None or parent.article_id != article.id
            or parent.status != Status.APPROVED):
        raise Refused(400, "You can only reply to a published comment on this article.", "parent_id")


def submit(site: Site, submission: Submission) -> tuple[Comment, str]:
    """Take a reader's comment: refuse it, or store it with the rules' decision and reasons.
    Returns the comment and the author token for the reader's browser."""
    check_article_url(site, submission.url)
    existing = article_for(site, submission.url)
    check_parent(existing, submission.parent_id)
    body_html = sanitize.render(submission.body)
    author_key = tokens.author_key_from(submission.author_token)
    draft = rules.Draft(text=sanitize.plain_text(body_html), links=sanitize.count_links(body_html),
                        name=submission.name, email=submission.email, website=submission.website)
    facts = rules.Facts(
        known_author=is_known_author(site, author_key),
        seconds_since_last_from_ip=seconds_since_last_from(site, submission.ip),
        article_age_days=(utcnow() - existing.created_at).total_seconds() / 86400 if existing else None,
        article_closed=existing.closed if existing else False,
    )
    refusal = rules.refuse(draft, site.rules, facts)
    if refusal:
        raise Refused(refusal.status_code, refusal.message, refusal.field)
    if existing and is_duplicate(existing, submission):
        raise Refused(409, DUPLICATE)
    decision = rules.decide(draft, site.rules, facts)
    if author_key is None:
        author_key, author_token = tokens.new_author_token()
    else:
        author_token = submission.author_token
    article = existing or get_or_create_article(site, submission.url, submission.title)
    comment = Comment(
        site_id=site.id, article_id=article.id, parent_id=submission.parent_id,
        author_name=submission.name, author_email=submission.email, author_website=submission.website,
        author_key=author_key, body=submission.body, body_html=body_html,
        sanitizer_version=sanitize.SANITIZER_VERSION, status=decision.status,
        reasons=list(decision.reasons), ip=submission.ip, user_agent=submission.user_agent[:400],
    )
    if decision.status != Status.PENDING:
        comment.decided_at = utcnow()
    db.session.add(comment)
    db.session.flush()
    return comment, author_token


def visible_to(user: User) -> sa.ColumnElement[bool]:
    """The comments a user may see: every site for admins, their own sites for moderators."""
    site_ids = user.site_ids()
    return sa.true() if site_ids is None else Comment.site_id.in_(site_ids)


def queue(user: User, status: Status, before: int | None = None) -> sa.Select:
    """One status's comments, newest first, for keyset pagination on the id."""
    query = sa.select(Comment).where(visible_to(user), Comment.status == status)
    if before:
        query = query.where(Comment.id < before)
    return query.order_by(Comment.id.desc())


def counts(user: User) -> dict[Status, int]:
    rows = db.session.execute(sa.select(Comment.status, sa.func.count())
                              .where(visible_to(user)).group_by(Comment.status))
    found = {status: count for status, count in rows}
    return {status: found.get(status, 0) for status in Status}


def comment_for(user: User, comment_id: int) -> Comment | None:
    return db.session.scalar(sa.select(Comment).where(Comment.id == comment_id, visible_to(user)))


def moderate(user: User, comment: Comment, action: str, seen_version: int) -> Comment:
    """Apply approve / reject / flag if the comment is still as the moderator saw it,
    and write the decision to the audit log in the same transaction."""
    to_status = ACTIONS[action]
    from_status = comment.status
    now = utcnow()
    result = db.session.execute(
        sa.update(Comment)
        .where(Comment.id == comment.id, Comment.version == seen_version)
        .values(status=to_status, version=Comment.version + 1, decided_at=now, decided_by_id=user.id)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(comment)
        raise Conflict(describe_change(comment))
    db.session.add(AuditEvent(site_id=comment.site_id, comment_id=comment.id, user_id=user.id,
                              actor=user.email, action=action, from_status=from_status,
                              to_status=to_status, created_at=now))
    db.session.refresh(comment)
    return comment


def describe_change(comment: Comment) -> str:
    who = comment.decided_by.email if comment.decided_by else "someone else"
    when = ago(comment.decided_at) if comment.decided_at else "just now"
    return (f"Comment {comment.id} was already {comment.status.value} by {who} {when}; "
            "your decision was not applied.")


def ago(moment: datetime) -> str:
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' if seconds >= 120 else ''} ago"
    if seconds < 86400:
        return f"{seconds // 3600} hour{'s' if seconds >= 7200 else ''} ago"
    return f"{seconds // 86400} day{'s' if seconds >= 172800 else ''} ago"
