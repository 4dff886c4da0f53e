"""The Flask extensions, created unbound and initialised in create_app."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from .addresses import client_key


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()


def client_network() -> str:
    """Whom a request rate limit counts: the client's IPv4 address, or its IPv6 /64, which one
    household or server usually holds whole."""
    return client_key(get_remote_address())


# Storage and switches come from the RATELIMIT_* config; limits are set per view.
limiter = Limiter(client_network, headers_enabled=True)
