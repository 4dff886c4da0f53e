"""Admin pages at /admin/: sites and their embed snippet, people and their sites, and each site's
settings (its rules, closed articles, trusted and untrusted authors, and the rule test bench) and
webhooks. Sites and people are for admins; a site's settings and webhooks also for the moderators
of that site."""
import secrets

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from . import comments, rule_preview, rules, webhooks
from .admin_forms import (AssignForm, BenchForm, DistrustEmailForm, SettingsForm, SiteForm, TrustForm, UserForm,
                          WebhookForm, lines)
from .extensions import db
from .models import Article, AuditEvent, AuthorTrust, Role, Site, User

bp = Blueprint("admin", __name__, url_prefix="/admin")

ARTICLES_SHOWN = 50


@bp.before_request
@login_required
def require_login():
    pass


def require_admin() -> None:
    if not current_user.is_admin:
        abort(404)


def visible_sites() -> sa.Select:
    site_ids = current_user.site_ids()
    query = sa.select(Site).order_by(Site.name, Site.id)
    return query if site_ids is None else query.where(Site.id.in_(site_ids))


def site_or_404(key: str) -> Site:
    """A site the current user may see; any other answers 404, as if it did not exist."""
    site = comments.site_by_key(key)
    site_ids = current_user.site_ids()
    if site is None or (site_ids is not None and site.id not in site_ids):
        abort(404, description=f"There is no site {key} among yours.")
    return site


def snippet(site: Site) -> str:
    base = current_app.config["PUBLIC_URL"]
    return (f'<div class="comments" data-site="{site.key}"></div>\n'
            f'<script src="{base}/embed.js" async></script>')


def audit(site: Site, action: str, comment_id: int | None = None, **detail) -> None:
    db.session.add(AuditEvent(site_id=site.id, comment_id=comment_id, user_id=current_user.id,
                              actor=current_user.email, action=action, detail=detail))


# --- sites -------------------------------------------------------------------


@bp.get("/")
def index():
    return redirect(url_for("admin.sites"))


@bp.get("/sites")
def sites():
    return render_template("admin/sites.html", sites=db.session.scalars(visible_sites()).all(),
                           form=SiteForm() if current_user.is_admin else None)


@bp.post("/sites")
def create_site():
    require_admin()
    form = SiteForm()
    if not form.validate():
        return render_template("admin/sites.html", sites=db.session.scalars(visible_sites()).all(), form=form), 400
    site = Site(name=form.name.data, rules=rules.validate_rules({"allowed_origins": lines(form.origins.data)}))
    db.session.add(site)
    db.session.flush()
    audit(site, "site-created", name=site.name, allowed_origins=site.allowed_origins)
    db.session.commit()
    flash(f"Created the site {site.name}. Paste its snippet into your article pages.", "success")
    return redirect(url_for("admin.site", key=site.key))


@bp.get("/sites/<key>")
def site(key: str):
    require_admin()
    site = site_or_404(key)
    moderators = db.session.scalars(
        sa.select(User).where(sa.or_(User.role == Role.ADMIN, User.all_sites, User.sites.contains(site)))
        .order_by(User.email)).all()
    return render_template("admin/site.html", site=site, snippet=snippet(site), moderators=moderators)


# --- people ------------------------------------------------------------------


def user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404, description=f"There is no user {user_id}.")
    return user


def with_site_choices(form: AssignForm) -> AssignForm:
    form.sites.choices = [(site.id, f"{site.name} ({site.key})")
                          for site in db.session.scalars(sa.select(Site).order_by(Site.name))]
    return form


def chosen_sites(form: AssignForm) -> list[Site]:
    return list(db.session.scalars(sa.select(Site).where(Site.id.in_(form.sites.data or []))))


@bp.get("/users")
def users():
    require_admin()
    return render_template("admin/users.html", users=db.session.scalars(sa.select(User).order_by(User.email)).all(),
                           form=with_site_choices(UserForm()))


@bp.post("/users")
def create_user():
    require_admin()
    form = with_site_choices(UserForm())
    if form.validate() and db.session.scalar(
            sa.select(User).where(sa.func.lower(User.email) == form.email.data.lower())):
        form.email.errors.append(f"There is already a user {form.email.data}.")
    if form.errors or form.email.errors:
        every = db.session.scalars(sa.select(User).order_by(User.email)).all()
        return render_template("admin/users.html", users=every, form=form), 400
    role = Role(form.role.data)
    user = User(email=form.email.data, role=role, sites=chosen_sites(form),
                all_sites=role == Role.MODERATOR and form.all_sites.data)
    user.set_password(form.password.data)
    db.session.add(user)
    db.session.commit()
    flash(f"Created the {role.value} {user.email}.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int):
    require_admin()
    user = user_or_404(user_id)
    form = with_site_choices(AssignForm())
    if request.method == "GET":
        form.all_sites.data, form.sites.data = user.all_sites, [site.id for site in user.sites]
    elif form.validate():
        user.sites = chosen_sites(form)
        user.all_sites = form.all_sites.data
        db.session.commit()
        flash(f"Saved the sites of {user.email}.", "success")
        return redirect(url_for("admin.user", user_id=user.id))
    return render_template("admin/user.html", user=user, form=form)


@bp.post("/users/<int:user_id>/<any(deactivate, activate):action>")
def set_active(user_id: int, action: str):
    require_admin()
    user = user_or_404(user_id)
    if user.id == current_user.id:
        flash("You cannot deactivate your own account.", "error")
        return redirect(url_for("admin.user", user_id=user.id))
    user.active = action == "activate"
    user.session_token = secrets.token_hex(16)  # ends every session of theirs either way
    db.session.commit()
    flash(f"{user.email} is {'active again' if user.active else 'deactivated; their sessions have ended'}.",
          "success")
    return redirect(url_for("admin.user", user_id=user.id))


# --- a site's settings -----------------------------------------------------------


def render_settings(site: Site, form: SettingsForm | None = None, status: int = 200, **extra):
    if form is None:
        form = SettingsForm(formdata=None)
        form.fill(site.rules)
    articles = db.session.scalars(sa.select(Article).where(Article.site_id == site.id)
                                  .order_by(Article.closed.desc(), Article.id.desc()).limit(ARTICLES_SHOWN)).all()
    marks = db.session.scalars(sa.select(AuthorTrust).where(AuthorTrust.site_id == site.id)
                               .order_by(AuthorTrust.id.desc())).all()
    extra.setdefault("bench", BenchForm(formdata=None))
    return render_template(
        "admin/settings.html", site=site, form=form, articles=articles, marks=marks,
        distrust=DistrustEmailForm(formdata=None, prefix="distrust"), stats=rule_preview.rule_stats(site),
        stats_days=rule_preview.STATS_DAYS, preview_size=rule_preview.PREVIEW_SIZE, **extra), status


@bp.get("/sites/<key>/settings")
def settings(key: str):
    return render_settings(site_or_404(key))


@bp.post("/sites/<key>/settings")
def save_settings(key: str):
    site = site_or_404(key)
    form = SettingsForm()
    new_rules = form.document(site.rules)
    if new_rules is None:
        flash("Nothing was saved: please correct the fields marked below.", "error")
        return render_settings(site, form, 400)
    if "preview" in request.form:
        replayed, changes = rule_preview.preview(site, new_rules)
        return render_settings(site, form, replayed=replayed, changes=changes, previewed=True)
    before = rules.with_defaults(site.rules)
    if new_rules == before:
        flash("The rules are unchanged.", "info")
        return redirect(url_for("admin.settings", key=site.key))
    site.rules = new_rules
    audit(site, "rules-changed", before=before, after=new_rules)
    db.session.commit()
    flash(f"Rules changed by {current_user.email}; the change is in the audit log.", "success")
    return redirect(url_for("admin.settings", key=site.key))


@bp.post("/sites/<key>/bench")
def bench(key: str):
    site = site_or_404(key)
    form = BenchForm()
    if not form.validate():
        return render_settings(site, bench=form, status=400)
    result = rule_preview.try_comment(site, form.body.data, form.name.data or "", form.email.data or "",
                                      form.website.data or "")
    return render_settings(site, bench=form, trial=result)


@bp.post("/sites/<key>/articles/<int:article_id>/<any(close, open):action>")
def close_article(key: str, article_id: int, action: str):
    site = site_or_404(key)
    article = db.session.scalar(sa.select(Article).where(Article.id == article_id, Article.site_id == site.id))
    if article is None:
        abort(404, description=f"There is no article {article_id} on this site.")
    article.closed = action == "close"
    audit(site, f"article-{'closed' if article.closed else 'opened'}", url=article.url)
    db.session.commit()
    flash(f"Comments are {'closed' if article.closed else 'open again'} on {article.title or article.url}.", "success")
    return redirect(url_for("admin.settings", key=site.key) + "#articles")


# --- trusted and untrusted authors ---------------------------------------------------


@bp.post("/sites/<key>/trust")
def trust(key: str):
    """Mark the author of a comment (from the queue) trusted or untrusted."""
    site = site_or_404(key)
    form = TrustForm()
    comment = comments.comment_for(current_user, form.comment_id.data) if form.validate() else None
    if comment is None or comment.site_id != site.id:
        abort(404, description="There is no such comment on this site.")
    trusted = form.trusted.data == "yes"
    if trusted and not comment.author_key:
        flash("This comment has no author token (it was imported), so its author cannot be trusted; "
              "a typed email is not proof enough.", "error")
        return redirect(request.referrer or url_for("admin.settings", key=site.key))
    db.session.execute(sa.delete(AuthorTrust).where(AuthorTrust.site_id == site.id,
                                                    AuthorTrust.author_key == comment.author_key))
    db.session.add(AuthorTrust(site_id=site.id, author_key=comment.author_key, author_name=comment.author_name,
                               email=None if trusted else comment.author_email.lower(), trusted=trusted,
                               marked_by=current_user.email))
    audit(site, "author-trusted" if trusted else "author-untrusted", comment_id=comment.id,
          author=comment.author_name)
    db.session.commit()
    flash(f"{comment.author_name} is now {'trusted' if trusted else 'untrusted'} on {site.name}.", "success")
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/moderate/") and not back.startswith("//")
                    else url_for("admin.settings", key=site.key) + "#trust")


@bp.post("/sites/<key>/distrust")
def distrust_email(key: str):
    """Mark an email untrusted: its comments always wait for a moderator."""
    site = site_or_404(key)
    form = DistrustEmailForm(prefix="distrust")
    if not form.validate():
        flash(" ".join(form.email.errors) or "The page was out of date; nothing was changed.", "error")
        return redirect(url_for("admin.settings", key=site.key) + "#trust")
    email = form.email.data.lower()
    db.session.add(AuthorTrust(site_id=site.id, email=email, trusted=False, marked_by=current_user.email))
    audit(site, "author-untrusted", email=email)
    db.session.commit()
    flash(f"Comments from {email} will always wait for a moderator.", "success")
    return redirect(url_for("admin.settings", key=site.key) + "#trust")


@bp.post("/sites/<key>/trust/<int:mark_id>/remove")
def remove_mark(key: str, mark_id: int):
    site = site_or_404(key)
    mark = db.session.scalar(sa.select(AuthorTrust).where(AuthorTrust.id == mark_id, AuthorTrust.site_id == site.id))
    if mark is None:
        abort(404, description=f"There is no mark {mark_id} on this site.")
    db.session.delete(mark)
    audit(site, "author-unmarked", author=mark.author_name, email=mark.email)
    db.session.commit()
    flash("The mark is removed.", "success")
    return redirect(url_for("admin.settings", key=site.key) + "#trust")


# --- webhooks ------------------------------------------------------------------------


def hook_or_404(site: Site, hook_id: int) -> webhooks.Webhook:
    hook = db.session.scalar(sa.select(webhooks.Webhook).where(webhooks.Webhook.id == hook_id,
                                                               webhooks.Webhook.site_id == site.id))
    if hook is None:
        abort(404, description=f"There is no webhook {hook_id} on this site.")
    return hook


def render_webhooks(site: Site, form: WebhookForm | None = None, status: int = 200, created=None):
    hooks = db.session.scalars(sa.select(webhooks.Webhook).where(webhooks.Webhook.site_id == site.id)
                               .order_by(webhooks.Webhook.id)).all()
    response = current_app.make_response((render_template(
        "admin/webhooks.html", site=site, hooks=hooks, deliveries=webhooks.deliveries([h.id for h in hooks]),
        form=form or WebhookForm(formdata=None), created=created), status))
    response.headers["Cache-Control"] = "no-store"  # a new hook's secret is on the page once
    return response


@bp.get("/sites/<key>/webhooks")
def site_webhooks(key: str):
    return render_webhooks(site_or_404(key))


@bp.post("/sites/<key>/webhooks")
def add_webhook(key: str):
    site = site_or_404(key)
    form = WebhookForm()
    if not form.validate():
        return render_webhooks(site, form, 400)
    hook = webhooks.register(site, form.url.data, form.events.data)
    audit(site, "webhook-added", url=hook.url, events=hook.events)
    db.session.commit()
    return render_webhooks(site, created=hook)


@bp.post("/sites/<key>/webhooks/<int:hook_id>/test")
def test_webhook(key: str, hook_id: int):
    site = site_or_404(key)
    hook = hook_or_404(site, hook_id)
    webhooks.enqueue_test(hook, site)
    audit(site, "webhook-tested", url=hook.url)
    db.session.commit()
    flash(f"A test event to {hook.url} is queued; the send-mail worker delivers it shortly. "
          "Reload this page to see how it went.", "success")
    return redirect(url_for("admin.site_webhooks", key=site.key))


@bp.post("/sites/<key>/webhooks/<int:hook_id>/delete")
def delete_webhook(key: str, hook_id: int):
    site = site_or_404(key)
    hook = hook_or_404(site, hook_id)
    db.session.delete(hook)
    audit(site, "webhook-removed", url=hook.url)
    db.session.commit()
    flash(f"Events are no longer sent to {hook.url}.", "success")
    return redirect(url_for("admin.site_webhooks", key=site.key))
