"""The demo that `make run` serves: a news site, an admin, and an article page on another
origin (http://localhost:PORT/demo/) that embeds the widget from PUBLIC_URL. Only when DEMO is on."""
import secrets
from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, request

from . import comments, rules, sanitize
from .extensions import db
from .models import Comment, Role, Site, User
from .rules import Status

bp = Blueprint("demo", __name__, url_prefix="/demo")

SITE_NAME = "Riverside Gazette (demo)"
ADMIN_EMAIL = "admin@demo.example"
ARTICLE_PATH = "/demo/"
SEED_COMMENTS = [
    ("Ines Okafor", Status.APPROVED, "Finally! I have walked past those boarded-up warehouses for years. "
     "A park there would make the whole east bank feel alive again."),
    ("Tom Brennan", Status.APPROVED, "Who maintains it after it opens, though? The last riverside "
     "project looked great for a summer and then nobody cut the grass."),
    ("Priya Natarajan", Status.PENDING, "The clean-up estimate in the council papers is on page 14: "
     "https://example.org/council/riverside-budget.pdf. Worth a read before the vote."),
]


def demo_origin() -> str:
    port = urlsplit(current_app.config["PUBLIC_URL"]).port or 80
    return f"http://localhost:{port}"


def demo_site() -> Site | None:
    return db.session.scalar(sa.select(Site).where(Site.name == SITE_NAME))


@bp.get("/")
def article():
    site = demo_site()
    if site is None:
        abort(404, description="The demo site does not exist yet: run flask --app moderation demo.")
    if request.host_url.rstrip("/") != demo_origin():
        return redirect(demo_origin() + ARTICLE_PATH)
    public = current_app.config["PUBLIC_URL"]
    response = current_app.make_response(render_template("demo/article.html", site=site, public_url=public))
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src {public}; frame-src {public}; style-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
    return response


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Create (or refresh) the demo site, its admin and a few comments; print how to look around."""
    origin = demo_origin()
    site = demo_site()
    if site is None:
        site = Site(name=SITE_NAME, rules=rules.validate_rules(
            {"allowed_origins": [origin], "flood_seconds": 0}))
        db.session.add(site)
        db.session.flush()
        seed(site, origin + ARTICLE_PATH)
    password = secrets.token_urlsafe(12)
    admin = db.session.scalar(sa.select(User).where(User.email == ADMIN_EMAIL))
    if admin is None:
        admin = User(email=ADMIN_EMAIL, role=Role.ADMIN)
        db.session.add(admin)
    admin.set_password(password)
    admin.session_token = secrets.token_hex(16)
    db.session.commit()
    public = current_app.config["PUBLIC_URL"]
    click.echo(f"\n  Demo article (another origin, embeds the widget): {origin}{ARTICLE_PATH}")
    click.echo(f"  Moderation queue: {public}/moderate/")
    click.echo(f"  Demo admin: {ADMIN_EMAIL}  password: {password}\n")


def seed(site: Site, url: str) -> None:
    article = comments.get_or_create_article(site, url, "Council backs riverside park plan")
    for name, status, body in SEED_COMMENTS:
        html = sanitize.render(body)
        db.session.add(Comment(
            site_id=site.id, article_id=article.id, author_name=name,
            author_email=f"{name.split()[0].lower()}@reader.example", body=body, body_html=html,
            status=status, ip="192.0.2.10", user_agent="demo",
            reasons=list(rules.decide(rules.Draft(body, sanitize.count_links(html)), site.rules,
                                      rules.Facts()).reasons) if status == Status.PENDING else [],
        ))
    db.session.flush()


