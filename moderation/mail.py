"""Pages behind the links in emails: confirm an approve / reject (acting on POST only), a reader's
"confirm my email address" and "Publish my comment" (on POST only too: mail scanners open links),
and unsubscribe (one click, RFC 8058). All are authorised by a signed token, not a session."""
import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField
from wtforms.validators import InputRequired, NumberRange

from . import comments, notifications, tokens
from .comments import Conflict
from .extensions import csrf, db
from .models import Comment, Site, User, VerifiedEmail, utcnow
from .notifications import NotificationSetting

bp = Blueprint("mail", __name__, url_prefix="/mail")

EXPIRED = ("This link has expired or is not valid. Open the moderation queue to decide on the comment, "
           "or ask for a new email.")


class ConfirmForm(FlaskForm):
    version = IntegerField(validators=[InputRequired()])


def link_target(token: str):
    """The comment and moderator a moderation link names, if it is valid and they still may act."""
    data = notifications.read_moderation_link(token)
    user = db.session.get(User, data["u"]) if data else None
    if user is None or not user.is_active:
        return None, None, None
    comment = comments.comment_for(user, data["c"])
    return (comment, user, data["a"]) if comment else (None, None, None)


def no_store(page: str, status: int = 200):
    return page, status, {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


@bp.route("/moderate/<token>", methods=["GET", "POST"])
def confirm(token: str):
    comment, user, action = link_target(token)
    if comment is None:
        return no_store(render_template("mail/message.html", title="Link not valid", message=EXPIRED), 400)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            comments.moderate(user, comment, action, form.version.data)
            db.session.commit()
        except Conflict as conflict:
            db.session.rollback()
            return no_store(render_template("mail/message.html", title="Nothing changed", message=str(conflict)), 409)
        return no_store(render_template("mail/message.html", title="Done",
                                        message=f"The comment by {comment.author_name} is {comment.status.value}."))
    form.version.data = comment.version
    return no_store(render_template("mail/confirm.html", comment=comment, action=action, form=form))


class ReaderConfirmForm(FlaskForm):
    """The reader's confirmation: a button, with the CSRF token of the page they saw."""


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str):
    """The one link sent after a reader's first approved comment: confirming proves the address is theirs."""
    try:
        data = tokens.read_reader_link(tokens.VERIFY_EMAIL_SALT, token)
    except tokens.LinkError as error:
        return no_store(render_template("mail/message.html", title="Link not valid", message=str(error)), 400)
    proof = db.session.get(VerifiedEmail, data["v"]) if isinstance(data.get("v"), int) else None
    if proof is None:  # erased since
        return no_store(render_template("mail/message.html", title="Nothing to confirm", message=(
            "We hold nothing for this address on this site any more, so there is nothing to confirm.")), 404)
    form = ReaderConfirmForm()
    if form.validate_on_submit():
        if proof.verified_at is None:
            proof.verified_at = utcnow()
        db.session.commit()
        return no_store(render_template("mail/message.html", title="Email address confirmed", message=(
            f"Thank you: {proof.email} is confirmed for comments on {proof.site.name}. When you comment there from "
            "another browser or device, we email you a link that publishes your comment with one click.")))
    return no_store(render_template("mail/verify_email.html", proof=proof, form=form))


@bp.route("/publish/<token>", methods=["GET", "POST"])
def publish_comment(token: str):
    """A "Publish my comment" link, mailed to a verified address for a comment from a new browser."""
    try:
        data = tokens.read_reader_link(tokens.PUBLISH_COMMENT_SALT, token)
    except tokens.LinkError as error:
        return no_store(render_template("mail/message.html", title="Link not valid", message=(
            f"{error} Your comment still waits for a moderator.")), 400)
    comment = db.session.get(Comment, data["c"]) if isinstance(data.get("c"), int) else None
    proof = db.session.get(VerifiedEmail, data["v"]) if isinstance(data.get("v"), int) else None
    if (comment is None or proof is None or proof.verified_at is None or comment.site_id != proof.site_id
            or comment.author_email.strip().lower() != proof.email):
        return no_store(render_template("mail/message.html", title="Nothing to publish", message=(
            "This comment, or the confirmation of its email address, is no longer here, so nothing was published.")),
            404)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            comments.publish_by_email(comment, form.version.data)
            db.session.commit()
        except Conflict as conflict:
            db.session.rollback()
            return no_store(render_template("mail/message.html", title="Nothing changed", message=str(conflict)), 409)
        author_token = tokens.author_token_for(comment.author_key) if comment.author_key else ""
        return no_store(render_template("mail/published.html", comment=comment, author_token=author_token))
    form.version.data = comment.version
    return no_store(render_template("mail/publish_comment.html", comment=comment, form=form))


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    if notifications.read_unsubscribe_token(token) is None:
        return no_store(render_template("mail/message.html", title="Link not valid", message=EXPIRED), 400)
    return no_store(render_template("mail/unsubscribe.html", token=token))


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # one-click unsubscribe is a cookie-less POST from the mail provider; the token is the proof
def unsubscribe(token: str):
    data = notifications.read_unsubscribe_token(token)
    if data is None:
        return no_store(render_template("mail/message.html", title="Link not valid", message=EXPIRED), 400)
    said = notifications.unsubscribe(data)
    db.session.commit()
    return no_store(render_template("mail/message.html", title="Unsubscribed", message=said))


class SettingForm(FlaskForm):
    class Meta:
        csrf = False  # one form per site on one page; CSRFProtect checks the page's single token

    mode = RadioField("Email me", default="off", choices=[
        ("off", "Never"), ("each", "For each held comment"), ("digest", "A digest of held comments")])
    digest_minutes = IntegerField("Digest every (minutes)", default=60, validators=[
        NumberRange(5, 7 * 24 * 60, message="Choose between 5 minutes and a week (10080).")])


def sites_of(user: User) -> list[Site]:
    query = sa.select(Site).order_by(Site.name)
    if user.site_ids() is not None:
        query = query.where(Site.id.in_(user.site_ids()))
    return db.session.scalars(query).all()


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    """Each moderator chooses, per site, how they hear about held comments."""
    sites = sites_of(current_user)
    forms = {}
    for site in sites:
        setting = db.session.get(NotificationSetting, (current_user.id, site.id))
        forms[site.id] = SettingForm(prefix=f"s{site.id}", obj=setting)
    if request.method == "POST":
        if all(form.validate() for form in forms.values()):
            for site in sites:
                form = forms[site.id]
                setting = db.session.get(NotificationSetting, (current_user.id, site.id))
                if setting is None:
                    setting = NotificationSetting(user_id=current_user.id, site_id=site.id)
                    db.session.add(setting)
                setting.mode, setting.digest_minutes = form.mode.data, form.digest_minutes.data
            db.session.commit()
            flash("Your email settings are saved.", "success")
            return redirect(url_for("mail.settings"))
        flash("Please correct the settings marked below; nothing was saved.", "error")
    return render_template("mail/settings.html", sites=sites, forms=forms)
