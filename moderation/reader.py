"""The reader's own browser: signed receipts for the comments it posted, and a small endpoint
that tells it how they stand, so a returning reader sees theirs marked "awaiting moderation"."""
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from . import comments
from .extensions import db
from .models import Article, Comment
from .rules import Status

bp = Blueprint("reader", __name__)

RECEIPT_SALT = "pending-comment"
RECEIPT_MAX_AGE = 30 * 24 * 3600
MAX_RECEIPTS = 20


def serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=RECEIPT_SALT)


@bp.app_template_global()
def pending_receipt(comment: Comment) -> str:
    """A long-lived receipt for one comment, kept in the browser that posted it."""
    return serializer().dumps({"c": comment.id, "s": comment.site_id})


def comment_ids(site_id: int, receipts: list[str]) -> list[int]:
    ids = []
    for receipt in receipts[:MAX_RECEIPTS]:
        if not receipt or len(receipt) > 200 or not receipt.isascii():
            continue
        try:
            data = serializer().loads(receipt, max_age=RECEIPT_MAX_AGE)
        except BadSignature:
            continue
        if isinstance(data, dict) and data.get("s") == site_id and isinstance(data.get("c"), int):
            ids.append(data["c"])
    return ids


@bp.get("/embed/<key>/mine")
def mine(key: str):
    """How the comments behind these receipts stand; the text only of those still pending."""
    site = comments.site_by_key(key)
    if site is None:
        abort(404, description="There is no site with this key.")
    ids = comment_ids(site.id, request.args.getlist("r"))
    rows = db.session.execute(
        sa.select(Comment, Article.url).join(Article, Article.id == Comment.article_id)
        .where(Comment.site_id == site.id, Comment.id.in_(ids)).order_by(Comment.id)).all() if ids else []
    found = []
    for comment, url in rows:
        entry = {"id": comment.id, "status": comment.status.value}
        if comment.status == Status.PENDING:
            entry.update(url=url, author=comment.author_name, body_html=comment.body_html,
                         created_at=comment.created_at.isoformat() + "Z")
        found.append(entry)
    response = jsonify(comments=found)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response
