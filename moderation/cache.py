"""Cheap public reads. A thread's JSON and widget page are rendered once per version of the
article (Article.thread_version, bumped in the same transaction as every change the public
sees) and kept in Flask-Caching: in memory by default, Redis when CACHE_REDIS_URL is set so
that every app server shares them. The version is read from the database on every request, so
an approval shows on the next load on every server: the cache never decides what is fresh."""
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import Flask, Response, current_app, request
from flask_caching import Cache

from . import comments
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
    return (sa.select(sites.c.id, sites.c.key, sites.c.rules, articles.c.id, articles.c.title,
                      articles.c.thread_version, articles.c.closed,
                      sa.func.coalesce(articles.c.thread_changed_at, articles.c.created_at))
            .select_from(sites)
            .outerjoin(articles, sa.and_(articles.c.site_id == sites.c.id, articles.c.url == sa.bindparam("url")))
            .where(sites.c.key == sa.bindparam("key")))


THREAD_HEAD = _thread_head_query()  # built once: this runs on every read


def thread_head(site_key: str | None, url: str) -> ThreadHead | None:
    """None for an unknown site. Plain columns, not ORM objects, from one prepared query."""
    if not comments.is_site_key(site_key):
        return None
    row = db.session.connection().execute(THREAD_HEAD, {"key": site_key, "url": url}).one_or_none()
    if row is None:
        return None
    site_id, key, rules, article_id, title, version, closed, changed_at = row
    return ThreadHead(site_id, key, rules, article_id, title or "", version or 0, bool(closed), changed_at)


@dataclass
class ThreadPage:
    comments: list[Comment]
    count: int  # approved comments in the whole thread, not only on this page
    next: int | None  # the cursor (`after`) of the following page, if there is one


def thread_page(article_id: int | None, after: int | None = None) -> ThreadPage:
    """One page of the public thread: PAGE_SIZE top-level comments and all their replies."""
    if article_id is None:
        return ThreadPage([], 0, None)
    roots = db.session.scalars(comments.top_level_comments(article_id, after).limit(PAGE_SIZE + 1)).all()
    more = len(roots) > PAGE_SIZE
    roots = roots[:PAGE_SIZE]
    flat = db.session.scalars(comments.with_replies(roots)).all() if roots else []
    count = db.session.scalar(comments.approved_count(article_id)) if (after or more) else len(flat)
    return ThreadPage(flat, count, roots[-1] if more else None)


def thread_tag(*parts: object) -> str:
    """A short digest of everything a cached thread depends on: its ETag and its cache key."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def not_modified(tag: str) -> Response | None:
    """A 304 when the browser or CDN already holds this version (If-None-Match)."""
    if not request.if_none_match.contains_weak(tag):
        return None
    response = current_app.response_class(status=304)
    response.set_etag(tag, weak=True)
    response.headers["Cache-Control"] = PUBLIC
    response.headers["CDN-Cache-Control"] = CDN
    return response


def rendered(tag: str, render: Callable[[], str]) -> str:
    """The cached rendering for this tag, rendering and storing it the first time.
    A cache that is down costs speed, never an answer."""
    key = "thread:" + tag
    try:
        text = cache.get(key)
    except Exception:
        current_app.logger.warning("The cache is unreachable; rendering %s without it", key, exc_info=True)
        return render()
    if text is None:
        text = render()
        try:
            cache.set(key, text)
        except Exception:
            current_app.logger.warning("The cache is unreachable; %s not stored", key, exc_info=True)
    return text


def public(response: Response, tag: str, changed_at: datetime | None) -> Response:
    """Let a CDN keep the answer briefly, and browsers revalidate it by ETag."""
    response.set_etag(tag, weak=True)
    if changed_at:
        response.last_modified = changed_at
    response.headers["Cache-Control"] = PUBLIC
    response.headers["CDN-Cache-Control"] = CDN
    return response.make_conditional(request)


