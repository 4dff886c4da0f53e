"""Moving comments in and out of a site: WordPress (WXR) and Disqus XML imports, streamed
element by element, all or nothing, and idempotent through each comment's source id
(Comment.import_ref); and our own JSON export of a site with its import.
Never commits: the caller commits, or rolls back when ImportFailed is raised."""
import ipaddress
import multiprocessing
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import urlsplit

import sqlalchemy as sa
from lxml import etree

from . import rules, sanitize, search
from .comments import bump_thread, is_clean_url
from .extensions import db
from .forms import clean_line, clean_text
from .models import Article, AuditEvent, Comment, Site, User, utcnow
from .rules import Status

BATCH = 1000
# Below this many comments the worker processes cost more than they save.
PARALLEL_FROM = 5000
WORDPRESS_NS = "{http://wordpress.org/export/"
DSQ_ID = "{http://disqus.com/disqus-internals}id"
WORDPRESS_STATUS = {"1": Status.APPROVED, "approve": Status.APPROVED, "0": Status.PENDING, "hold": Status.PENDING,
                    "spam": Status.REJECTED, "trash": Status.REJECTED, "post-trashed": Status.REJECTED}
WORDPRESS_TYPES = ("", "comment")  # pingbacks and trackbacks are not readers' comments
EXPORT_FORMAT = "moderation-site-export"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # categories Cc and Cs, but \t and \n
EXPORT_VERSION = 1


class ImportFailed(Exception):
    """A file we cannot import; str() names the line at fault when there is one."""

    def __init__(self, problem: str, line: int | None = None):
        super().__init__(f"line {line}: {problem}" if line else problem)


@dataclass(slots=True)
class Incoming:
    """One comment read from an export file, before it is stored."""

    ref: str
    parent_ref: str | None
    url: str
    title: str
    name: str
    email: str
    website: str
    ip: str | None
    body: str
    created_at: datetime
    status: Status
    line: int


@dataclass
class ImportReport:
    added: int = 0
    already_there: int = 0
    skipped: int = 0
    articles: int = 0
    orphans: int = 0
    foreign_origins: set[str] = field(default_factory=set)

    def lines(self) -> list[str]:
        out = [f"Imported {self.added} comment(s) on {self.articles} new article(s); "
               f"{self.already_there} were already here."]
        if self.skipped:
            out.append(f"Skipped {self.skipped} pingback(s) or trackback(s).")
        if self.orphans:
            out.append(f"{self.orphans} repl(ies) whose parent is not in the file are shown at the top level.")
        if self.foreign_origins:
            out.append("These origins are not among the site's allowed_origins, so the widget will not show "
                       "their comments until you add them: " + ", ".join(sorted(self.foreign_origins)))
        return out


# --- reading ------------------------------------------------------------------------


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def events(stream, tags: tuple[str, ...]) -> Iterator[etree._Element]:
    """Each element named in tags as it closes; never resolves external entities or touches the network."""
    parser = etree.iterparse(stream, events=("end",), tag=tags, resolve_entities=False, no_network=True,
                             remove_comments=True, remove_pis=True)
    try:
        for _, elem in parser:
            yield elem
    except etree.XMLSyntaxError as error:
        raise ImportFailed(f"the file is not well-formed XML ({error.msg})", error.lineno or None) from None


def forget(elem: etree._Element) -> None:
    """Drop what was read so far, so memory stays flat however large the file."""
    elem.clear(keep_tail=False)
    while elem.getprevious() is not None:
        del elem.getparent()[0]


def children(elem: etree._Element) -> dict[str, etree._Element]:
    return {local(child.tag): child for child in elem if isinstance(child.tag, str)}


def text(found: dict[str, etree._Element], name: str) -> str:
    child = found.get(name)
    return (child.text or "").strip() if child is not None else ""


def parse_time(value: str, what: str, line: int) -> datetime:
    """An ISO 8601 date ("2026-11-02 09:15:00", "2026-11-02T09:15:00Z") as naive UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except (ValueError, TypeError):
        raise ImportFailed(f"{what} has the date {str(value)[:40]!r}, which is not a date we can read", line) from None
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def clean_body(value: str) -> str:
    """forms.clean_text, quicker: a comment body without control characters or lone surrogates, NFC."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return CONTROL.sub("", unicodedata.normalize("NFC", value))


def clean_field(value: str) -> str:
    """forms.clean_line, quicker for the usual printable ASCII (which has nothing to normalise or drop)."""
    if value.isascii() and value.isprintable():
        return " ".join(value.split())
    return clean_line(value) or ""


@lru_cache(maxsize=4096)  # readers who comment often repeat their website and address
def clean_website(value: str) -> str:
    value = clean_field(value)
    parts = urlsplit(value)
    return value[:200] if parts.scheme.lower() in ("http", "https") and parts.hostname else ""


@lru_cache(maxsize=4096)
def clean_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def wordpress(stream) -> Iterator[Incoming | None]:
    """The comments of a WordPress export (WXR 1.0 to 1.2), in file order; None for each
    pingback or trackback, which is skipped."""
    blog = link = title = ""
    for elem in events(stream, ("{*}item", "{*}comment", "link", "title", "{*}base_blog_url")):
        parent = elem.getparent()
        if parent is None:
            continue
        name, container = local(elem.tag), local(parent.tag)
        if container == "channel" and name in ("base_blog_url", "link") and not blog:
            blog = urlsplit((elem.text or "").strip()).netloc or (elem.text or "").strip()
        elif container == "item" and name in ("link", "title"):
            if name == "link":
                link = (elem.text or "").strip()
            else:
                title = (elem.text or "").strip()
        elif name == "comment" and container == "item" and elem.tag.startswith(WORDPRESS_NS):
            found = children(elem)
            comment_type = text(found, "comment_type")
            if comment_type not in WORDPRESS_TYPES:
                yield None
            else:
                yield wordpress_comment(found, blog, link, title, elem.sourceline)
            forget(elem)
        elif name == "item":
            link = title = ""
            forget(elem)


def wordpress_comment(found: dict, blog: str, link: str, title: str, line: int) -> Incoming:
    comment_id = text(found, "comment_id")
    if not comment_id.isdigit():
        raise ImportFailed("a <wp:comment> without a numeric <wp:comment_id>", line)
    what = f"comment {comment_id}"
    if not link:
        raise ImportFailed(f"{what} belongs to an <item> without a <link> before it", line)
    approved = text(found, "comment_approved")
    if approved not in WORDPRESS_STATUS:
        raise ImportFailed(f"{what} has <wp:comment_approved> {approved!r}; expected 1, 0, spam or trash", line)
    stamp = text(found, "comment_date_gmt")
    if not stamp or stamp.startswith("0000"):
        stamp = text(found, "comment_date")
    parent = text(found, "comment_parent")
    return Incoming(
        ref=f"wordpress:{blog}:{comment_id}", parent_ref=f"wordpress:{blog}:{parent}" if parent not in ("", "0") else None,
        url=link, title=title, name=text(found, "comment_author"), email=text(found, "comment_author_email"),
        website=text(found, "comment_author_url"), ip=clean_ip(text(found, "comment_author_IP")),
        body=text(found, "comment_content"), status=WORDPRESS_STATUS[approved], line=line,
        created_at=parse_time(stamp, what, line))


def disqus(stream) -> Iterator[Incoming]:
    """The posts of a Disqus XML export; threads come before the posts that belong to them."""
    threads: dict[str, tuple[str, str]] = {}
    for elem in events(stream, ("{*}category", "{*}thread", "{*}post")):
        parent = elem.getparent()
        if parent is None or local(parent.tag) != "disqus":
            continue
        name = local(elem.tag)
        if name == "thread":
            found = children(elem)
            threads[elem.get(DSQ_ID, "")] = (text(found, "link"), text(found, "title"))
        elif name == "post":
            yield disqus_post(elem, threads)
        forget(elem)


def disqus_post(elem: etree._Element, threads: dict[str, tuple[str, str]]) -> Incoming:
    line = elem.sourceline
    post_id = elem.get(DSQ_ID, "")
    if not post_id:
        raise ImportFailed("a <post> without a dsq:id", line)
    what = f"post {post_id}"
    found = children(elem)
    thread = found.get("thread")
    thread_id = thread.get(DSQ_ID, "") if thread is not None else ""
    if thread_id not in threads:
        raise ImportFailed(f"{what} belongs to thread {thread_id!r}, which is not in the file before it", line)
    link, title = threads[thread_id]
    if not link:
        raise ImportFailed(f"{what} belongs to thread {thread_id}, which has no <link>", line)
    author = children(found["author"]) if "author" in found else {}
    parent = found.get("parent")
    flags = {name: text(found, name).lower() for name in ("isSpam", "isDeleted", "isApproved")}
    if "true" in (flags["isSpam"], flags["isDeleted"]):
        status = Status.REJECTED
    elif flags["isApproved"] == "false":
        status = Status.PENDING
    else:
        status = Status.APPROVED
    return Incoming(
        ref=f"disqus:{post_id}", parent_ref=f"disqus:{parent.get(DSQ_ID)}" if parent is not None and parent.get(DSQ_ID) else None,
        url=link, title=title, name=text(author, "name") or text(author, "username"), email=text(author, "email"),
        website="", ip=clean_ip(text(found, "ipAddress")), body=text(found, "message"), status=status, line=line,
        created_at=parse_time(text(found, "createdAt"), what, line))


# --- storing ------------------------------------------------------------------------


class Importer:
    """Stores Incoming comments into one site in batches, inside the caller's transaction."""

    def __init__(self, site: Site, workers: int = 1):
        self.site = site
        self.report = ImportReport()
        self.known: dict[str, int] = dict(db.session.execute(
            sa.select(Comment.import_ref, Comment.id).where(Comment.site_id == site.id, Comment.import_ref.is_not(None))
        ).all())
        self.articles: dict[str, int] = dict(db.session.execute(
            sa.select(Article.url, Article.id).where(Article.site_id == site.id)).all())
        self.first_comment: dict[int, datetime] = {}  # the new articles, and when their first comment was written
        self.batch: list[Incoming] = []
        self.queued: set[str] = set()  # refs read from this file, stored or about to be (a file may repeat one)
        self.later: list[tuple[str, str]] = []  # (ref, parent ref) for parents not stored yet
        self.touched: set[int] = set()  # articles that got comments, whose cached threads are stale
        self.in_flight: tuple | None = None  # (batch, bodies, rendered bodies) sent to the workers
        # Spawned, not forked: a forked worker would share the database connection's socket, and would
        # outlive an import that is killed (it keeps its own copy of the pipe it waits on).
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=spawn) if workers > 1 else None

    def add(self, item: Incoming | None) -> None:
        if item is None:
            self.report.skipped += 1
        elif item.ref in self.known or item.ref in self.queued:
            self.report.already_there += 1
        else:
            self.queued.add(item.ref)
            self.batch.append(item)
            if len(self.batch) >= BATCH:
                self.flush()

    def article_id(self, item: Incoming) -> int:
        article_id = self.articles.get(item.url)
        if article_id is None:
            parts = urlsplit(item.url)
            if not is_clean_url(item.url) or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ImportFailed(f"the article address {item.url[:100]!r} is not an absolute http(s) URL", item.line)
            article_id = db.session.execute(
                sa.insert(Article).values(site_id=self.site.id, url=item.url, title=(clean_line(item.title) or "")[:300],
                                          created_at=item.created_at).returning(Article.id)).scalar_one()
            self.articles[item.url] = article_id
            self.first_comment[article_id] = item.created_at
            self.report.articles += 1
            origin = f"{parts.scheme}://{parts.netloc}".lower()
            if origin not in self.site.allowed_origins:
                self.report.foreign_origins.add(origin)
        self.touched.add(article_id)
        if article_id in self.first_comment and item.created_at < self.first_comment[article_id]:
            self.first_comment[article_id] = item.created_at
        return article_id

    def flush(self) -> None:
        """Send the batch's bodies to be rendered, and store the batch before it (rendering of
        one batch overlaps reading and storing the next)."""
        if not self.batch:
            return
        bodies = [clean_body(item.body) for item in self.batch]
        rendered = self.pool.map(sanitize.render, bodies, chunksize=100) if self.pool else None
        previous, self.in_flight = self.in_flight, (self.batch, bodies, rendered)
        self.batch = []
        if previous:
            self.store(*previous)

    def store(self, batch: list[Incoming], bodies: list[str], rendered: Iterable[str] | None) -> None:
        rendered = rendered if rendered is not None else map(sanitize.render, bodies)
        rows = []
        for item, body, body_html in zip(batch, bodies, rendered):
            parent_id = self.known.get(item.parent_ref) if item.parent_ref else None
            if item.parent_ref and parent_id is None:
                self.later.append((item.ref, item.parent_ref))
            rows.append(dict(
                site_id=self.site.id, article_id=self.article_id(item), parent_id=parent_id,
                author_name=(clean_field(item.name) or "Anonymous")[:100], author_email=clean_field(item.email)[:254],
                author_website=clean_website(item.website), author_key=None, body=body, body_html=body_html,
                sanitizer_version=sanitize.SANITIZER_VERSION, status=item.status, reasons=["imported"],
                ip=item.ip, user_agent="", created_at=item.created_at,
                decided_at=item.created_at if item.status != Status.PENDING else None,
                version=1, import_ref=item.ref, notify=False))
        # Core's executemany with RETURNING sends the batch as multi-row INSERTs and reads the new ids
        # back, without a query per batch (which PostgreSQL plans badly on a table it has no statistics of).
        table = Comment.__table__
        self.known.update(db.session.execute(
            sa.insert(table).returning(table.c.import_ref, table.c.id, sort_by_parameter_order=True), rows).all())
        self.report.added += len(rows)

    def finish(self, source: str, actor: str) -> ImportReport:
        self.flush()
        if self.in_flight:
            self.store(*self.in_flight)
        if self.pool:
            self.pool.shutdown()
        parents = []
        for ref, parent_ref in self.later:
            if parent_ref in self.known:
                parents.append({"id": self.known[ref], "parent_id": self.known[parent_ref]})
            else:
                self.report.orphans += 1
        if parents:
            db.session.execute(sa.update(Comment), parents)
        if self.first_comment:
            db.session.execute(sa.update(Article), [{"id": article_id, "created_at": moment}
                                                    for article_id, moment in self.first_comment.items()])
        for article_id in self.touched:
            bump_thread(article_id)
        search.index_waiting()
        db.session.add(AuditEvent(site_id=self.site.id, actor=actor, action="import",
                                  detail={"source": source, "added": self.report.added,
                                          "already_there": self.report.already_there}))
        db.session.flush()
        return self.report

    def abandon(self) -> None:
        if self.pool:
            self.pool.shutdown(cancel_futures=True)


def import_file(site: Site, kind: str, stream, actor: str, source: str, workers: int = 1) -> ImportReport:
    """Read a WordPress or Disqus export and store its comments in site; raises ImportFailed."""
    reader: Callable[..., Iterable[Incoming | None]] = {"wordpress": wordpress, "disqus": disqus}[kind]
    importer = Importer(site, workers)
    try:
        for item in reader(stream):
            importer.add(item)
        return importer.finish(f"{kind} {source}", actor)
    except BaseException:
        importer.abandon()
        raise


def default_workers(size: int) -> int:
    """Render comment HTML in worker processes for big files (roughly PARALLEL_FROM comments)."""
    return min(os.cpu_count() or 1, 4) if size > PARALLEL_FROM * 1000 else 1


# --- our own JSON ------------------------------------------------------------------


def jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, Status):
        return value.value
    return value


def columns_of(row, skip: tuple[str, ...]) -> dict:
    """Every column of a row, so a column added later is exported without touching this code."""
    return {column.key: jsonable(getattr(row, column.key)) for column in row.__table__.columns if column.key not in skip}


def export_site(site: Site) -> dict:
    """A site's articles, comments (with every column), rules and audit log, as JSON-ready data."""
    emails = dict(db.session.execute(sa.select(User.id, User.email)).all())
    articles = db.session.scalars(sa.select(Article).where(Article.site_id == site.id).order_by(Article.id))
    comments = db.session.scalars(sa.select(Comment).where(Comment.site_id == site.id).order_by(Comment.id))
    audit = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.site_id == site.id).order_by(AuditEvent.id))
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": jsonable(utcnow()),
        "site": {"key": site.key, "name": site.name, "created_at": jsonable(site.created_at), "rules": site.rules},
        "articles": [columns_of(article, ("site_id",)) for article in articles],
        "comments": [{**columns_of(comment, ("site_id", "decided_by_id")),
                      "decided_by": emails.get(comment.decided_by_id)} for comment in comments],
        "audit_log": [columns_of(event, ("site_id", "user_id")) for event in audit],
    }


def from_json(column: sa.Column, value, what: str):
    """A value read from our JSON as the column's Python type; ImportFailed names what is wrong."""
    if value is None:
        return None
    try:
        if isinstance(column.type, sa.DateTime):
            return parse_time(value, what, 0)
        if isinstance(column.type, sa.Enum):
            return column.type.enum_class(value)
    except (ValueError, TypeError, ImportFailed):
        raise ImportFailed(f"{what}: {column.key} has the value {str(value)[:60]!r}, which is not valid") from None
    return value


def restore_row(model, data: dict, what: str, skip: tuple[str, ...]) -> dict:
    return {column.key: from_json(column, data[column.key], what)
            for column in model.__table__.columns if column.key in data and column.key not in skip}


def import_site_json(site: Site, data: object, actor: str) -> ImportReport:
    """Load our own export into site: its rules, articles, comments and audit log. Comments
    already imported from the same export are skipped."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ImportFailed(f"this is not a site export of this service (no \"format\": \"{EXPORT_FORMAT}\")")
    if data.get("version") != EXPORT_VERSION:
        raise ImportFailed(f"this export has version {data.get('version')!r}; this service reads version {EXPORT_VERSION}")
    try:
        source = str(data["site"]["key"])
        site.rules = rules.validate_rules(data["site"]["rules"])
        return JsonImport(site, source).run(data["articles"], data["comments"], data["audit_log"], actor)
    except rules.RulesError as error:
        raise ImportFailed(f"site.rules: {error}") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise ImportFailed(f"the export is missing or misshapes {error}") from None


class JsonImport:
    def __init__(self, site: Site, source: str):
        self.site, self.source = site, source
        self.report = ImportReport()
        self.users = {email.lower(): user_id for user_id, email in db.session.execute(sa.select(User.id, User.email))}

    def run(self, articles: list, comments: list, audit_log: list, actor: str) -> ImportReport:
        article_ids = self.restore_articles(articles)
        comment_ids = self.restore_comments(comments, article_ids)
        search.index_waiting()
        label = f"json {self.source}"
        already = db.session.scalar(sa.select(sa.exists().where(
            AuditEvent.site_id == self.site.id, AuditEvent.action == "import",
            AuditEvent.detail["source"].as_string() == label)))
        if not already:
            for n, event in enumerate(audit_log, 1):
                row = restore_row(AuditEvent, event, f"audit_log entry {n}", ("id", "site_id", "user_id", "comment_id"))
                db.session.add(AuditEvent(**row, site_id=self.site.id, comment_id=comment_ids.get(event.get("comment_id")),
                                          user_id=self.users.get(str(event.get("actor", "")).lower())))
        db.session.add(AuditEvent(site_id=self.site.id, actor=actor, action="import",
                                  detail={"source": label, "added": self.report.added,
                                          "already_there": self.report.already_there}))
        db.session.flush()
        return self.report

    def restore_articles(self, articles: list) -> dict[int, int]:
        existing = dict(db.session.execute(sa.select(Article.url, Article.id).where(Article.site_id == self.site.id)).all())
        ids = {}
        for n, article in enumerate(articles, 1):
            url = article["url"]
            if url not in existing:
                if not isinstance(url, str) or not is_clean_url(url):
                    raise ImportFailed(f"articles entry {n}: the url is not a valid address")
                row = restore_row(Article, article, f"articles entry {n}", ("id", "site_id"))
                existing[url] = db.session.execute(
                    sa.insert(Article).values(**row, site_id=self.site.id).returning(Article.id)).scalar_one()
                self.report.articles += 1
            ids[article["id"]] = existing[url]
        return ids

    def restore_comments(self, comments: list, article_ids: dict[int, int]) -> dict[int, int]:
        known = dict(db.session.execute(sa.select(Comment.import_ref, Comment.id).where(
            Comment.site_id == self.site.id, Comment.import_ref.is_not(None))).all())
        ids: dict[int, int] = {}
        parents = []
        for n, comment in enumerate(comments, 1):
            what = f"comments entry {n} (id {comment.get('id')})"
            ref = comment.get("import_ref") or f"json:{self.source}:{comment['id']}"
            if ref in known:
                ids[comment["id"]] = known[ref]
                self.report.already_there += 1
                continue
            if comment["article_id"] not in article_ids:
                raise ImportFailed(f"{what}: its article_id {comment['article_id']!r} is not among the articles")
            row = restore_row(Comment, comment, what, ("id", "site_id", "article_id", "parent_id", "decided_by_id",
                                                       "body_hash"))
            body = clean_text(row.get("body")) or ""
            row.update(body=body, body_html=sanitize.render(body), sanitizer_version=sanitize.SANITIZER_VERSION,
                       import_ref=ref, site_id=self.site.id, article_id=article_ids[comment["article_id"]],
                       decided_by_id=self.users.get(str(comment.get("decided_by") or "").lower()))
            new_id = db.session.execute(sa.insert(Comment).values(**row).returning(Comment.id)).scalar_one()
            ids[comment["id"]] = known[ref] = new_id
            if comment.get("parent_id") is not None:
                parents.append((new_id, comment["parent_id"]))
            self.report.added += 1
        updates = [{"id": new_id, "parent_id": ids[old]} for new_id, old in parents if old in ids]
        self.report.orphans = len(parents) - len(updates)
        if updates:
            db.session.execute(sa.update(Comment), updates)
        for article_id in set(article_ids.values()):
            bump_thread(article_id)
        return ids
