"""The JSON API: read a thread, create a comment. Cross-origin calls only from a site's
allowed origins; the same validation and rules as the widget's form."""
import json

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, request

from . import cache, comments, db_engine
from .comments import Refused, Submission
from .extensions import csrf, db, limiter
from .forms import ApiCommentForm, check_fields
from .models import Site

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

FIELDS = ("url", "title", "parent_id", "name", "email", "website", "body", "author_token")


def comment_json(comment: cache.Shown) -> dict:
    """A public comment: never the email, the IP address or the user agent."""
    return {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "author": comment.author_name,
        "website": comment.author_website or None,
        "body_html": comment.body_html,
        "created_at": comment.created_at.isoformat(timespec="seconds") + "Z",
    }


def allowed_anywhere(origin: str) -> bool:
    """For preflights, which carry no site key: does any site allow this origin?"""
    return any(origin in rules.get("allowed_origins", [])
               for rules in db.session.scalars(sa.select(Site.rules)))


def allow_origin(response, site: Site | None = None):
    origin = request.headers.get("Origin")
    if origin and (origin in site.allowed_origins if site else allowed_anywhere(origin)):
        response.headers["Access-Control-Allow-Origin"] = origin
    response.vary.add("Origin")
    return response


@bp.route("/comments", methods=["OPTIONS"])
@bp.route("/threads", methods=["OPTIONS"])
def preflight():
    response = current_app.make_response(("", 204))
    allow_origin(response)
    if "Access-Control-Allow-Origin" in response.headers:
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def site_or_404(key: object) -> Site:
    site = comments.site_by_key(key if isinstance(key, str) else None, detached=True)
    if site is None:
        abort(404, description="There is no site with this key.")
    return site


@bp.get("/threads")
def thread():
    url = request.args.get("url")
    is_url = bool(url) and comments.is_clean_url(url)
    head = cache.thread_head(request.args.get("site"), url if is_url else "")
    if head is None:
        abort(404, description="There is no site with this key.")
    if not is_url:
        abort(400, description="The url parameter (the article's canonical address) is required.")
    after = request.args.get("after", type=int)
    tag = cache.json_tag(head, url, after)
    if unchanged := cache.not_modified(tag):
        return allow_origin(unchanged, head)

    def render() -> bytes:
        page = cache.thread_page(head.article_id, after)
        thread = {"url": url, "title": head.title, "count": page.count,
                  "comments": [comment_json(comment) for comment in page.comments]}
        if page.next:  # more top-level comments: ask again with after=<next>
            thread["next"] = page.next
        return json.dumps(thread).encode()

    response = current_app.response_class(cache.rendered(tag, render), mimetype="application/json")
    return allow_origin(cache.public(response, tag, head.changed_at), head)


@bp.post("/comments")
@limiter.limit(lambda: current_app.config["COMMENT_RATE_LIMIT"],
               error_message="Too many comments from your address. Please wait a minute and try again.")
@db_engine.read_first
def create():
    try:
        data = request.get_json(silent=True) if request.is_json else None
    except RecursionError:  # absurdly nested JSON
        data = None
    if not isinstance(data, dict):
        abort(400, description="Send the comment as a JSON object with Content-Type: application/json.")
    site = site_or_404(data.get("site"))
    origin = request.headers.get("Origin")
    if origin and origin not in site.allowed_origins:
        abort(403, description=f"This site does not accept comments from pages on {origin}.")
    errors = {key: ["Must be text."] for key in FIELDS
              if data.get(key) is not None and key != "parent_id" and not isinstance(data[key], str)}
    parent_id = data.get("parent_id")
    if parent_id is not None and (isinstance(parent_id, bool) or not isinstance(parent_id, int)
                                  or not 0 < parent_id < 2**63):
        errors["parent_id"] = ["Must be the id of a published comment, or null."]
    if data.get("notify") is not None and not isinstance(data["notify"], bool):
        errors["notify"] = ["Must be true or false."]
    if errors:
        return allow_origin(jsonify(errors=errors), site), 400
    fields, errors = check_fields(ApiCommentForm, {key: data[key] for key in FIELDS if data.get(key) is not None})
    if errors:
        return allow_origin(jsonify(errors=errors), site), 400
    submission = Submission(
        url=fields["url"], title=fields["title"] or "", name=fields["name"], email=fields["email"],
        body=fields["body"], website=fields["website"] or "", parent_id=parent_id,
        ip=request.remote_addr, user_agent=request.user_agent.string,
        author_token=fields["author_token"] or None, notify=data.get("notify") is True)
    try:
        comment, author_token = comments.submit(site, submission)
        answer = jsonify(id=comment.id, status=comment.status.value, author_token=author_token)  # not read again
        db.session.commit()
    except Refused as refused:
        db.session.rollback()
        if refused.status_code == 400 and refused.field:
            return allow_origin(jsonify(errors={refused.field: [refused.message]}), site), 400
        return allow_origin(jsonify(error=refused.message), site), refused.status_code
    return allow_origin(answer, site), 201


@bp.get("/openapi.json")
def openapi():
    from .openapi import DOCUMENT

    return jsonify(DOCUMENT)
