"""What happens to comments: submitting one, moderating one, and the queries behind the
thread and the queue. Gathers the facts the rules need; never commits (the view does)."""
import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm import aliased

from . import addresses, db_engine, notifications, rules, sanitize, search, tokens, webhooks
from .extensions import db
from .models import Article, AuditEvent, AuthorTrust, Ban, Comment, Site, User, VerifiedEmail, body_hash, utcnow
from .rules import Status

ACTIONS = {"approve": Status.APPROVED, "reject": Status.REJECTED, "flag": Status.FLAGGED}
RESERVED_NAMES = ("admin", "administrator", "moderator", "webmaster", "staff")
DUPLICATE = "Duplicate comment detected; it looks as though you've already said that!"
PUBLISH_LINKS_PER_HOUR = 3  # "Publish my comment" emails to one address and site, against mail bombing by typing it


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
    honeypot_filled: bool = False
    seconds_to_fill: float | None = None  # from the reply form's token; None from the API
    notify: bool = False  # "Notify me when my comment is approved or replied to"


@sa.event.listens_for(Comment, "load")
def rerender_outdated_html(comment: Comment, context) -> None:
    """HTML stored under an older sanitizer policy is rendered again before anyone sees it."""
    if comment.sanitizer_version != sanitize.SANITIZER_VERSION:
        set_committed_value(comment, "body_html", sanitize.render(comment.body))
        set_committed_value(comment, "sanitizer_version", sanitize.SANITIZER_VERSION)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_site_key(key: object) -> bool:
    return isinstance(key, str) and 0 < len(key) <= 32 and key.isascii() and key.isalnum()


# The lookups of every comment posted are built once, with bound parameters: building a
# statement costs about as much as running it. The checks of a new comment read outside the
# session (db_engine.read_rows), with no transaction to begin and end: a post's reads cost
# a tenth of what they cost through the ORM, and its write transaction reads again whatever
# a simultaneous post could change. Such reads see only what is committed: they come first
# in their request, before it writes anything.
SITE_BY_KEY = sa.select(Site).where(Site.key == sa.bindparam("key"))
ARTICLE_BY_URL = sa.select(Article).where(Article.site_id == sa.bindparam("site_id"), Article.url == sa.bindparam("url"))


def site_by_key(key: str | None, detached: bool = False) -> Site | None:
    """The site with this key. detached: read outside the session (db_engine.read_detached),
    for a request that only reads the site."""
    if not is_site_key(key):
        return None
    if detached:
        return next(iter(db_engine.read_detached(db.engine, SITE_BY_KEY, {"key": key})), None)
    return db.session.scalar(SITE_BY_KEY, {"key": key})


def article_for(site: Site, url: str, detached: bool = False) -> Article | None:
    params = {"site_id": site.id, "url": url}
    if detached:
        return next(iter(db_engine.read_detached(db.engine, ARTICLE_BY_URL, params)), None)
    return db.session.scalar(ARTICLE_BY_URL, params)


def top_level_comments(article_id: int, after: int | None = None) -> sa.Select:
    """The ids of a thread's top-level comments, oldest first: a page of the thread is a
    slice of these with their replies. A reply whose parent is hidden counts as top-level."""
    parent = aliased(Comment)
    query = (sa.select(Comment.id)
             .outerjoin(parent, sa.and_(parent.id == Comment.parent_id, parent.status == Status.APPROVED))
             .where(Comment.article_id == article_id, Comment.status == Status.APPROVED, parent.id.is_(None)))
    if after:
        query = query.where(Comment.id > after)
    return query.order_by(Comment.id)


def with_replies(root_ids: list[int]) -> sa.Select:
    """These comments and every approved reply below them, oldest first."""
    tree = sa.select(Comment.id).where(Comment.id.in_(root_ids)).cte("tree", recursive=True)
    tree = tree.union_all(sa.select(Comment.id).where(Comment.parent_id == tree.c.id,
                                                      Comment.status == Status.APPROVED))
    return sa.select(Comment).where(Comment.id.in_(sa.select(tree.c.id))).order_by(Comment.id)


def approved_count(article_id: int) -> sa.Select:
    return sa.select(sa.func.count()).where(Comment.article_id == article_id, Comment.status == Status.APPROVED)


def bump_thread(article_id: int) -> None:
    """What the public sees of this thread changed: a new version, so every app server's
    cached copy of it is stale from this commit on."""
    db.session.execute(sa.update(Article).where(Article.id == article_id)
                       .values(thread_version=Article.thread_version + 1, thread_changed_at=utcnow())
                       .execution_options(synchronize_session=False))


CLEAN_URL = re.compile("[\x21-\ud7ff\ue000-\U0010ffff]{1,2000}")


def is_clean_url(url: str) -> bool:
    """No control characters, spaces or lone surrogates, and a sane length."""
    return CLEAN_URL.fullmatch(url) is not None


def check_article_url(site: Site, url: str) -> None:
    """An article must live on one of the site's allowed origins."""
    if not is_clean_url(url):
        raise Refused(400, "The article address is not a valid URL.", "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refused(400, "The article address must be an absolute http(s) URL.", "url")
    if origin_of(url) not in site.allowed_origins:
        raise Refused(403, f"This site does not accept comments for pages on {origin_of(url)}.")


def get_or_create_article(site: Site, url: str, title: str, found: Article | None = None) -> Article:
    """The site's article at this url, created if it has none. `found`: the article as read before
    this transaction (articles go only with their site), used instead of read again, and attached
    to the session only to be changed."""
    article = found if found is not None else article_for(site, url)
    if article is None:
        try:
            with db.session.begin_nested():
                article = Article(site_id=site.id, url=url, title=title.strip()[:300])
                db.session.add(article)
        except IntegrityError:  # another request created it a moment ago
            article = article_for(site, url)
    elif title and not article.title:
        db.session.add(article)
        article.title = title.strip()[:300]
    return article


KNOWN_AUTHOR = sa.select(sa.exists().where(Comment.site_id == sa.bindparam("site_id"),
                                           Comment.author_key == sa.bindparam("author_key"),
                                           Comment.status == Status.APPROVED))


def is_known_author(site: Site, author_key: str | None) -> bool:
    if not author_key:
        return False
    return db_engine.read_value(db.engine, KNOWN_AUTHOR, {"site_id": site.id, "author_key": author_key}) or False


def _last_comment(same_author: sa.ColumnElement[bool]) -> sa.Select:
    return sa.select(sa.func.max(Comment.created_at)).where(Comment.site_id == sa.bindparam("site_id"), same_author)


LAST_FROM_IP = _last_comment(Comment.ip == sa.bindparam("ip"))
LAST_FROM_IPV6_PREFIX = _last_comment(Comment.ip.like(sa.bindparam("prefix")))
LAST_BY_EMAIL = _last_comment(Comment.author_email == sa.bindparam("email"))


def seconds_since_last_from(site: Site, ip: str | None) -> float | None:
    """Since the site's last comment from this client: this IPv4 address, or this IPv6 /64."""
    if not ip:
        return None
    prefix = addresses.ipv6_prefix(ip)
    last = db.session.scalar(LAST_FROM_IPV6_PREFIX if prefix else LAST_FROM_IP,
                             {"site_id": site.id, "ip": ip, "prefix": f"{prefix}%"})
    return (utcnow() - last).total_seconds() if last else None


def seconds_since_last_by_email(site: Site, email: str) -> float | None:
    last = db.session.scalar(LAST_BY_EMAIL, {"site_id": site.id, "email": email})
    return (utcnow() - last).total_seconds() if last else None


def flood_facts(site: Site, submission: Submission) -> dict[str, float | None]:
    """Seconds since the last comment from this IP address and from this email, for the flood
    limit; nothing to look up when the site has none."""
    if not rules.with_defaults(site.rules)["flood_seconds"]:
        return {}
    return {"seconds_since_last_from_ip": seconds_since_last_from(site, submission.ip),
            "seconds_since_last_from_email": seconds_since_last_by_email(site, submission.email)}


OTHER_ARTICLES_WITH_TEXT = (
    sa.select(sa.func.count(sa.distinct(Comment.article_id)))
    .where(Comment.site_id == sa.bindparam("site_id"), Comment.body_hash == sa.bindparam("body_hash"),
           Comment.created_at >= sa.bindparam("since"), Comment.body == sa.bindparam("body"),
           Comment.article_id != sa.bindparam("article_id")))


def articles_with_text(site: Site, article: Article, body: str) -> int:
    """How many articles of the site got this same text within a day, the one it is posted to included."""
    others = db_engine.read_value(db.session, OTHER_ARTICLES_WITH_TEXT, {
        "site_id": site.id, "body_hash": body_hash(body), "since": utcnow() - timedelta(days=1), "body": body,
        "article_id": article.id})
    return (others or 0) + 1


def _trust_marks(by_token: bool) -> sa.Select:
    untrusted_email = sa.and_(AuthorTrust.email == sa.bindparam("email"), AuthorTrust.trusted.is_(False))
    marks = sa.or_(AuthorTrust.author_key == sa.bindparam("author_key"), untrusted_email) if by_token else untrusted_email
    return sa.select(AuthorTrust.trusted).where(AuthorTrust.site_id == sa.bindparam("site_id"), marks)


TRUST_MARKS_BY_TOKEN, TRUST_MARKS_BY_EMAIL = _trust_marks(by_token=True), _trust_marks(by_token=False)


def author_trust(site: Site, author_key: str | None, email: str) -> bool | None:
    """A moderator's mark on this author: False if marked untrusted (by token or email), True if
    trusted (by token only: a typed email proves nothing), None if not marked."""
    found = {trusted for trusted, in db_engine.read_rows(
        db.engine, TRUST_MARKS_BY_TOKEN if author_key else TRUST_MARKS_BY_EMAIL,
        {"site_id": site.id, "author_key": author_key, "email": email.lower()})}
    return False if False in found else (True if found else None)


PARENT_OF = sa.select(Comment.parent_id).where(Comment.id == sa.bindparam("id"))


def flattened_parent(parent_id: int | None, max_depth: int) -> int | None:
    """The comment a reply hangs under: its parent, or, where that would nest deeper than max_depth,
    the parent's ancestor at max_depth - 1, so the reply sits at the deepest level allowed."""
    ancestors = []  # parent_id, its parent, ... up to the top-level comment (depth 0)
    current = parent_id
    while current is not None and len(ancestors) <= 100:
        ancestors.append(current)
        current = db_engine.read_value(db.engine, PARENT_OF, {"id": current})
    depth = len(ancestors)  # of the reply
    return parent_id if depth <= max_depth else ancestors[depth - max_depth]


ACTIVE_BANS = (sa.select(Ban.kind, Ban.value, Ban.until)
               .where(Ban.site_id == sa.bindparam("site_id"), Ban.until > sa.bindparam("now")))


def banned_until(site: Site, email: str, ip: str | None) -> str | None:
    """When the latest ban covering this email or IP ends ("2026-12-06 19:00 UTC"), if one does."""
    try:
        address = ipaddress.ip_address(ip) if ip else None
    except ValueError:  # an imported comment's odd IP field
        address = None
    ends = [until for kind, value, until in db_engine.read_rows(db.engine, ACTIVE_BANS, {"site_id": site.id, "now": utcnow()})
            if (kind == "email" and value == email.lower())
            or (kind == "ip" and address is not None and address in ipaddress.ip_network(value))]
    return f"{max(ends):%Y-%m-%d %H:%M} UTC" if ends else None


def _same_comment(reply: bool) -> sa.Select:
    return sa.select(sa.exists().where(
        Comment.site_id == sa.bindparam("site_id"), Comment.body_hash == sa.bindparam("body_hash"),
        Comment.article_id == sa.bindparam("article_id"), Comment.author_email == sa.bindparam("email"),
        Comment.parent_id == sa.bindparam("parent_id") if reply else Comment.parent_id.is_(None),
        Comment.body == sa.bindparam("body")))


SAME_REPLY, SAME_COMMENT = _same_comment(reply=True), _same_comment(reply=False)


def is_duplicate(article: Article, submission: Submission) -> bool:
    return db_engine.read_value(db.session, SAME_REPLY if submission.parent_id else SAME_COMMENT, {
        "site_id": article.site_id, "body_hash": body_hash(submission.body), "article_id": article.id,
        "email": submission.email, "parent_id": submission.parent_id, "body": submission.body}) or False


COMMENT_PLACE = sa.select(Comment.article_id, Comment.status).where(Comment.id == sa.bindparam("id"))


def check_parent(article: Article | None, parent_id: int | None) -> None:
    if parent_id is None:
        return
    found = db_engine.read_rows(db.engine, COMMENT_PLACE, {"id": parent_id})
    if article is None or found != [(article.id, Status.APPROVED)]:
        raise Refused(400, "You can only reply to a published comment on this article.", "parent_id")


def is_reserved_name(site: Site, name: str) -> bool:
    """A name that passes for the site's staff, compared on a skeleton (NFKC, case, accents,
    invisible characters and look-alike letters folded): "Аdmin" with a Cyrillic A is "admin"."""
    return bool(rules.find_words(name, [*RESERVED_NAMES, site.name]))


EMAIL_PROVED = sa.select(sa.exists().where(
    VerifiedEmail.site_id == sa.bindparam("site_id"), VerifiedEmail.email == sa.bindparam("email"),
    VerifiedEmail.verified_at.is_not(None), VerifiedEmail.mail_stopped.is_(False)))
PUBLISH_LINKS_SENT = sa.select(sa.func.count()).where(
    notifications.OutboxMessage.site_id == sa.bindparam("site_id"),
    notifications.OutboxMessage.recipient == sa.bindparam("email"),
    notifications.OutboxMessage.dedupe_key.startswith("publish:"),
    notifications.OutboxMessage.created_at >= sa.bindparam("since"))


def may_mail_publish_link(site: Site, email: str) -> bool:
    """Whether this email was proved by its owner on this site (a confirmation link) and may be mailed a
    "Publish my comment" link now: its owner did not unsubscribe, and not too many links went out this hour."""
    params = {"site_id": site.id, "email": email.strip().lower(), "since": utcnow() - timedelta(hours=1)}
    if not db_engine.read_value(db.engine, EMAIL_PROVED, params):
        return False
    return db_engine.read_value(db.engine, PUBLISH_LINKS_SENT, params) < PUBLISH_LINKS_PER_HOUR


@dataclass
class Checked:
    """A comment that passed the checks: what storing it needs."""
    body_html: str
    author_key: str
    author_token: str  # the reader's, or a new one for a browser we have not seen
    article: Article | None  # None until its first comment is stored
    draft: rules.Draft
    facts: rules.Facts  # all but those store() looks up


def submit(site: Site, submission: Submission) -> tuple[Comment, str]:
    """Take a reader's comment: refuse it, or store it with the rules' decision and reasons.
    Returns the comment and the author token for the reader's browser.

    The checks, the sanitizer and the rules run first and only read; the writes follow in
    their own short transaction (on SQLite, the database's one write lock is held only there;
    see db_engine.read_first). The facts that a simultaneous post can change (the flood limit,
    the repeated text, a duplicate) are looked up once, in the write transaction."""
    checked = check(site, submission)
    db_engine.start_writing()
    return store(site, submission, checked)


def check(site: Site, submission: Submission) -> Checked:
    check_article_url(site, submission.url)
    existing = article_for(site, submission.url, detached=True)
    check_parent(existing, submission.parent_id)
    site_rules = rules.with_defaults(site.rules)
    submission.parent_id = flattened_parent(submission.parent_id, site_rules["max_depth"])
    if is_reserved_name(site, submission.name):
        raise Refused(400, "This name is reserved for the site's staff; please choose another.", "name")
    body_html = sanitize.render(submission.body)
    author_key = tokens.author_key_from(submission.author_token)
    text, links = sanitize.text_and_links(body_html)
    draft = rules.Draft(text=text, links=links, name=submission.name, email=submission.email,
                        website=submission.website, ip=submission.ip or "")
    known, trusted = is_known_author(site, author_key), author_trust(site, author_key, submission.email)
    facts = rules.Facts(
        known_author=known,
        honeypot_filled=submission.honeypot_filled,
        seconds_to_fill=submission.seconds_to_fill,
        author_trusted=trusted,
        article_age_days=(utcnow() - existing.created_at).total_seconds() / 86400 if existing else None,
        article_closed=existing.closed if existing else False,
        banned_until=banned_until(site, submission.email, submission.ip),
        # Only a new browser needs the emailed proof: a known or trusted author is published without it.
        email_verified=(site_rules["moderation_mode"] == "known_authors" and not known and trusted is not True
                        and may_mail_publish_link(site, submission.email)),
    )
    refusal = rules.refuse(draft, site.rules, facts)  # closed, banned, too long...: before any lock
    if refusal:
        raise Refused(refusal.status_code, refusal.message, refusal.field)
    if author_key is None:  # signed here rather than under the write lock
        author_key, author_token = tokens.new_author_token()
    else:
        author_token = submission.author_token
    return Checked(body_html, author_key, author_token, existing, draft, facts)


def store(site: Site, submission: Submission, checked: Checked) -> tuple[Comment, str]:
    """Write a checked comment. The facts that the reader's own posts of the same moment can
    change are looked up first, inside the write transaction, so that two posts at once cannot
    both slip under the flood limit, the duplicate check or the repeated-text count."""
    article = get_or_create_article(site, submission.url, submission.title, checked.article)
    facts = replace(checked.facts, repeated_on_articles=articles_with_text(site, article, submission.body),
                    **flood_facts(site, submission))
    if refusal := rules.refuse(checked.draft, site.rules, facts):
        raise Refused(refusal.status_code, refusal.message, refusal.field)
    if is_duplicate(article, submission):
        raise Refused(409, DUPLICATE)
    decision = rules.decide(checked.draft, site.rules, facts)
    comment = db_engine.insert_detached(db.session, Comment, dict(
        site_id=site.id, article_id=article.id, parent_id=submission.parent_id,
        author_name=submission.name, author_email=submission.email, author_website=submission.website,
        author_key=checked.author_key, body=submission.body, body_html=checked.body_html,
        sanitizer_version=sanitize.SANITIZER_VERSION, status=decision.status,
        reasons=list(decision.reasons), ip=submission.ip, user_agent=submission.user_agent[:400],
        notify=submission.notify, decided_at=None if decision.status == Status.PENDING else utcnow(),
    ), site=site, article=article)  # what the mails and webhooks below read of it
    search.index_if_due(comment.id)
    if comment.status == Status.APPROVED:
        bump_thread(article.id)
    notifications.comment_submitted(comment, decision.publish_by_email_link)
    webhooks.enqueue(comment, "comment.created")
    return comment, checked.author_token


def visible_to(user: User) -> sa.ColumnElement[bool]:
    """The comments a user may see: every site for admins, their own sites for moderators."""
    site_ids = user.site_ids()
    return sa.true() if site_ids is None else Comment.site_id.in_(site_ids)


def comment_for(user: User, comment_id: int) -> Comment | None:
    return db.session.scalar(sa.select(Comment).where(Comment.id == comment_id, visible_to(user)))


def moderate(user: User, comment: Comment, action: str, seen_version: int, detail: dict | None = None) -> Comment:
    """Apply approve / reject / flag if the comment is still as the moderator saw it, and write
    the decision (with any reason or note in detail) to the audit log in the same transaction."""
    to_status = ACTIONS[action]
    from_status = comment.status
    now = utcnow()
    result = db.session.execute(
        sa.update(Comment)
        .where(Comment.id == comment.id, Comment.version == seen_version)
        .values(status=to_status, version=Comment.version + 1, decided_at=now, decided_by_id=user.id, reports=0)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(comment)
        raise Conflict(describe_change(comment))
    db.session.add(AuditEvent(site_id=comment.site_id, comment_id=comment.id, user_id=user.id,
                              actor=user.email, action=action, from_status=from_status,
                              to_status=to_status, detail=detail or {}, created_at=now))
    if Status.APPROVED in (from_status, to_status):
        bump_thread(comment.article_id)
    db.session.refresh(comment)
    if to_status == Status.APPROVED:
        notifications.comment_approved(comment)
    if to_status in (Status.APPROVED, Status.REJECTED):
        webhooks.enqueue(comment, f"comment.{to_status.value}")
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


EMAIL_CONFIRMED = "approved: author confirmed by email"


def publish_by_email(comment: Comment, seen_version: int) -> Comment:
    """The author opened the "Publish my comment" link mailed to their verified address and confirmed: owning the
    mailbox proves who they are, so the comment is published, if it is still waiting as they saw it."""
    now = utcnow()
    result = db.session.execute(
        sa.update(Comment)
        .where(Comment.id == comment.id, Comment.version == seen_version, Comment.status == Status.PENDING)
        .values(status=Status.APPROVED, version=Comment.version + 1, decided_at=now, decided_by_id=None,
                reasons=[*comment.reasons, EMAIL_CONFIRMED])
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(comment)
        raise Conflict(f"Your comment is already {comment.status.value}; nothing was changed."
                       if comment.status != Status.PENDING else
                       "Your comment changed since the page was shown; nothing was published. Open the link again.")
    db.session.add(AuditEvent(site_id=comment.site_id, comment_id=comment.id, actor="author", action="approve",
                              from_status=Status.PENDING, to_status=Status.APPROVED,
                              detail={"reason": EMAIL_CONFIRMED}, created_at=now))
    bump_thread(comment.article_id)
    db.session.refresh(comment)
    notifications.comment_approved(comment)
    webhooks.enqueue(comment, "comment.approved")
    return comment
