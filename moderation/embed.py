"""The widget: embed.js for the publisher's page, and the thread with its reply form that
embed.js shows in an iframe. The form works without JavaScript and without cookies."""
import os

from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request,
                   send_from_directory, url_for)
from sqlalchemy.exc import IntegrityError

from . import cache, comments, db_engine, tokens, workspace
from .comments import Refused, Submission, origin_of
from .extensions import csrf, db, limiter
from .errors import render_error
from .forms import ReportForm, WidgetForm
from .models import Comment, Site, UsedFormToken
from .security import CSP

bp = Blueprint("embed", __name__)
csrf.exempt(bp)  # the reply form carries its own signed token: readers have no session here

MAX_DEPTH = 5
# Stands in for the reply form's token in a cached page; every answer puts a fresh one there.
FORM_TOKEN_SLOT = "form-token-slot"
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


def frame_origin(site: Site, url: str, args=None) -> str:
    """The origin of the page that embeds us, for postMessage; only ever one the site allows."""
    origin = (request.args if args is None else args).get("origin", "")
    return origin if origin in site.allowed_origins else origin_of(url)


def threaded(flat: list[cache.Shown]) -> list[tuple[cache.Shown, int]]:
    """Comments in reading order with their depth, built without recursion."""
    children: dict[int | None, list[cache.Shown]] = {}
    ids = {comment.id for comment in flat}
    for comment in flat:
        parent = comment.parent_id if comment.parent_id in ids else None
        children.setdefault(parent, []).append(comment)
    ordered: list[tuple[cache.Shown, int]] = []
    stack = [(comment, 0) for comment in reversed(children.get(None, []))]
    while stack:
        comment, depth = stack.pop()
        ordered.append((comment, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(comment.id, [])))
    return ordered


def render_thread(site: Site, url: str, title: str, form: WidgetForm, status: int = 200,
                  message: str | None = None, posted: Comment | None = None, author_token: str = "",
                  token: str | None = None):
    article = comments.article_for(site, url)
    after = request.args.get("after", type=int)
    page = cache.thread_page(article.id if article else None, after)
    flat = page.comments
    reply_to = form.parent_id.data or request.args.get("reply_to", type=int)
    form.token.data = token or tokens.form_token(site.key, url)
    form.url.data, form.title.data = url, title
    if reply_to and reply_to in {comment.id for comment in flat}:
        form.parent_id.data = reply_to
    else:
        reply_to = form.parent_id.data = None
    html = render_template(
        "embed/thread.html", site=site, url=url, title=title, article=article,
        comments=threaded(flat), count=page.count, after=after, next_after=page.next,
        max_depth=MAX_DEPTH, form=form, message=message, posted=posted,
        author_token=author_token, reply_to=reply_to, parent_origin=frame_origin(site, url),
        closed=bool(article and article.closed))
    response = allow_framing(current_app.make_response((html, status)), site)
    if posted is not None:  # the reader's own pending comment: for this browser only, briefly
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


def frame_csp(site: Site) -> str:
    allowed = " ".join(site.allowed_origins) or "'none'"
    return CSP.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")


def allow_framing(response: Response, site: Site) -> Response:
    response.headers["Content-Security-Policy"] = frame_csp(site)
    return response


def widget_tag(head: cache.ThreadHead, url: str, args) -> str:
    """Everything the cached widget page depends on, from the thread's head and the query."""
    return cache.thread_tag("widget", head.site_key, head.rules_digest, url, args.get("title", "")[:300],
                            frame_origin(head, url, args), args.get("after", type=int), head.article_id,
                            head.version, head.closed)


def public_thread(key: str):
    """The thread as every reader sees it: rendered once per version of the article and
    cached, with only the reply form's token fresh on every answer.

    Not for shared caches, and without an ETag: a reply form's token posts one comment, so a
    page kept by a CDN, or revalidated by a browser that already posted with it, would hand
    an already used token to the next comment."""
    url = request.args.get("url")
    head = cache.thread_head(key, url if url and comments.is_clean_url(url) else "")
    if head is None:
        site_or_404(key)
    url = article_url_or_abort(head, url)

    def render() -> tuple[bytes, bytes]:
        site = db.session.get(Site, head.site_id)
        html = render_thread(site, url, request.args.get("title", "")[:300], WidgetForm(formdata=None),
                             token=FORM_TOKEN_SLOT).get_data()
        before, _, after = html.partition(FORM_TOKEN_SLOT.encode())
        return before, after

    response = current_app.make_response(with_form_token(cache.rendered(widget_tag(head, url, request.args), render),
                                                         head.site_key, url))
    response.headers["Cache-Control"] = "private, no-cache"
    return allow_framing(response, head)


def with_form_token(page: tuple[bytes, bytes], site_key: str, url: str) -> bytes:
    """The cached page, stored split where the reply form's token goes, with a fresh token."""
    before, after = page
    return b"".join((before, tokens.form_token(site_key, url).encode(), after))


@bp.get("/embed/<key>")
def thread(key: str):
    if not request.args.get("posted") and not request.args.get("reply_to"):
        return public_thread(key)
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
@limiter.limit(lambda: current_app.config["COMMENT_RATE_LIMIT"],
               error_message="Too many comments from your address. Please wait a minute and try again.")
@db_engine.read_first
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
    nonce = tokens.form_token_nonce(form.token.data)
    if earlier := already_posted(nonce):  # a double click or a retry: answer as the first time
        return redirect_to_receipt(site, url, title, earlier)
    if not form.validate():
        return render_thread(site, url, title, form, status=400,
                             message="Please correct the fields marked below; your text is kept.")
    submission = Submission(
        url=url, title=title, name=form.name.data, email=form.email.data, body=form.body.data,
        website=form.website.data or "", parent_id=form.parent_id.data, ip=request.remote_addr,
        user_agent=request.user_agent.string, author_token=form.author_token.data or None,
        honeypot_filled=bool(form.topic.data), seconds_to_fill=tokens.form_token_age(form.token.data),
        notify=form.notify.data)
    try:
        comment, author_token = comments.submit(site, submission)
        if nonce:
            db.session.add(UsedFormToken(nonce=nonce, comment_id=comment.id))
        db.session.commit()
    except Refused as refused:
        db.session.rollback()
        if earlier := already_posted(nonce):  # the same form, posted twice at once, won elsewhere
            return redirect_to_receipt(site, url, title, earlier)
        if refused.field in form:
            form[refused.field].errors = [*form[refused.field].errors, refused.message]
        return render_thread(site, url, title, form, status=refused.status_code, message=refused.message)
    except IntegrityError:
        db.session.rollback()
        if earlier := already_posted(nonce):
            return redirect_to_receipt(site, url, title, earlier)
        raise
    return redirect_to_receipt(site, url, title, comment, author_token)


def already_posted(nonce: str | None) -> Comment | None:
    """The comment a form token has already posted, if any."""
    used = db.session.get(UsedFormToken, nonce) if nonce else None
    return db.session.get(Comment, used.comment_id) if used else None


def redirect_to_receipt(site: Site, url: str, title: str, comment: Comment, author_token: str = ""):
    """Post/Redirect/Get to the thread, showing the reader their own comment."""
    author_token = author_token or (tokens.author_token_for(comment.author_key) if comment.author_key else "")
    receipt = tokens.receipt(comment.id, author_token)
    target = url_for("embed.thread", key=site.key, url=url, title=title,
                     origin=request.args.get("origin") or None, posted=receipt)
    return redirect(target + "#status", code=303)


@bp.errorhandler(429)
def too_many_requests(error):
    """The request rate limit on the reply form: the form comes back with the reader's text kept."""
    site = comments.site_by_key((request.view_args or {}).get("key"))
    form = WidgetForm()
    if request.endpoint != "embed.post" or site is None or not form.url.data:
        return render_error(error)
    url = article_url_or_abort(site, form.url.data)
    return render_thread(site, url, (form.title.data or "")[:300], form, status=429, message=error.description)


@bp.route("/embed/<key>/comments/<int:comment_id>/report", methods=["GET", "POST"])
def report(key: str, comment_id: int):
    """A reader reports a published comment (spam, abuse, off-topic, other); works without JS.
    The form carries a signed single-use token, and the reader's author token when the browser
    keeps one (the per-reader limit counts by it, else by IP)."""
    site = site_or_404(key)
    url = article_url_or_abort(site, request.args.get("url"))
    comment = db.session.get(Comment, comment_id)
    if (comment is None or comment.site_id != site.id or comment.article.url != url
            or (request.method == "GET" and comment.status != "approved")):
        abort(404, description="There is no such comment on this article.")
    form, message, problem, status = ReportForm(), None, None, 200
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin not in (*site.allowed_origins, origin_of(request.host_url),
                                     current_app.config["PUBLIC_URL"]):
            abort(403, description="This form was sent from a page this site does not allow.")
        nonce = tokens.report_token_nonce(form.token.data or "", site.key, comment.id)
        if nonce is None:
            problem, status = ("This report form had expired, so nothing was sent. "
                                    "Please choose a reason and press Send report again."), 400
        elif form.validate():
            reader = workspace.reader_of(tokens.author_key_from(form.author_token.data), request.remote_addr)
            try:
                message = workspace.report(comment, reader, form.reason.data, form.text.data or "", nonce)
                db.session.commit()
            except Refused as refused:
                db.session.rollback()
                message, status = refused.message, refused.status_code
            except IntegrityError:  # the same form, or the same reader, sent twice at once
                db.session.rollback()
                message, status = workspace.REPORT_FORM_USED, 409
        else:
            status = 400
    form.token.data = tokens.report_token(site.key, comment.id)
    html = render_template("embed/report.html", site=site, url=url, title=request.args.get("title", "")[:300],
                           comment=comment, form=form, message=message, problem=problem,
                           refused=status >= 400, parent_origin=frame_origin(site, url))
    response = allow_framing(current_app.make_response((html, status)), site)
    response.headers["Cache-Control"] = "no-store"
    return response
