"""Logging moderators in and out of /moderate/."""
import secrets

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import URLSafeTimedSerializer

from . import throttle
from .extensions import db, limiter, login_manager
from .forms import LoginForm
from .models import User

bp = Blueprint("auth", __name__, url_prefix="/moderate")

# Checked against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY = User(email="", password_hash="scrypt:32768:8:1$yeK8CAGeRbv4qqID$1f0859d03a7ff7b3ffebbd0d36a01054cb53f573023659033c05f05bdb0beb8b874267013a04ad86c3035ed180c557fe0603bc47c8592dde559b60ef17f53fe9")


class SessionCookie(SecureCookieSessionInterface):
    """Flask's signed session cookie, its signer built once per secret key rather than for every
    request: building one signs a sample value to learn what the serializer gives."""

    def __init__(self):
        self.signer: tuple[tuple, URLSafeTimedSerializer | None] = ((), None)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if self.signer[0] != keys:
            self.signer = keys, super().get_signing_serializer(app)
        return self.signer[1]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session names the user and their session token; a changed token ends the session."""
    ident, _, token = user_id.partition(":")
    if not ident.isdigit():
        return None
    user = db.session.get(User, int(ident))
    if user is None or not user.active or user.session_token != token:
        return None
    return user


def safe_next(target: str | None) -> str:
    """Only a path on this service: never //host, a scheme, or a backslash trick."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("moderate.queue")
    if any(ord(ch) < 32 for ch in target):
        return url_for("moderate.queue")
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"],
               error_message="Too many login attempts from your address. Please wait a minute and try again.")
def login():
    form = LoginForm()
    if form.validate_on_submit():
        keys = throttle.keys_for(form.email.data, request.remote_addr)
        wait = throttle.seconds_to_wait(keys)
        if wait:
            flash(f"Too many failed attempts. Please wait {throttle.describe(wait)} and try again.", "error")
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(wait)}
        user = db.session.scalar(sa.select(User).where(sa.func.lower(User.email) == form.email.data.lower()))
        if user is None:
            _DUMMY.check_password(form.password.data)
        elif user.active and user.check_password(form.password.data):
            throttle.record_success(keys)
            db.session.commit()
            session.clear()  # a new session at login, so an earlier session id is worthless
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
        throttle.record_failure(keys)
        db.session.commit()
        flash("That email and password do not match an active account.", "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    # The session lives in a signed cookie: a new token makes any copy of it worthless too.
    current_user.session_token = secrets.token_hex(16)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
