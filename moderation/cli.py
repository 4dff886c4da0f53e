"""The command line: flask --app moderation init-db | create-user | add-site | site-rules | demo."""
import json
import sys

import click
from flask.cli import with_appcontext
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app
from flask_migrate import upgrade

from . import rules
from .extensions import db
from .models import AuditEvent, Role, Site, User

MIN_PASSWORD = 10


def site_or_fail(key: str) -> Site:
    site = db.session.scalar(sa.select(Site).where(Site.key == key))
    if site is None:
        raise click.ClickException(f"There is no site with key {key!r} (add-site prints the key).")
    return site


def snippet(site: Site) -> str:
    base = current_app.config["PUBLIC_URL"]
    return (f'<div class="comments" data-site="{site.key}"></div>\n'
            f'<script src="{base}/embed.js" async></script>')


def read_password() -> str:
    """Prompt twice on a terminal; otherwise read a line (and an optional confirming line) from stdin."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
        confirmation = sys.stdin.readline()
        if confirmation and confirmation.rstrip("\r\n") != password:
            raise click.ClickException("The two passwords on standard input do not match.")
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"The password must be at least {MIN_PASSWORD} characters long.")
    return password


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the database schema, or upgrade it to the latest version. Safe to run twice."""
    upgrade(revision="heads")
    url = db.engine.url.render_as_string(hide_password=True)
    click.echo(f"The database at {url} is up to date.")


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--role", type=click.Choice([role.value for role in Role]), required=True,
              help="admin: every site and setting; moderator: the queue of the sites given.")
@click.option("--site", "site_keys", multiple=True, metavar="KEY",
              help="A site this moderator moderates (repeat for several). None given: every site.")
def create_user(email: str, role: str, site_keys: tuple[str, ...]) -> None:
    """Create a user; the password is prompted for (or read from standard input)."""
    try:
        email = validate_email(email, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as error:
        raise click.BadParameter(str(error), param_hint="EMAIL")
    if db.session.scalar(sa.select(User).where(sa.func.lower(User.email) == email.lower())):
        raise click.ClickException(f"A user with the email {email} already exists.")
    sites = [site_or_fail(key) for key in site_keys]
    user = User(email=email, role=Role(role), sites=sites, all_sites=role == Role.MODERATOR and not sites)
    user.set_password(read_password())
    db.session.add(user)
    db.session.commit()
    if user.is_admin:
        scope = "every site, as an admin"
    elif sites:
        scope = "the sites " + ", ".join(site.key for site in sites)
    else:
        scope = "every site (no --site given)"
    click.echo(f"Created {role} {email} for {scope}.")


@click.command("add-site")
@with_appcontext
@click.argument("name")
@click.option("--origin", "origins", multiple=True, required=True, metavar="ORIGIN",
              help="An origin whose pages may embed the comments, e.g. https://news.example.org")
def add_site(name: str, origins: tuple[str, ...]) -> None:
    """Create a site and print the snippet to paste into its article pages."""
    try:
        site_rules = rules.validate_rules({"allowed_origins": list(origins)})
    except rules.RulesError as error:
        raise click.BadParameter(str(error), param_hint="--origin")
    if not name.strip():
        raise click.BadParameter("The site needs a name.", param_hint="NAME")
    site = Site(name=name.strip()[:200], rules=site_rules)
    db.session.add(site)
    db.session.commit()
    click.echo(f"Created the site {site.name!r} with the key {site.key}.")
    click.echo("Paste this where the comments should appear on its article pages:\n")
    click.echo(snippet(site))


@click.command("site-rules")
@with_appcontext
@click.argument("key")
@click.option("--load", "path", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Replace the rules with those in this JSON file (all or nothing).")
def site_rules(key: str, path: str | None) -> None:
    """Print a site's rules as JSON, or replace them from a JSON file."""
    site = site_or_fail(key)
    if path is None:
        click.echo(json.dumps(rules.with_defaults(site.rules), indent=2, ensure_ascii=False))
        return
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except RecursionError:
        raise click.ClickException(f"{path} is not valid JSON: it is nested too deeply. Nothing was changed.")
    except (ValueError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{path} is not valid JSON: {error}. Nothing was changed.")
    try:
        new_rules = rules.validate_rules(data)
    except rules.RulesError as error:
        raise click.ClickException(f"{path}: {error}. Nothing was changed.")
    before = site.rules
    site.rules = new_rules
    db.session.add(AuditEvent(site_id=site.id, actor="command line", action="rules-changed",
                              detail={"before": before, "after": new_rules}))
    db.session.commit()
    click.echo(f"Replaced the rules of {site.key} from {path}.")


def init_app(app: Flask) -> None:
    for command in (init_db, create_user, add_site, site_rules):
        app.cli.add_command(command)
    from . import data_cli

    data_cli.init_app(app)
    if app.config["DEMO"]:
        from .demo import demo

        app.cli.add_command(demo)
