"""The data model: sites, articles, comments, users and the audit log."""
import hashlib
import secrets
import string
from datetime import datetime, timezone
from enum import StrEnum

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .rules import Status, validate_rules

KEY_ALPHABET = string.ascii_lowercase + string.digits


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_site_key() -> str:
    """Twelve letters and digits, starting with a letter so it never reads as an option."""
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(KEY_ALPHABET) for _ in range(11))


def enum_of(values: type[StrEnum]) -> sa.Enum:
    """A portable enum column that stores the readable values ("pending"), not the names."""
    return sa.Enum(values, native_enum=False, length=16, values_callable=lambda kind: [m.value for m in kind])


class Role(StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"


moderator_sites = sa.Table(
    "moderator_sites",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("site_id", sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class Site(db.Model):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_site_key)
    name: Mapped[str] = mapped_column(sa.String(200))
    rules: Mapped[dict] = mapped_column(sa.JSON, default=lambda: validate_rules({}))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def allowed_origins(self) -> list[str]:
        return self.rules.get("allowed_origins", [])


class Article(db.Model):
    __tablename__ = "articles"
    __table_args__ = (sa.UniqueConstraint("site_id", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.String(2000))
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    closed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped whenever what the public sees of the thread changes: the key of its cached pages.
    thread_version: Mapped[int] = mapped_column(default=1, server_default="1")
    thread_changed_at: Mapped[datetime | None]

    site: Mapped[Site] = relationship()


class Comment(db.Model):
    __tablename__ = "comments"
    __table_args__ = (
        sa.Index("ix_comments_queue", "site_id", "status", "id"),
        sa.Index("ix_comments_thread", "article_id", "status", "id"),
        sa.Index("ix_comments_site_ip", "site_id", "ip", "created_at"),
        sa.Index("ix_comments_site_ip_status", "site_id", "ip", "status"),  # authors' records by IP
        sa.Index("ix_comments_author_key", "site_id", "author_key", "status"),
        sa.Index("ix_comments_parent", "parent_id"),
        sa.Index("ix_comments_site_email", "site_id", "author_email", "status"),
        # Partial: a new comment is seldom reported or imported, and enters neither index. A query
        # can use one only where its own condition implies the index's (reports > 0; import_ref = ...).
        sa.Index("ix_comments_reported", "site_id", "reports",
                 sqlite_where=sa.text("reports > 0"), postgresql_where=sa.text("reports > 0")),
        sa.Index("ux_comments_import_ref", "site_id", "import_ref", unique=True,
                 sqlite_where=sa.text("import_ref IS NOT NULL"), postgresql_where=sa.text("import_ref IS NOT NULL")),
        sa.Index("ix_comments_email", "author_email"),
        sa.Index("ix_comments_created", "created_at"),
        sa.Index("ix_comments_body_hash", "site_id", "body_hash", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("articles.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("comments.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(sa.String(100))
    author_email: Mapped[str] = mapped_column(sa.String(254))
    author_website: Mapped[str] = mapped_column(sa.String(200), default="")
    # The random id inside the signed author token that the reader's browser keeps.
    author_key: Mapped[str | None] = mapped_column(sa.String(64))
    body: Mapped[str] = mapped_column(sa.Text)
    # body_hash(body), kept with the body on every write (keep_body_hash), so that comparing texts
    # (duplicates, the same text on several articles) reads only the comments with this hash.
    body_hash: Mapped[str | None] = mapped_column(
        sa.String(32), default=lambda context: body_hash(context.get_current_parameters()["body"]))
    body_html: Mapped[str] = mapped_column(sa.Text)
    sanitizer_version: Mapped[int] = mapped_column(default=1)
    status: Mapped[Status] = mapped_column(enum_of(Status), default=Status.PENDING)
    reasons: Mapped[list] = mapped_column(sa.JSON, default=list)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(400), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # Bumped by every change, so a decision applies only to the state the moderator saw.
    version: Mapped[int] = mapped_column(default=1)
    # Open reader reports since the last moderator decision; puts the comment in the Reported queue.
    reports: Mapped[int] = mapped_column(default=0, server_default="0")
    # Where an imported comment came from ("wordpress:blog.example:123"), so a second import adds nothing.
    import_ref: Mapped[str | None] = mapped_column(sa.String(200))
    # The reader ticked "Notify me when my comment is approved or replied to".
    notify: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    site: Mapped[Site] = relationship()
    article: Mapped[Article] = relationship()
    parent: Mapped["Comment | None"] = relationship(remote_side=[id])
    decided_by: Mapped["User | None"] = relationship()


def body_hash(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


@sa.event.listens_for(Comment.body, "set")
def keep_body_hash(comment: Comment, body: str, old, initiator) -> None:
    comment.body_hash = body_hash(body)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[Role] = mapped_column(enum_of(Role), default=Role.MODERATOR)
    # A moderator created without --site moderates every site, including sites added later.
    all_sites: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    # Part of the login session's id: changing it ends every session of this user.
    session_token: Mapped[str] = mapped_column(sa.String(64), default=lambda: secrets.token_hex(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sites: Mapped[list[Site]] = relationship(secondary=moderator_sites)

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def site_ids(self) -> list[int] | None:
        """The ids of the sites this user may see; None means every site."""
        if self.is_admin or self.all_sites:
            return None
        return [site.id for site in self.sites]


class AuditEvent(db.Model):
    """One row per moderation decision or rules change; written in the same transaction."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_site_time", "site_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("comments.id", ondelete="SET NULL"), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # The actor's email at the time, kept even if the user is later removed.
    actor: Mapped[str] = mapped_column(sa.String(254), default="")
    action: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str | None] = mapped_column(sa.String(16))
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthorTrust(db.Model):
    """A moderator's mark on an author of a site: trusted (by author token only, which cannot be typed)
    or untrusted (by author token or by email, as a typed email can only make things stricter)."""

    __tablename__ = "author_trust"
    __table_args__ = (sa.Index("ix_author_trust_key", "site_id", "author_key"),
                      sa.Index("ix_author_trust_email", "site_id", "email"))

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    author_key: Mapped[str | None] = mapped_column(sa.String(64))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    # The name the author used when marked, so the settings page can say who this is.
    author_name: Mapped[str] = mapped_column(sa.String(100), default="")
    trusted: Mapped[bool]
    marked_by: Mapped[str] = mapped_column(sa.String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Report(db.Model):
    """A reader's report of a published comment; one per reader (author key or IP) and comment."""

    __tablename__ = "reports"
    __table_args__ = (sa.UniqueConstraint("comment_id", "reader"), sa.Index("ix_reports_reader_time", "reader", "created_at"),
                      sa.Index("ux_reports_nonce", "nonce", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(sa.ForeignKey("comments.id", ondelete="CASCADE"))
    reader: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.String(16))
    text: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")
    # The nonce of the signed report form it came with: a form sends one report.
    nonce: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ban(db.Model):
    """An author banned from a site until a moment: by email, by IP, or by an IP range (CIDR)."""

    __tablename__ = "bans"
    __table_args__ = (sa.Index("ix_bans_site_until", "site_id", "until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(8))  # "email" or "ip" (a single address or a CIDR range)
    value: Mapped[str] = mapped_column(sa.String(254))
    until: Mapped[datetime]
    note: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Claim(db.Model):
    """Which moderator has a comment open, and since when; shown to others as "being reviewed by"."""

    __tablename__ = "claims"

    comment_id: Mapped[int] = mapped_column(sa.ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class UsedFormToken(db.Model):
    """The nonce of a reply form that has posted a comment: a form token is good for one comment."""

    __tablename__ = "used_form_tokens"

    nonce: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    comment_id: Mapped[int] = mapped_column(sa.ForeignKey("comments.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginThrottle(db.Model):
    """Failed logins per account ("email:...") and per address ("ip:..."), for backoff."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    blocked_until: Mapped[datetime | None]


class VerifiedEmail(db.Model):
    """A reader's email address on one site, once it was sent its one confirmation link (after a comment of theirs
    was approved), and whether its owner confirmed it: proof of identity that typing the address cannot fake."""

    __tablename__ = "verified_emails"
    __table_args__ = (sa.UniqueConstraint("site_id", "email"), sa.Index("ix_verified_emails_email", "email"))

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(254))  # in lower case
    link_sent_at: Mapped[datetime | None]  # when the confirmation link was queued
    verified_at: Mapped[datetime | None]  # when its owner confirmed it; None: not (yet) proved
    # Its owner unsubscribed: no more links are mailed to it, and comments from a new browser wait for a moderator.
    mail_stopped: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship()
