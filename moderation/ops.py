"""For operators running several app servers: /healthz for the load balancer, and one JSON
log line per request carrying a request id (X-Request-ID, echoed or generated)."""
import json
import logging
import re
import secrets
import sys
import time

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from .extensions import db

bp = Blueprint("ops", __name__)
log = logging.getLogger("moderation.requests")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
STDERR = logging.StreamHandler(sys.stderr)  # the request log's own handler: each line as it is
STDERR.setFormatter(logging.Formatter("%(message)s"))


@bp.get("/healthz")
def healthz():
    """200 when the database answers, 503 otherwise: take this node out of the pool."""
    try:
        db.session.execute(sa.select(1))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        current_app.logger.warning("Health check: the database does not answer", exc_info=True)
        response = jsonify(status="unavailable", error="The database does not answer.")
        response.status_code = 503
    else:
        response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def request_id(incoming: str) -> str:
    """The load balancer's X-Request-ID when it is a sane one, else a new one."""
    return incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)


def log_line(request_id: str, method: str, path: str, status: int, started: float) -> None:
    """No IP address or query string in the line: logs outlive the retention rules.

    The same JSON as json.dumps of a dict, written out by hand (the request id is one of
    REQUEST_ID's characters or hex): the dict and its encoding cost a third of a cached read's
    own work. While the logger is as init_app set it up, the line goes straight to its handler's
    stream, as the handler would write it: a LogRecord and its trip through the logging module
    cost 5% of a cached read. A handler or filter added since gets a record, as usual."""
    if not log.isEnabledFor(logging.INFO):
        return
    duration = round((time.perf_counter() - started) * 1000, 2)
    line = (f'{{"request_id": "{request_id}", "method": {json.dumps(method)}, "path": {json.dumps(path)}, '
            f'"status": {status}, "duration_ms": {duration}}}')
    if log.handlers != [STDERR] or log.filters or STDERR.filters:
        log.handle(record_of(line))
        return
    try:
        with STDERR.lock:
            STDERR.stream.write(line + STDERR.terminator)
            STDERR.stream.flush()
    except Exception:  # as the handler does: reported on stderr, never the request's failure
        STDERR.handleError(record_of(line))


def record_of(line: str) -> logging.LogRecord:
    return log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None)


def start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id(request.headers.get("X-Request-ID", ""))


def logged_path() -> str:
    """The path, with a token in it (the links in emails) logged as "<token>": the token is the
    key to a moderator's decision or a reader's subscription, and logs are read by many."""
    if request.url_rule is not None and "token" in (request.view_args or {}):
        return request.url_rule.rule
    return request.path


def log_request(response: Response) -> Response:
    if "request_id" not in g:  # an earlier before_request hook answered first
        start_request()
    response.headers["X-Request-ID"] = g.request_id
    if current_app.config["REQUEST_LOG"]:
        log_line(g.request_id, request.method, logged_path(), response.status_code, g.request_started)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(start_request)
    app.after_request(log_request)
    if not log.handlers:  # one handler per process, however many apps are created
        log.addHandler(STDERR)
        log.setLevel(logging.INFO)
        log.propagate = False
    log.disabled = False  # Alembic's logging.fileConfig (init-db in this process) disables it
