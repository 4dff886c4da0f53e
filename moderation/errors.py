"""Error pages: JSON under /api/, HTML elsewhere; never a bare 500."""
from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import (HTTPException, InternalServerError, RequestEntityTooLarge,
                                 ServiceUnavailable)

from .extensions import db


def wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(error: HTTPException):
    if wants_json():
        response = jsonify(error=error.description)
    else:
        # A reader's comment that could not be saved is shown back, so it is never lost.
        unsaved = error.code >= 500 and request.method == "POST" and request.path.startswith("/embed/")
        kept = request.form.get("body", "") if unsaved else ""
        response = render_template("errors/error.html", error=error, kept=kept)
    return response, error.code


def handle_http(error: HTTPException):
    if error.code and error.code < 400:
        return error
    if isinstance(error, RequestEntityTooLarge) and error.description == RequestEntityTooLarge.description:
        error = RequestEntityTooLarge("This request is too large: a comment can be at most 10,000 characters. "
                                      "Please shorten it and try again.")
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
