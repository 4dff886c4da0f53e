"""The moderator's workspace at /moderate/: the queues (tabs, site and reason filters, search),
the comment card and its page, and the decisions: Approve / Reject / Flag, edit, ban, bulk,
undo, and a small JSON feed for live counts. Every view is scoped to the user's sites."""
import hashlib
import json

import sqlalchemy as sa
from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required

from . import comments, db_engine, highlight, queue as queries, workspace
from .comments import ACTIONS, Conflict
from .extensions import db
from .forms import BAN_PERIODS, BanForm, BulkForm, DecisionForm, EditForm
from .models import Comment

bp = Blueprint("moderate", __name__, url_prefix="/moderate")

TAB_PATTERN = "<any(pending, flagged, reported, approved, rejected, all):tab>"


@bp.before_request
@login_required
def require_login():
    pass


def current_filter(tab: str) -> queries.Filter:
    """The tab and the filters in the query string, keeping only sites the user may see."""
    site_id = request.args.get("site", type=int)
    if site_id and current_user.site_ids() is not None and site_id not in current_user.site_ids():
        site_id = None
    reason = request.args.get("reason", "")
    return queries.Filter(tab=tab, site_id=site_id, reason=reason if reason in queries.REASONS else "",
                          q=request.args.get("q", "").strip()[:200])


def offered(comment: Comment) -> list[str]:
    """The decisions offered on a card: never the status it already has, unless readers
    reported it (then Approve keeps it published and clears the reports)."""
    return [action for action, to in ACTIONS.items() if to != comment.status or comment.reports]


def back_or_queue() -> str:
    back = request.form.get("back", "")
    return back if back.startswith("/moderate/") and not back.startswith("//") else url_for("moderate.queue")


@bp.get("/", defaults={"tab": "pending"})
@bp.get(f"/{TAB_PATTERN}")
def queue(tab: str):
    view = current_filter(tab)
    size = current_app.config["QUEUE_PAGE_SIZE"]
    before = request.args.get("before", type=int)
    rows = db.session.scalars(queries.page(current_user, view, before, size)).all()
    shown = rows[:size]
    ids = [comment.id for comment in shown]
    return render_template(
        "moderate/queue.html", view=view, tabs=queries.TABS, reasons=queries.REASONS,
        counts=queries.counts(current_user, view.site_id), cap=queries.COUNT_CAP, sites=queries.sites_of(current_user),
        comments=shown, older=rows[size - 1].id if len(rows) > size else None,
        offered=offered, form=DecisionForm(), bulk=BulkForm(formdata=None),
        highlighted=lambda c: highlight.highlighted(c.body_html, highlight.site_words(c.site.rules)),
        histories=queries.history_counts(shown), reviewers=queries.reviewers(current_user, ids),
        reports=workspace.report_summary([c.id for c in shown if c.reports]))


def comment_or_404(comment_id: int) -> Comment:
    comment = comments.comment_for(current_user, comment_id)
    if comment is None:
        abort(404, description=f"There is no comment {comment_id} in your sites.")
    return comment


def decided(comment: Comment) -> str:
    return f"Comment by {comment.author_name} {comment.status.value}."


def then(back: str):
    """Back to the queue, on the card after the one just decided (so focus stays in place)."""
    following = request.form.get("next", type=int)
    return redirect(f"{back}#c{following}" if following else back)


@bp.post("/comments/<int:comment_id>/<any(approve, reject, flag):action>")
def decide(comment_id: int, action: str):
    comment = comment_or_404(comment_id)
    back = back_or_queue()
    form = DecisionForm()
    if not form.validate_on_submit():
        flash("The page was out of date; nothing was changed. Please try again.", "error")
        return redirect(back)
    detail = {key: value for key, value in (("reason", form.reason.data), ("note", form.note.data)) if value}
    try:
        comments.moderate(current_user, comment, action, form.version.data, detail)
        db.session.commit()
    except Conflict as conflict:
        db.session.rollback()
        workspace.record_refused(current_user, comment, action, str(conflict), ACTIONS[action],
                                 seen_version=form.version.data, version=comment.version)
        db.session.commit()
        flash(str(conflict), "error")
        return redirect(back)
    flash(decided(comment), "success")
    return then(back)


@bp.get("/comments/<int:comment_id>")
@db_engine.writes_first
def card(comment_id: int):
    """One comment with its parent, its author's history, and the edit and ban forms.
    Opening it tells other moderators that this one is being reviewed."""
    comment = comment_or_404(comment_id)
    queries.claim(current_user, comment)
    db.session.commit()
    edit_form = EditForm(formdata=None, prefix="edit", body=comment.body, version=comment.version)
    return render_template(
        "moderate/comment.html", comment=comment, history=queries.history(comment),
        offered=offered(comment),
        form=DecisionForm(), edit_form=edit_form, ban_form=BanForm(formdata=None, prefix="ban"), periods=BAN_PERIODS,
        body=highlight.highlighted(comment.body_html, highlight.site_words(comment.site.rules)),
        reviewer=queries.reviewers(current_user, [comment.id]).get(comment.id),
        reports=workspace.report_summary([comment.id]).get(comment.id, {}))


@bp.post("/comments/<int:comment_id>/claim")
def claim(comment_id: int):
    queries.claim(current_user, comment_or_404(comment_id))
    db.session.commit()
    return "", 204


@bp.post("/comments/<int:comment_id>/edit")
def edit(comment_id: int):
    comment = comment_or_404(comment_id)
    form = EditForm(prefix="edit")
    if not form.validate_on_submit():
        flash(" ".join(error for errors in form.errors.values() for error in errors) or
              "The page was out of date; nothing was changed.", "error")
        return redirect(url_for("moderate.card", comment_id=comment.id))
    try:
        workspace.edit(current_user, comment, form.version.data, form.body.data, form.note.data or "")
        db.session.commit()
    except Conflict as conflict:
        db.session.rollback()
        workspace.record_refused(current_user, comment, "edit", str(conflict), seen_version=form.version.data,
                                 version=comment.version, edited=form.body.data, note=form.note.data or "")
        db.session.commit()
        flash(str(conflict), "error")
        return redirect(url_for("moderate.card", comment_id=comment.id))
    flash(f"Comment by {comment.author_name} edited; the original is in the audit log.", "success")
    return redirect(url_for("moderate.card", comment_id=comment.id))


@bp.post("/comments/<int:comment_id>/ban")
def ban(comment_id: int):
    comment = comment_or_404(comment_id)
    form = BanForm(prefix="ban")
    if not form.validate_on_submit():
        flash("Choose what to ban (email, IP or range) and for how long.", "error")
        return redirect(url_for("moderate.card", comment_id=comment.id))
    try:
        found = workspace.ban(current_user, comment, form.kind.data, int(form.days.data),
                              form.cidr.data or 24, form.note.data or "")
        db.session.commit()
    except ValueError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("moderate.card", comment_id=comment.id))
    flash(f"Banned {found.value} until {found.until:%Y-%m-%d %H:%M} UTC: "
          "their new comments on this site will be rejected.", "success")
    return redirect(url_for("moderate.card", comment_id=comment.id))


@bp.post("/comments/<int:comment_id>/reject-author")
def reject_author(comment_id: int):
    comment = comment_or_404(comment_id)
    if not BulkForm().validate_on_submit():
        flash("The page was out of date; nothing was changed. Please try again.", "error")
        return redirect(url_for("moderate.card", comment_id=comment.id))
    outcome = workspace.reject_author(current_user, comment)
    db.session.commit()
    flash(summary(outcome, "reject"), "success")
    return redirect(back_or_queue())


def summary(outcome: workspace.Outcome, action: str) -> str:
    done = ACTIONS[action].value
    text = f"{outcome.applied} comment{'s' * (outcome.applied != 1)} {done}."
    if outcome.skipped:
        text += f" {outcome.skipped} had changed meanwhile and were left alone."
    if outcome.more:
        text += f" More match the filter: repeat to continue ({workspace.BULK_LIMIT} at a time)."
    return text


@bp.post(f"/{TAB_PATTERN}/bulk/<any(approve, reject, flag):action>")
def bulk(tab: str, action: str):
    view = current_filter(tab)
    back = url_for("moderate.queue", tab=tab, **view.args())
    form = BulkForm()
    if not form.validate_on_submit():
        flash("The page was out of date; nothing was changed. Please try again.", "error")
        return redirect(back)
    detail = {"bulk": True, **({"reason": form.reason.data} if form.reason.data else {})}
    if form.everything.data:
        outcome = workspace.decide_matching(current_user, queries.matching(current_user, view), action, detail)
    else:
        seen = dict(pair.split(":", 1) for pair in request.form.getlist("ids") if pair.count(":") == 1)
        wanted = {int(key): int(value) for key, value in seen.items() if key.isdecimal() and value.isdecimal()}
        if not wanted:
            flash("Select some comments first (or tick “every comment matching the filter”).", "error")
            return redirect(back)
        found = db.session.scalars(queries.by_ids(current_user, list(wanted)))
        outcome = workspace.decide_many(current_user, [(c, wanted[c.id]) for c in found], action, detail)
    db.session.commit()
    flash(summary(outcome, action), "success")
    return redirect(back)


@bp.post("/undo")
def undo():
    back = back_or_queue()
    if not BulkForm().validate_on_submit():
        flash("The page was out of date; nothing was changed. Please try again.", "error")
        return redirect(back)
    last = workspace.last_decision(current_user)
    if last is None:
        flash("There is nothing of yours to undo.", "info")
        return redirect(back)
    try:
        comment = workspace.undo(current_user, last)
        db.session.commit()
    except Conflict as conflict:
        db.session.rollback()
        if (comment := db.session.get(Comment, last.comment_id)) is not None:
            workspace.record_refused(current_user, comment, "undo", str(conflict), last.from_status, undoes=last.id)
            db.session.commit()
        flash(f"Cannot undo: {conflict}", "error")
        return redirect(back)
    flash(f"Undone: the comment by {comment.author_name} is {comment.status.value} again.", "success")
    return redirect(f"{back}#c{comment.id}")


@bp.get(f"/{TAB_PATTERN}/live")
def live(tab: str):
    """Counts, how many new comments arrived above the newest shown, which comments on screen
    someone else decided or is reviewing; answered 304 when nothing changed (ETag)."""
    view = current_filter(tab)
    newest = request.args.get("newest", 0, type=int)
    seen = {}
    for pair in request.args.get("seen", "").split(",")[:200]:
        key, _, version = pair.partition(".")
        if key.isdecimal() and version.isdecimal():
            seen[int(key)] = int(version)
    changed = [] if not seen else [
        {"id": c.id, "message": comments.describe_change(c).replace("; your decision was not applied.", ".")}
        for c in db.session.scalars(queries.by_ids(current_user, list(seen))) if c.version != seen[c.id]]
    fresh = db.session.scalar(queries.matching(current_user, view).where(Comment.id > newest)
                              .with_only_columns(sa.func.count()).order_by(None)) if newest else 0
    payload = {"counts": queries.counts(current_user, view.site_id), "cap": queries.COUNT_CAP, "new": fresh,
               "changed": changed, "reviewing": queries.reviewers(current_user, list(seen))}
    etag = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
    if etag in request.if_none_match:
        return "", 304, {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    response = jsonify(payload)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response
