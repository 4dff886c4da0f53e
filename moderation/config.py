"""Built-in defaults; instance/config.py and MODERATION_* environment variables override them."""

DEV_SECRET_KEY = "dev-only-secret-change-me"

DEFAULTS = {
    "SECRET_KEY": DEV_SECRET_KEY,
    # Filled in by create_app with a file under the instance folder when left empty.
    "SQLALCHEMY_DATABASE_URI": "",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    # Where readers' browsers reach the service: used in the snippet and in links in emails.
    "PUBLIC_URL": "http://127.0.0.1:5000",
    # The number of reverse proxies in front of the app whose X-Forwarded-* headers are trusted.
    "PROXY_COUNT": 0,
    # Hard cap on a request body; a comment is at most 10,000 characters of up to 4 bytes each.
    "MAX_CONTENT_LENGTH": 128 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": 3600,
    # How long the signed token in the reply form stays valid.
    "COMMENT_FORM_MAX_AGE": 24 * 3600,
    "QUEUE_PAGE_SIZE": 25,
    # How often an open queue asks for new counts and for decisions taken by others.
    "LIVE_POLL_SECONDS": 15,
    # Request rate limits (Flask-Limiter), per client IP address. Counted in memory per worker by
    # default; give every app server the same Redis, e.g. "redis://127.0.0.1:6379/1", to share them.
    "RATELIMIT_STORAGE_URI": "memory://",
    # Always set, as the limiter object outlives an app: an app that turned it off must not leave it off.
    "RATELIMIT_ENABLED": True,
    "COMMENT_RATE_LIMIT": "120 per minute",
    "LOGIN_RATE_LIMIT": "30 per minute",
    # Outgoing mail, sent by `flask send-mail` from the outbox, never inside a request.
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 25,
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_USE_STARTTLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_FROM": "comments@localhost",
    "MAIL_TIMEOUT": 15,
    # An email or webhook call failing this many times is given up (kept in the outbox, marked failed).
    "OUTBOX_MAX_ATTEMPTS": 8,
    # How long the approve / reject links in a moderator's email stay valid.
    "MAIL_LINK_MAX_AGE": 7 * 24 * 3600,
    # Webhooks to loopback, private or link-local addresses are refused unless this is True.
    "WEBHOOK_ALLOW_PRIVATE": False,
    "WEBHOOK_TIMEOUT": 10,
    # Serves a demo article page at /demo/ (make run turns it on).
    "DEMO": False,
    # Rendered threads (Flask-Caching): in memory per worker, or shared by every app server in
    # Redis when CACHE_REDIS_URL is set (e.g. "redis://127.0.0.1:6379/0"). "" picks between them.
    "CACHE_TYPE": "",
    "CACHE_REDIS_URL": "",
    "CACHE_KEY_PREFIX": "moderation:",
    "CACHE_DEFAULT_TIMEOUT": 24 * 3600,
    # One JSON line per request (request id, method, path, status, duration) on standard error.
    "REQUEST_LOG": True,
}
