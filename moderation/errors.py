"""Error pages: JSON under /api/, HTML elsewhere; never a bare 500."""
from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from .extensions import db


def wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(error: HTTPException):
    if wants_json():
        response = jsonify(error=error.description)
    else:
        response = render_template("errors/error.html", error=error)
    return response, error.code


def handle_http(error: HTTPException):
    if error.code and error.code < 400:
        return error
    return render_error(error)


def handle_database_down(error: OperationalError):
    db.session.rollback()
    unavailable = ServiceUnavailable("The comment service cannot reach its database right now. "
                                     "Nothing was saved; please try again in a minute.")
    response, code = render_error(unavailable)
    return response, code, {"Retry-After": "30"}


def handle_unexpected(error: Exception):
    current_app.logger.exception("Unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    return render_error(InternalServerError("Something went wrong on our side; nothing was saved. "
                                            "Please try again."))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(Exception, handle_unexpected)
