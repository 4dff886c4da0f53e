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
import time

from flask import Flask

from . import cache, comments, embed, ops, security
from .comments import Refused


class CachedReads:
    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "GET" and (path == "/api/v1/threads" or path.startswith("/embed/")):
            started = time.perf_counter()
            with self.app.app_context():
                request = self.app.request_class(environ)
                try:
                    answer = json_thread(request) if path == "/api/v1/threads" else widget(request)
                except Exception:  # Flask answers it, and reports what went wrong
                    answer = None
                if answer is not None:
                    status, headers, body = answer
                    request_id = ops.request_id(request.headers.get("X-Request-ID", ""))
                    headers.append(("X-Request-ID", request_id))
                    if self.app.config["REQUEST_LOG"]:
                        ops.log_line(request_id, "GET", request.path, int(status[:3]), started)
                    start_response(status, headers)
                    return [body]
        return self.wsgi_app(environ, start_response)


def json_thread(request) -> tuple[str, list, bytes] | None:
    """As api.thread answers a thread that is cached, or a 304."""
    if request.headers.get("Range") or (request.headers.get("If-Modified-Since")
                                        and not request.headers.get("If-None-Match")):
        return None
    url = request.args.get("url")
    if not url or not comments.is_clean_url(url):
        return None
    head = cache.thread_head(request.args.get("site"), url)
    if head is None:
        return None
    tag = cache.json_tag(head, url, request.args.get("after", type=int))
    origin = request.headers.get("Origin")
    # Vary: Cookie as on Flask's answers, whose session Flask-Login reads on every request.
    common = [("Vary", "Origin, Cookie"), *security.headers()]
    if origin and origin in head.allowed_origins:
        common.append(("Access-Control-Allow-Origin", origin))
    if request.if_none_match.contains_weak(tag):
        return "304 NOT MODIFIED", [*cache.public_headers(tag), *common], b""
    body = cache.cached(tag)
    if body is None:
        return None
    return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                      *cache.public_headers(tag, head.changed_at), *common], body


def widget(request) -> tuple[str, list, bytes] | None:
    """As embed.public_thread answers a thread that is cached, with a fresh form token."""
    key = request.path.removeprefix("/embed/")
    url = request.args.get("url")
    if request.args.get("posted") or request.args.get("reply_to") or not url or not comments.is_clean_url(url):
        return None
    head = cache.thread_head(key, url)
    if head is None:
        return None
    try:
        comments.check_article_url(head, url)
    except Refused:
        return None
    page = cache.cached(embed.widget_tag(head, url, request.args))
    if page is None:
        return None
    body = embed.with_form_token(page, head.site_key, url)
    return "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                      ("Cache-Control", "private, no-cache"), *security.headers(embed.frame_csp(head)),
                      ("Vary", "Cookie")], body
