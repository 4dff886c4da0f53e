"""Mail fixtures for the security tests: a real local SMTP server (aiosmtpd) that accepts, and
addresses where SMTP is down (nothing listening) or hangs (accepts, then never answers)."""
import socket
import threading

import pytest

from moderation.extensions import db
from moderation.notifications import NotificationSetting

from ..test_notifications import inbox  # noqa: F401 (a fixture: the local SMTP server)


class HangingServer:
    """Accepts TCP connections and never says a word, like an SMTP server stuck under load."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self):
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def hanging_smtp():
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture
def mail_each(app):
    """mail_each(user_id, site): the moderator asks for an email per held comment on the site."""
    def choose(user_id, site):
        with app.app_context():
            db.session.merge(NotificationSetting(user_id=user_id, site_id=site.id, mode="each"))
            db.session.commit()
    return choose
