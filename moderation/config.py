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
    # Serves a demo article page at /demo/ (make run turns it on).
    "DEMO": False,
}
