"""For admins: the whole audit log per site, with filters and a CSV export, and the stats page."""
import csv
import io
import json

from flask import Blueprint, Response, abort, current_app, render_template, request, stream_with_context
from flask_login import current_user, login_required

from . import queue as queries, stats as figures
from .extensions import db
from .models import AuditEvent

bp = Blueprint("oversight", __name__, url_prefix="/moderate")

CSV_COLUMNS = ("id", "created_at", "site_id", "comment_id", "actor", "action", "from_status", "to_status",
               "reason", "note", "detail")


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403, description="Only administrators can see the audit log and the stats.")


def log_filter() -> dict:
    return {"site_id": request.args.get("site", type=int), "actor": request.args.get("actor", "").strip(),
            "action": request.args.get("action", "").strip()}


@bp.get("/audit")
def audit_log():
    chosen = log_filter()
    before = request.args.get("before", type=int)
    query = queries.audit_log(current_user, **chosen)
    if before:
        query = query.where(AuditEvent.id < before)
    size = current_app.config["QUEUE_PAGE_SIZE"] * 2
    events = db.session.scalars(query.limit(size + 1)).all()
    return render_template("moderate/audit.html", events=events[:size], chosen=chosen,
                           sites=queries.sites_of(current_user),
                           older=events[size - 1].id if len(events) > size else None)


@bp.get("/audit.csv")
def audit_csv():
    """Every event the filters select, oldest first, as CSV (streamed, so any size works)."""
    query = queries.audit_log(current_user, **log_filter()).order_by(None).order_by(AuditEvent.id)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for event in db.session.scalars(query.execution_options(yield_per=500)):
            detail = dict(event.detail or {})
            writer.writerow([event.id, event.created_at.isoformat(timespec="seconds"), event.site_id,
                             event.comment_id or "", safe_cell(event.actor), event.action,
                             event.from_status or "", event.to_status or "", safe_cell(str(detail.pop("reason", ""))),
                             safe_cell(str(detail.pop("note", ""))), json.dumps(detail) if detail else ""])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-log.csv"})


def safe_cell(text: str) -> str:
    """A spreadsheet never runs a cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@bp.get("/stats")
def stats():
    sites = queries.sites_of(current_user)
    if not sites:
        abort(404, description="There are no sites yet.")
    site_id = request.args.get("site", type=int)
    site = next((s for s in sites if s.id == site_id), sites[0])
    return render_template("moderate/stats.html", site=site, sites=sites, stats=figures.for_site(site.id))
