"""Webhooks: a site owner's URL told about comment events, signed with HMAC-SHA256 of the body."""
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from . import db_engine
from .extensions import db
from .models import Comment, Site, utcnow
from .notifications import OutboxMessage

EVENTS = ("comment.created", "comment.approved", "comment.rejected", "comment.reported")
TEST_EVENT = "webhook.test"
PRIVATE_HINT = "webhooks go only to public addresses unless the operator sets WEBHOOK_ALLOW_PRIVATE"


class Webhook(db.Model):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret: Mapped[str] = mapped_column(sa.String(64))
    events: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryError(Exception):
    """A webhook call that failed and will be retried."""


def payload(comment: Comment, event: str) -> dict:
    """What a webhook is told: public fields only (no email, IP or user agent)."""
    return {"event": event, "site": comment.site.key, "comment": {
        "id": comment.id, "parent_id": comment.parent_id, "status": comment.status.value,
        "author": comment.author_name, "website": comment.author_website, "body_html": comment.body_html,
        "article_url": comment.article.url, "created_at": comment.created_at.isoformat() + "Z"}}


HOOKS_OF_SITE = (sa.select(Webhook.id, Webhook.url, Webhook.events)  # built once: for every comment
                 .where(Webhook.site_id == sa.bindparam("site_id")))


def enqueue(comment: Comment, event: str) -> None:
    """Queue a call to every webhook of the comment's site that asked for this event."""
    for hook_id, url, events in db_engine.read_rows(db.session, HOOKS_OF_SITE, {"site_id": comment.site_id}):
        # One call per event and state of the comment: a second report of the same comment is not news.
        dedupe_key = f"hook:{hook_id}:{event}:{comment.id}:{comment.version}"
        if event not in events or db.session.scalar(
                sa.select(sa.exists().where(OutboxMessage.dedupe_key == dedupe_key))):
            continue
        body = json.dumps({**payload(comment, event), "sent_at": utcnow().isoformat() + "Z"}, separators=(",", ":"))
        db.session.add(OutboxMessage(kind="webhook", site_id=comment.site_id, recipient=url,
                                     subject=event, payload={"webhook_id": hook_id, "body": body},
                                     dedupe_key=dedupe_key))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_address(address: str) -> None:
    """Refuse loopback, private, link-local and other non-global addresses (unless allowed)."""
    ip = ipaddress.ip_address(address)
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if not ip.is_global and not current_app.config["WEBHOOK_ALLOW_PRIVATE"]:
        raise DeliveryError(f"{ip} is not a public address (set WEBHOOK_ALLOW_PRIVATE to allow it)")


def vetted_connection(url: str) -> http.client.HTTPConnection:
    """A connection to the URL's host at an address checked when connecting, so a DNS answer that
    changes between the check and the connection (rebinding) cannot reach a private address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError("the webhook URL must be http(s)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = current_app.config["WEBHOOK_TIMEOUT"]
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise DeliveryError(f"cannot resolve {parts.hostname}: {error}") from None
    address = infos[0][4][0]
    for info in infos:
        check_address(info[4][0])

    class Vetted(http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.create_connection((address, port), timeout)
            if isinstance(self, http.client.HTTPSConnection):
                self.sock = self._context.wrap_socket(self.sock, server_hostname=parts.hostname)

    return Vetted(parts.hostname, port, timeout=timeout)


def deliver(message: OutboxMessage) -> None:
    """POST one queued call; any answer but 2xx is a failure to retry. Redirects are not followed."""
    hook = db.session.get(Webhook, message.payload["webhook_id"])
    if hook is None:
        return  # the webhook was removed: nothing to deliver
    body = message.payload["body"].encode()
    parts = urlsplit(hook.url)
    connection = vetted_connection(hook.url)
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body, headers={
            "Content-Type": "application/json", "User-Agent": "moderation-webhooks",
            "X-Moderation-Event": message.subject, "X-Moderation-Delivery": str(message.id),
            "X-Moderation-Signature": signature(hook.secret, body)})
        status = connection.getresponse().status
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise DeliveryError(f"the endpoint answered HTTP {status}")


def validate_url(url: str) -> str:
    """The URL, if it is http(s) and its host is public (or private addresses are allowed);
    ValueError says what is wrong. Delivery checks the address again when it connects."""
    parts = urlsplit(url.strip())
    try:
        parts.port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or len(url) > 2000):
        raise ValueError("must be an http(s) URL without a user name, at most 2000 characters")
    if not current_app.config["WEBHOOK_ALLOW_PRIVATE"]:
        check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url.strip()


def check_host(host: str, port: int) -> None:
    """Refuse a host that is, or resolves to, a loopback or private address. A name that does not
    resolve yet is accepted: delivery will fail, and say so, until it does."""
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError(f"points at this machine ({host}); {PRIVATE_HINT}")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(info[4][0].partition("%")[0])
                         for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (socket.gaierror, UnicodeError):
            return
    for ip in addresses:
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_global:
            raise ValueError(f"points at {ip}, which is not a public address; {PRIVATE_HINT}")


def register(site: Site, url: str, events: list[str]) -> Webhook:
    unknown = [event for event in events if event not in EVENTS]
    if unknown or not events:
        raise ValueError(f"events must be among {', '.join(EVENTS)}")
    hook = Webhook(site_id=site.id, url=validate_url(url), secret=secrets.token_hex(32), events=list(events))
    db.session.add(hook)
    db.session.flush()
    return hook


def enqueue_test(hook: Webhook, site: Site) -> None:
    """Queue a "webhook.test" call to this hook alone, with a sample comment, to try the endpoint."""
    now = utcnow()
    body = json.dumps({"event": TEST_EVENT, "site": site.key, "comment": {
        "id": 0, "parent_id": None, "status": "approved", "author": "Test", "website": "",
        "body_html": "<p>A test event from the comment service.</p>", "article_url": "",
        "created_at": now.isoformat() + "Z"}, "sent_at": now.isoformat() + "Z"}, separators=(",", ":"))
    db.session.add(OutboxMessage(kind="webhook", site_id=site.id, recipient=hook.url, subject=TEST_EVENT,
                                 payload={"webhook_id": hook.id, "body": body},
                                 dedupe_key=f"hook:{hook.id}:{TEST_EVENT}:0:{secrets.token_hex(8)}"))


@dataclass
class Deliveries:
    """What the outbox says of one hook's calls (`purge` drops sent ones after 30 days)."""

    last: OutboxMessage | None = None  # the latest call tried
    failing: int = 0  # calls that failed and will be retried
    given_up: int = 0  # calls that failed every attempt

    def status(self) -> str:
        message = self.last
        if message is None:
            return "No call tried yet."
        if message.sent_at:
            return f"Delivered {message.subject} at {message.sent_at:%Y-%m-%d %H:%M} UTC."
        if message.failed_at:
            return f"Gave up on {message.subject} at {message.failed_at:%Y-%m-%d %H:%M} UTC: {message.last_error}"
        return f"{message.subject} failed ({message.attempts} attempt(s)), will be retried: {message.last_error}"


def deliveries(hook_ids: list[int]) -> dict[int, Deliveries]:
    """Per hook: its latest tried call, and how many of its calls are failing or were given up."""
    hook_id = OutboxMessage.payload["webhook_id"].as_integer()
    found = {hook: Deliveries() for hook in hook_ids}
    rows = db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.kind == "webhook", hook_id.in_(hook_ids), OutboxMessage.attempts > 0)
        .order_by(OutboxMessage.id)).all()
    for message in rows:
        seen = found[message.payload["webhook_id"]]
        seen.last = message
        if message.failed_at:
            seen.given_up += 1
        elif message.last_error and not message.sent_at:
            seen.failing += 1
    return found
