"""The widget: embed.js for the publisher's page, and the thread with its reply form that
embed.js shows in an iframe. The form works without JavaScript and without cookies."""
import os

from flask import (Blueprint, abort, current_app, redirect, render_template, request,
                   send_from_directory, url_for)

from . import comments, tokens
from .comments import Refused, Submission, origin_of
from .extensions import csrf, db
from .forms import WidgetForm
from .models import Comment, Site
from .security import CSP

bp = Blueprint("embed", __name__)
csrf.exempt(bp)  # the reply form carries its own signed token: readers have no session here

MAX_DEPTH = 5
AWAITING = "Your comment is awaiting moderation."


@bp.get("/embed.js")
def script():
    static = os.path.join(current_app.root_path, "static")
    response = send_from_directory(static, "embed.js", mimetype="text/javascript", max_age=300)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def site_or_404(key: str) -> Site:
    site = comments.site_by_key(key)
    if site is None:
        abort(404, description="There is no site with this key. Check the data-site value in your snippet.")
    return site


def article_url_or_abort(site: Site, url: str | None) -> str:
    if not url:
        abort(400, description="The widget needs the article's address (url).")
    try:
        comments.check_article_url(site, url)
    except Refused as refused:
        abort(refused.status_code, description=refused.message)
    return url


def frame_origin(site: Site, url: str) -> str:
    """The origin of the page that embeds us, for postMessage; only ever one the site allows."""
    origin = request.args.get("origin", "")
    return origin if origin in site.allowed_origins else origin_of(url)


def threaded(flat: list[Comment]) -> list[tuple[Comment, int]]:
    """Comments in reading order with their depth, built without recursion."""
    children: dict[int | None, list[Comment]] = {}
    ids = {comment.id for comment in flat}
    for comment in flat:
        parent = comment.parent_id if comment.parent_id in ids else None
        children.setdefault(parent, []).append(comment)
    ordered: list[tuple[Comment, int]] = []
    stack = [(comment, 0) for comment in reversed(children.get(None, []))]
    while stack:
        comment, depth = stack.pop()
        ordered.append((comment, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(comment.id, [])))
    return ordered


def render_thread(site: Site, url: str, title: str, form: WidgetForm, status: int = 200,
                  message: str | None = None, posted: Comment | None = None, author_token: str = ""):
    article = comments.article_for(site, url)
    flat = db.session.scalars(comments.approved_comments(article)).all() if article else []
    reply_to = form.parent_id.data or request.args.get("reply_to", type=int)
    form.token.data = tokens.form_token(site.key, url)
    form.url.data, form.title.data = url, title
    if reply_to and reply_to in {comment.id for comment in flat}:
        form.parent_id.data = reply_to
    else:
        reply_to = form.parent_id.data = None
    html = render_template(
        "embed/thread.html", site=site, url=url, title=title, article=article,
        comments=threaded(flat), max_depth=MAX_DEPTH, form=form, message=message, posted=posted,
        author_token=author_token, reply_to=reply_to, parent_origin=frame_origin(site, url),
        closed=bool(article and article.closed))
    response = current_app.make_response((html, status))
    allowed = " ".join(site.allowed_origins) or "'none'"
    response.headers["Content-Security-Policy"] = CSP.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")
    if posted is not None:  # the reader's own pending comment: for this browser only, briefly
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/embed/<key>")
def thread(key: str):
    site = site_or_404(key)
    url = article_url_or_abort(site, request.args.get("url"))
    title = request.args.get("title", "")[:300]
    receipt = tokens.read_receipt(request.args.get("posted"))
    posted = db.session.get(Comment, receipt["c"]) if receipt else None
    if posted is not None and posted.site_id != site.id:
        posted = None
    message = None
    if posted is not None:
        message = AWAITING if posted.status == "pending" else (
            "Thank you, your comment is published." if posted.status == "approved"
            else "Your comment was not accepted.")
    return render_thread(site, url, title, WidgetForm(formdata=None), posted=posted, message=message,
                         author_token=receipt["a"] if receipt and posted else "")


@bp.post("/embed/<key>")
def post(key: str):
    site = site_or_404(key)
    form = WidgetForm()
    url = article_url_or_abort(site, form.url.data)
    title = (form.title.data or "")[:300]
    origin = request.headers.get("Origin")
    if origin and origin not in (*site.allowed_origins, origin_of(request.host_url),
                                 current_app.config["PUBLIC_URL"]):
        abort(403, description="This form was sent from a page this site does not allow.")
    if not tokens.form_token_valid(form.token.data or "", site.key, url):
        return render_thread(site, url, title, form, status=400, message=(
            "This form had expired, so nothing was posted yet. Your text is still here: "
            "please press Post Comment again."))
    if not form.validate():
        return render_thread(site, url, title, form, status=400,
                             message="Please correct the fields marked below; your text is kept.")
    submission = Submission(
        url=url, title=title, name=form.name.data, email=form.email.data, body=form.body.data,
        website=form.website.data or "", parent_id=form.parent_id.data, ip=request.remote_addr,
        user_agent=request.user_agent.string, author_token=form.author_token.data or None)
    try:
        comment, author_token = comments.submit(site, submission)
        db.session.commit()
    except Refused as refused:
        db.session.rollback()
        if refused.field in form:
            form[refused.field].errors = [*form[refused.field].errors, refused.message]
        return render_thread(site, url, title, form, status=refused.status_code, message=refused.message)
    receipt = tokens.receipt(comment.id, author_token)
    target = url_for("embed.thread", key=site.key, url=url, title=title,
                     origin=request.args.get("origin") or None, posted=receipt)
    return redirect(target + "#status", code=303)


