"""Cheap public reads. A thread's JSON and widget page are rendered once per version of the
article (Article.thread_version, bumped in the same transaction as every change the public
sees) and kept in Flask-Caching: in memory by default, Redis when CACHE_REDIS_URL is set so
that every app server shares them. The version is read from the database on every request, so
an approval shows on the next load on every server: the cache never decides what is fresh.
Cache hits are answered before Flask's request handling by cached_reads.py, with the
functions here."""
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from flask import Flask, Response, current_app, request
from flask_caching import Cache
from flask_caching.backends.base import BaseCache
from werkzeug.http import http_date, quote_etag

from . import comments, db_engine, sanitize
from .extensions import db
from .models import Article, Comment, Site

cache = Cache()
PAGE_SIZE = 50  # top-level comments on one page of a thread, each with all its replies
# Browsers revalidate on every load (a 304 when nothing changed), so an approval shows on the
# reader's next load as the contract says; shared caches may keep the answer 30 seconds, and a
# CDN that reads CDN-Cache-Control (RFC 9213) may also serve it stale for a minute while it
# revalidates. (stale-while-revalidate in Cache-Control would let browsers show a stale thread.)
PUBLIC = "public, max-age=0, must-revalidate, s-maxage=30"
CDN = "public, max-age=30, stale-while-revalidate=60"
# Part of every cache key: a new shape of the stored values never meets an old one.
KEY_PREFIX = "thread:2:"


def init_app(app: Flask) -> None:
    if not app.config["CACHE_TYPE"]:
        app.config["CACHE_TYPE"] = "RedisCache" if app.config["CACHE_REDIS_URL"] else "SimpleCache"
    cache.init_app(app)


@dataclass(frozen=True)
class ThreadHead:
    """What every read of a thread needs from the database, fetched in one light query: the
    site, and the article's version (article_id None while the article has no comments)."""
    site_id: int
    site_key: str
    rules: dict
    rules_digest: str  # stands for the rules in cache keys: the word lists may hold thousands of entries
    article_id: int | None
    title: str
    version: int
    closed: bool
    changed_at: datetime | None

    @property
    def allowed_origins(self) -> list[str]:
        return self.rules.get("allowed_origins", [])


def _thread_head_query() -> sa.Select:
    sites, articles = Site.__table__, Article.__table__
    # The rules as their JSON text on both engines, parsed once per text (site_rules) instead of
    # by the driver on every read.
    return (sa.select(sites.c.id, sites.c.key, sa.cast(sites.c.rules, sa.Text), articles.c.id, articles.c.title,
                      articles.c.thread_version, articles.c.closed,
                      sa.func.coalesce(articles.c.thread_changed_at, articles.c.created_at))
            .select_from(sites)
            .outerjoin(articles, sa.and_(articles.c.site_id == sites.c.id, articles.c.url == sa.bindparam("url")))
            .where(sites.c.key == sa.bindparam("key")))


THREAD_HEAD = _thread_head_query()  # built once: this runs on every read


def thread_head(site_key: str | None, url: str, engine: sa.Engine | None = None) -> ThreadHead | None:
    """None for an unknown site. One query on a connection of its own (db_engine.read_row),
    outside the request's session: its answer is never older than what is rendered after it.
    engine: the app's, for a caller outside an app context (cached_reads)."""
    if not comments.is_site_key(site_key):
        return None
    row = db_engine.read_row(engine or db.engine, THREAD_HEAD, {"key": site_key, "url": url})
    if row is None:
        return None
    site_id, key, rules_text, article_id, title, version, closed, changed_at = row
    rules, digest = site_rules(rules_text)
    if isinstance(changed_at, str):  # SQLite's driver gives datetimes as text
        changed_at = datetime.fromisoformat(changed_at)
    return ThreadHead(site_id, key, rules, digest, article_id, title or "", version or 0, bool(closed), changed_at)


@functools.lru_cache(maxsize=256)
def site_rules(text: str) -> tuple[dict, str]:
    """A site's rules and a digest of them, made once per text they have: every read of a
    thread needs them. The dict is shared between reads, so nobody may change it."""
    return json.loads(text), hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class Shown(NamedTuple):
    """What the public sees of an approved comment: plain values, not ORM objects, for speed."""
    id: int
    parent_id: int | None
    author_name: str
    author_website: str
    body_html: str
    created_at: datetime


SHOWN_COLUMNS = (Comment.id, Comment.parent_id, Comment.author_name, Comment.author_website,
                 Comment.body_html, Comment.created_at, Comment.sanitizer_version, Comment.body)


def shown(row) -> Shown:
    """HTML stored under an older sanitizer policy is rendered again (as comments.rerender_outdated_html)."""
    html = row.body_html if row.sanitizer_version == sanitize.SANITIZER_VERSION else sanitize.render(row.body)
    return Shown(row.id, row.parent_id, row.author_name, row.author_website, html, row.created_at)


@dataclass
class ThreadPage:
    comments: list[Shown]
    count: int  # approved comments in the whole thread, not only on this page
    next: int | None  # the cursor (`after`) of the following page, if there is one


def thread_page(article_id: int | None, after: int | None = None) -> ThreadPage:
    """One page of the public thread: PAGE_SIZE top-level comments and all their replies."""
    if article_id is None:
        return ThreadPage([], 0, None)
    roots = db.session.scalars(comments.top_level_comments(article_id, after).limit(PAGE_SIZE + 1)).all()
    more = len(roots) > PAGE_SIZE
    roots = roots[:PAGE_SIZE]
    rows = db.session.execute(comments.with_replies(roots).with_only_columns(*SHOWN_COLUMNS)).all() if roots else []
    flat = [shown(row) for row in rows]
    count = db.session.scalar(comments.approved_count(article_id)) if (after or more) else len(flat)
    return ThreadPage(flat, count, roots[-1] if more else None)


def thread_tag(*parts: object) -> str:
    """A short digest of everything a cached thread depends on: its ETag and its cache key.
    The sanitizer's version is one of them: a new policy renders every thread again."""
    return hashlib.blake2b(repr((sanitize.SANITIZER_VERSION, *parts)).encode(), digest_size=12).hexdigest()


def json_tag(head: ThreadHead, url: str, after: int | None) -> str:
    return thread_tag("json", head.site_key, url, after, head.article_id, head.version)


def public_headers(tag: str, changed_at: datetime | None = None) -> list[tuple[str, str]]:
    """Let a CDN keep the answer briefly, and browsers revalidate it by ETag."""
    headers = [("ETag", quote_etag(tag, weak=True)), ("Cache-Control", PUBLIC), ("CDN-Cache-Control", CDN)]
    if changed_at:
        headers.append(("Last-Modified", last_modified(changed_at)))
    return headers


@functools.lru_cache(maxsize=1024)
def last_modified(changed_at: datetime) -> str:
    return http_date(changed_at)


def not_modified(tag: str) -> Response | None:
    """A 304 when the browser or CDN already holds this version (If-None-Match)."""
    if not request.if_none_match.contains_weak(tag):
        return None
    return current_app.response_class(status=304, headers=public_headers(tag))


def cached(tag: str, backend: BaseCache | None = None):
    """The stored rendering for this tag, or None. A cache that is down costs speed, never an answer.
    backend: the app's cache (cache.cache), for the shortcut outside an app context (cached_reads);
    there a failure is raised, and the request goes on to Flask, which reports it."""
    if backend is not None:
        return backend.get(KEY_PREFIX + tag)
    try:
        return cache.get(KEY_PREFIX + tag)
    except Exception:
        current_app.logger.warning("The cache is unreachable; rendering %s without it", tag, exc_info=True)
        return None


def rendered(tag: str, render: Callable[[], object]):
    """The cached rendering for this tag, rendering and storing it the first time."""
    value = cached(tag)
    if value is None:
        value = render()
        try:
            cache.set(KEY_PREFIX + tag, value)
        except Exception:
            current_app.logger.warning("The cache is unreachable; %s not stored", tag, exc_info=True)
    return value


def public(response: Response, tag: str, changed_at: datetime | None) -> Response:
    response.headers.extend(public_headers(tag, changed_at))
    response = response.make_conditional(request)
    # The HTTP server (gunicorn, or werkzeug's in development) sends the Date header; the one
    # make_conditional adds would go out as a second.
    del response.headers["Date"]
    return response
