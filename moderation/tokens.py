"""Signed tokens: the reply and report forms' tokens, the author token a reader's browser keeps,
the "you just posted" receipt, and the links mailed to readers (confirm my email, publish my
comment). All are signed with SECRET_KEY and carry their own purpose (salt)."""
import functools
import secrets
import time

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

FORM_SALT = "comment-form"
AUTHOR_SALT = "author-token"
RECEIPT_SALT = "posted-receipt"
VERIFY_EMAIL_SALT = "verify-email"
PUBLISH_COMMENT_SALT = "publish-comment"
REPORT_SALT = "report-form"
RECEIPT_MAX_AGE = 15 * 60
AUTHOR_MAX_AGE = 5 * 365 * 24 * 3600


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return serializer_for(current_app.secret_key, salt)


@functools.lru_cache(maxsize=64)
def serializer_for(secret_key: str | bytes, salt: str) -> URLSafeTimedSerializer:
    """Built once per key and purpose: every widget page signs a fresh form token."""
    return URLSafeTimedSerializer(secret_key, salt=salt)


def _load(salt: str, token: str, max_age: int):
    if not token or len(token) > 1000 or not token.isascii():
        return None
    try:
        return _serializer(salt).loads(token, max_age=max_age)
    except BadSignature:
        return None


def form_token(site_key: str, url: str) -> str:
    """A token for one reply form: the site and article it belongs to, when it was issued, a nonce."""
    return _serializer(FORM_SALT).dumps({"s": site_key, "u": url, "n": secrets.token_hex(8),
                                         "t": round(time.time(), 2)})


def form_token_valid(token: str, site_key: str, url: str) -> bool:
    data = _load(FORM_SALT, token, current_app.config["COMMENT_FORM_MAX_AGE"])
    return isinstance(data, dict) and data.get("s") == site_key and data.get("u") == url


def form_token_nonce(token: str) -> str | None:
    """The nonce of a form token already found valid: it may post one comment."""
    data = _load(FORM_SALT, token, current_app.config["COMMENT_FORM_MAX_AGE"])
    nonce = data.get("n") if isinstance(data, dict) else None
    return nonce if isinstance(nonce, str) and len(nonce) <= 32 else None


def form_token_age(token: str) -> float | None:
    """Seconds since a valid form token was issued (the time trap: people take longer to write)."""
    data = _load(FORM_SALT, token, current_app.config["COMMENT_FORM_MAX_AGE"])
    issued = data.get("t") if isinstance(data, dict) else None
    return max(0.0, time.time() - issued) if isinstance(issued, (int, float)) else None


def new_author_token() -> tuple[str, str]:
    """(author key stored with the comment, signed token for the reader's browser)."""
    key = secrets.token_hex(16)
    return key, _serializer(AUTHOR_SALT).dumps(key)


def author_token_for(key: str) -> str:
    """The signed token for an author key, for a reader whose first answer was lost on the way."""
    return _serializer(AUTHOR_SALT).dumps(key)


def author_key_from(token: str | None) -> str | None:
    key = _load(AUTHOR_SALT, token or "", AUTHOR_MAX_AGE)
    return key if isinstance(key, str) else None


def receipt(comment_id: int, author_token: str) -> str:
    """Shown once after posting, to the browser that posted: which comment, and its author token."""
    return _serializer(RECEIPT_SALT).dumps({"c": comment_id, "a": author_token})


def read_receipt(token: str | None) -> dict | None:
    data = _load(RECEIPT_SALT, token or "", RECEIPT_MAX_AGE)
    return data if isinstance(data, dict) else None


class LinkError(Exception):
    """A link from an email that cannot be used; str() tells the reader why, and that nothing changed."""


def verify_email_link_token(proof_id: int) -> str:
    """For the one "confirm your email address" link: the stored address on one site, by its id, so that the
    link never carries the address itself."""
    return _serializer(VERIFY_EMAIL_SALT).dumps({"v": proof_id})


def publish_link_token(comment_id: int, proof_id: int) -> str:
    """For a "Publish my comment" link: this comment, by the verified address with this id."""
    return _serializer(PUBLISH_COMMENT_SALT).dumps({"c": comment_id, "v": proof_id})


def read_reader_link(salt: str, token: str) -> dict:
    """The data a reader's link carries; LinkError if it is expired, tampered with or cut short."""
    max_age = current_app.config["MAIL_LINK_MAX_AGE"]
    try:
        data = _serializer(salt).loads(token, max_age=max_age) if len(token) <= 1000 and token.isascii() else None
    except SignatureExpired:
        raise LinkError(f"This link has expired: the links we email work for {max(max_age // 86400, 1)} day(s). "
                        "Nothing was changed.") from None
    except BadSignature:
        data = None
    if not isinstance(data, dict):
        raise LinkError("This link is not valid: it may have been cut short or changed on the way. Nothing was "
                        "changed. Open the link from the email again, or copy all of it into the address bar.")
    return data


def report_token(site_key: str, comment_id: int) -> str:
    """A token for one report form: the site and comment it reports, when it was issued, a nonce."""
    return _serializer(REPORT_SALT).dumps({"s": site_key, "c": comment_id, "n": secrets.token_hex(8)})


def report_token_nonce(token: str, site_key: str, comment_id: int) -> str | None:
    """The nonce of a valid, unexpired report token for this comment (it may send one report), else None."""
    data = _load(REPORT_SALT, token, current_app.config["COMMENT_FORM_MAX_AGE"])
    if not isinstance(data, dict) or data.get("s") != site_key or data.get("c") != comment_id:
        return None
    nonce = data.get("n")
    return nonce if isinstance(nonce, str) and len(nonce) <= 32 else None
