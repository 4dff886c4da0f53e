"""The moderator's queue at /moderate/: pending, flagged, approved and rejected comments,
and the Approve / Reject / Flag decisions. Every view is scoped to the user's sites."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from . import comments
from .comments import ACTIONS, Conflict
from .extensions import db
from .forms import DecisionForm
from .rules import Status

bp = Blueprint("moderate", __name__, url_prefix="/moderate")

TABS = [Status.PENDING, Status.FLAGGED, Status.APPROVED, Status.REJECTED]
# The decisions offered in each view: a comment is never offered the status it already has.
OFFERED = {status: [action for action, to in ACTIONS.items() if to != status] for status in TABS}


@bp.before_request
@login_required
def require_login():
    pass


@bp.get("/", defaults={"status": "pending"})
@bp.get("/<any(pending, flagged, approved, rejected):status>")
def queue(status: str):
    status = Status(status)
    size = current_app.config["QUEUE_PAGE_SIZE"]
    before = request.args.get("before", type=int)
    rows = db.session.scalars(comments.queue(current_user, status, before).limit(size + 1)).all()
    return render_template(
        "moderate/queue.html", status=status, tabs=TABS, counts=comments.counts(current_user),
        comments=rows[:size], older=rows[size - 1].id if len(rows) > size else None,
        actions=OFFERED[status], form=DecisionForm())


@bp.post("/comments/<int:comment_id>/<any(approve, reject, flag):action>")
def decide(comment_id: int, action: str):
    comment = comments.comment_for(current_user, comment_id)
    if comment is None:
        abort(404, description=f"There is no comment {comment_id} in your sites.")
    back = request.form.get("back", "")
    back = back if back.startswith("/moderate/") and not back.startswith("//") else url_for("moderate.queue")
    form = DecisionForm()
    if not form.validate_on_submit():
        flash("The page was out of date; nothing was changed. Please try again.", "error")
        return redirect(back)
    try:
        comments.moderate(current_user, comment, action, form.version.data)
        db.session.commit()
    except Conflict as conflict:
        db.session.rollback()
        flash(str(conflict), "error")
        return redirect(back)
    flash(f"Comment by {comment.author_name} {comment.status.value}.", "success")
    return redirect(back)
