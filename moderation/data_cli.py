"""Commands for readers' data and telling people: personal-data export | erase, purge,
import wordpress | disqus | json, export, send-mail, webhook add | list | remove."""
import json
import os
import sys
import time

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from . import importers, notifications, privacy, webhooks
from .cli import site_or_fail
from .extensions import db
from .models import AuditEvent

CLI_ACTOR = "command line"


@click.group("personal-data")
def personal_data() -> None:
    """Export or erase everything stored about an email address, on every site."""


@personal_data.command("export")
@with_appcontext
@click.argument("email")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", metavar="FILE",
              help="Write the JSON here instead of standard output.")
def export_personal_data(email: str, output) -> None:
    """Print, as JSON, every comment written with EMAIL: articles, statuses, IPs, dates."""
    data = privacy.export_email(email, CLI_ACTOR)
    db.session.commit()
    output.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    click.echo(f"Exported {len(data['comments'])} comment(s) written with {email}.", err=True)


@personal_data.command("erase")
@with_appcontext
@click.argument("email")
@click.option("--mode", type=click.Choice(privacy.ERASE_MODES), required=True,
              help="anonymise: keep the comments as \"Anonymous\"; delete: remove them "
                   "(one with replies stays as \"[deleted]\").")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_personal_data(email: str, mode: str, yes: bool) -> None:
    """Erase the personal data of EMAIL on every site; audit-logged, cannot be undone."""
    if not yes:
        click.confirm(f"Erase ({mode}) every comment written with {email}? This cannot be undone",
                      abort=True, err=True)
    result = privacy.erase_email(email, mode, CLI_ACTOR)
    db.session.commit()
    click.echo(f"{email}: {result.summary()}")


@click.command("purge")
@with_appcontext
def purge() -> None:
    """Remove what has expired: IP addresses older than each site's ip_retention_days, old sent mail."""
    report = privacy.purge()
    db.session.commit()
    for line in report.lines():
        click.echo(line)


class CountingReader:
    """A binary file that moves a progress bar by the bytes read from it."""

    def __init__(self, file, bar):
        self.file, self.bar = file, bar

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.bar.update(len(data))
        return data


@click.group("import")
def import_group() -> None:
    """Import comments into a site from WordPress, Disqus or our own JSON export."""


def import_xml(kind: str, path: str, key: str) -> None:
    site = site_or_fail(key)
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as file, click.progressbar(length=size, label=f"Reading {os.path.basename(path)}",
                                                         file=sys.stderr) as bar:
            report = importers.import_file(site, kind, CountingReader(file, bar), CLI_ACTOR, os.path.basename(path),
                                           workers=importers.default_workers(size))
        db.session.commit()
    except importers.ImportFailed as error:
        db.session.rollback()
        raise click.ClickException(f"{path}, {error}. Nothing was imported.")
    for line in report.lines():
        click.echo(line)


@import_group.command("wordpress")
@with_appcontext
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", "key", required=True, metavar="KEY", help="The site that receives the comments.")
def import_wordpress(path: str, key: str) -> None:
    """Import a WordPress export (WXR) FILE: threads, dates, authors and moderation state.
    Safe to repeat: comments imported before are skipped."""
    import_xml("wordpress", path, key)


@import_group.command("disqus")
@with_appcontext
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", "key", required=True, metavar="KEY", help="The site that receives the comments.")
def import_disqus(path: str, key: str) -> None:
    """Import a Disqus XML export FILE: threads, dates, authors and moderation state.
    Safe to repeat: comments imported before are skipped."""
    import_xml("disqus", path, key)


@import_group.command("json")
@with_appcontext
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", "key", required=True, metavar="KEY", help="The site that receives the export.")
def import_json(path: str, key: str) -> None:
    """Load a site export made by `export KEY` (rules, articles, comments, audit log) into a site."""
    site = site_or_fail(key)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise click.ClickException(f"{path} is not valid JSON: {error}. Nothing was imported.")
    try:
        report = importers.import_site_json(site, data, CLI_ACTOR)
        db.session.commit()
    except importers.ImportFailed as error:
        db.session.rollback()
        raise click.ClickException(f"{path}: {error}. Nothing was imported.")
    for line in report.lines():
        click.echo(line)


@click.command("export")
@with_appcontext
@click.argument("key")
def export(key: str) -> None:
    """Print a site's comments, articles, rules and audit log as JSON (`import json` reads it back)."""
    data = importers.export_site(site_or_fail(key))
    click.echo(json.dumps(data, indent=1, ensure_ascii=False))


@click.command("send-mail")
@with_appcontext
@click.option("--watch", type=click.IntRange(1), metavar="SECONDS",
              help="Keep running, draining the outbox every SECONDS (otherwise drain once, for cron).")
def send_mail(watch: int | None) -> None:
    """Send the queued emails and webhook calls that are due, retrying failures with back-off."""
    while True:
        report = notifications.drain()
        click.echo(f"Sent {report.sent}; {report.retrying} will be retried; {report.failed} given up; "
                   f"{report.digests} digest(s) queued.")
        if not watch:
            return
        time.sleep(watch)


@click.group("webhook")
def webhook_group() -> None:
    """Register, list or remove a site's webhooks."""


@webhook_group.command("add")
@with_appcontext
@click.argument("key")
@click.argument("url")
@click.option("--event", "events", multiple=True, type=click.Choice(webhooks.EVENTS),
              help="An event to send (repeat for several). None given: every event.")
def add_webhook(key: str, url: str, events: tuple[str, ...]) -> None:
    """Send the site's comment events to URL, signed with a secret printed once."""
    site = site_or_fail(key)
    try:
        hook = webhooks.register(site, url, list(events or webhooks.EVENTS))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="URL")
    db.session.add(AuditEvent(site_id=site.id, actor=CLI_ACTOR, action="webhook-added",
                              detail={"url": hook.url, "events": hook.events}))
    db.session.commit()
    click.echo(f"Webhook {hook.id} sends {', '.join(hook.events)} to {hook.url}.")
    click.echo(f"Its secret (the X-Moderation-Signature header is sha256=HMAC-SHA256 of the body with it): {hook.secret}")


@webhook_group.command("list")
@with_appcontext
@click.argument("key")
def list_webhooks(key: str) -> None:
    """Print the site's webhooks."""
    site = site_or_fail(key)
    for hook in db.session.scalars(sa.select(webhooks.Webhook).where(webhooks.Webhook.site_id == site.id)):
        click.echo(f"{hook.id}\t{hook.url}\t{','.join(hook.events)}")


@webhook_group.command("remove")
@with_appcontext
@click.argument("key")
@click.argument("webhook_id", type=int)
def remove_webhook(key: str, webhook_id: int) -> None:
    """Stop sending events to a webhook."""
    site = site_or_fail(key)
    hook = db.session.get(webhooks.Webhook, webhook_id)
    if hook is None or hook.site_id != site.id:
        raise click.ClickException(f"The site {key} has no webhook {webhook_id}.")
    db.session.delete(hook)
    db.session.add(AuditEvent(site_id=site.id, actor=CLI_ACTOR, action="webhook-removed", detail={"url": hook.url}))
    db.session.commit()
    click.echo(f"Removed webhook {webhook_id}.")


def init_app(app: Flask) -> None:
    for command in (personal_data, purge, import_group, export, send_mail, webhook_group):
        app.cli.add_command(command)
