"""Cache hits of the two public reads, GET /api/v1/threads and the widget page GET /embed/<key>,
answered in front of Flask's request handling (a WSGI middleware).

Why: a hit needs one query (the article's version, so that an approval shows at once on every
app server), one cache lookup and a few headers. Through Flask it would also pay for the
session, Flask-Login, the rate limiter, CSRF and the SQLAlchemy session: several times the
cost of the answer itself.

It answers only a plain GET whose thread is in the cache under the current version, with the
same status, headers and body as the views in api.py and embed.py (tests/test_production.py
compares them), and writes the same request log line. Everything else goes to Flask: a miss
(which Flask renders and stores), an error, a HEAD, a Range or If-Modified-Since request, a
reader's own page after posting, every other path."""
import functools
import time
from urllib.parse import parse_qsl

import sqlalchemy as sa
from flask import Flask
from flask_caching.backends.base import BaseCache
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.http import parse_etags

from . import cache, comments, embed, ops, security
from .cache import cache as flask_cache
from .comments import Refused
from .extensions import db


class CachedReads:
    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    @functools.cached_property
    def backends(self) -> tuple[sa.Engine, BaseCache]:
        """The app's engine and cache: the JSON read needs nothing else of the app, and is
        answered without pushing an app context, a fifth of a hit's own work."""
        with self.app.app_context():
            return db.engine, flask_cache.cache

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "GET" and (path == "/api/v1/threads" or path.startswith("/embed/")):
            started = time.perf_counter()
            try:
                args = query_args(environ.get("QUERY_STRING", ""))
                if path == "/api/v1/threads":
                    answer = json_thread(environ, args, *self.backends)
                else:
                    with self.app.app_context():  # the form token is signed with the app's key
                        answer = widget(path, args)
            except Exception:  # Flask answers it, and reports what went wrong
                answer = None
            if answer is not None:
                status, headers, body = answer
                request_id = ops.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
                headers.append(("X-Request-ID", request_id))
                if self.app.config["REQUEST_LOG"]:
                    ops.log_line(request_id, "GET", path, int(status[:3]), started)
                start_response(status, headers)
                return [body]
        return self.wsgi_app(environ, start_response)


@functools.lru_cache(maxsize=256)
def query_args(query_string: str) -> ImmutableMultiDict:
    """The query string parsed as request.args parses it, once per string: the readers of a
    popular article all send the same one. (Immutable, so the cached answer can be shared.)"""
    return ImmutableMultiDict(parse_qsl(query_string.encode("latin-1").decode(), keep_blank_values=True,
                                        errors="werkzeug.url_quote"))


def json_thread(environ: dict, args: ImmutableMultiDict, engine: sa.Engine,
                backend: BaseCache) -> tuple[str, list, bytes] | None:
    """As api.thread answers a thread that is cached, or a 304."""
    if environ.get("HTTP_RANGE") or (environ.get("HTTP_IF_MODIFIED_SINCE") and not environ.get("HTTP_IF_NONE_MATCH")):
        return None
    url = args.get("url")
    if not url or not comments.is_clean_url(url):
        return None
    head = cache.thread_head(args.get("site"), url, engine)
    if head is None:
        return None
    tag = cache.json_tag(head, url, args.get("after", type=int))
    origin = environ.get("HTTP_ORIGIN")
    # Vary: Cookie as on Flask's answers, whose session Flask-Login reads on every request.
    common = [("Vary", "Origin, Cookie"), *security.headers()]
    if origin and origin in head.allowed_origins:
        common.append(("Access-Control-Allow-Origin", origin))
    if parse_etags(environ.get("HTTP_IF_NONE_MATCH")).contains_weak(tag):
        return "304 NOT MODIFIED", [*cache.public_headers(tag), *common], b""
    body = cache.cached(tag, backend)
    if body is None:
        return None
    return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                      *cache.public_headers(tag, head.changed_at), *common], body


def widget(path: str, args: ImmutableMultiDict) -> tuple[str, list, bytes] | None:
    """As embed.public_thread answers a thread that is cached, with a fresh form token."""
    key = path.removeprefix("/embed/")  # a site key is ASCII: no need to decode the WSGI path
    url = args.get("url")
    if args.get("posted") or args.get("reply_to") or not url or not comments.is_clean_url(url):
        return None
    head = cache.thread_head(key, url)
    if head is None:
        return None
    try:
        comments.check_article_url(head, url)
    except Refused:
        return None
    page = cache.cached(embed.widget_tag(head, url, args))
    if page is None:
        return None
    body = embed.with_form_token(page, head.site_key, url)
    return "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                      ("Cache-Control", "private, no-cache"), *security.headers(embed.frame_csp(head)),
                      ("Vary", "Cookie")], body
