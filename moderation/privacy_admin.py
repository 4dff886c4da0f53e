"""The admin's personal-data page at /admin/privacy: export or erase what we keep about an email."""
import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, RadioField
from wtforms.validators import DataRequired, Email, InputRequired

from . import privacy
from .extensions import db
from .forms import clean_line

bp = Blueprint("privacy", __name__, url_prefix="/admin/privacy")


class ExportForm(FlaskForm):
    email = EmailField("Email address", filters=[clean_line], validators=[
        DataRequired("Please enter the email address."), Email("Please enter a valid email address.")])


class EraseForm(ExportForm):
    mode = RadioField("What happens to the comments", default="anonymise", choices=[
        ("anonymise", "Keep them as \"Anonymous\", removing the email, website, IP address and browser"),
        ("delete", "Delete them; a comment others replied to stays as \"[deleted]\"")],
        validators=[InputRequired("Please choose what happens to the comments.")])
    confirm = BooleanField("I understand this cannot be undone.",
                           validators=[DataRequired("Please confirm: erasing cannot be undone.")])


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403, description="Only an admin can export or erase personal data.")


@bp.get("/")
def index():
    return render_template("privacy/index.html", export_form=ExportForm(prefix="export"),
                           erase_form=EraseForm(prefix="erase"))


@bp.post("/export")
def export():
    form = ExportForm(prefix="export")
    if not form.validate():
        return render_template("privacy/index.html", export_form=form, erase_form=EraseForm(prefix="erase")), 400
    data = privacy.export_email(form.email.data, current_user.email)
    db.session.commit()
    response = current_app.response_class(json.dumps(data, indent=2, ensure_ascii=False),
                                          mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="personal-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/erase")
def erase():
    form = EraseForm(prefix="erase")
    if not form.validate():
        return render_template("privacy/index.html", export_form=ExportForm(prefix="export"), erase_form=form), 400
    result = privacy.erase_email(form.email.data, form.mode.data, current_user.email)
    db.session.commit()
    flash(f"Erased the personal data of {form.email.data}: {result.summary()}", "success")
    return redirect(url_for("privacy.index"))

