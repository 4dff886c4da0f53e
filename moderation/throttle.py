"""Login throttling: after a few failed logins for one account, or many from one address,
further attempts wait, longer after each failure. Unknown emails count like known ones, so
the answer never tells whether an account exists."""
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from .addresses import client_key
from .extensions import db
from .models import LoginThrottle, utcnow

FREE_FAILURES = {"email": 5, "ip": 20}  # failures allowed before the backoff starts
FIRST_WAIT = 30  # seconds, doubled by each further failure
LONGEST_WAIT = 15 * 60


def keys_for(email: str, ip: str | None) -> list[str]:
    keys = [f"email:{email.strip().lower()}"[:300]]
    if ip:
        keys.append(f"ip:{client_key(ip)}")
    return keys


def seconds_to_wait(keys: list[str]) -> int:
    """How long until these keys may try again; 0 when they may try now."""
    now = utcnow()
    waits = [(row.blocked_until - now).total_seconds() for key in keys
             if (row := db.session.get(LoginThrottle, key)) and row.blocked_until and row.blocked_until > now]
    return int(max(waits, default=0)) + bool(waits)


def record_failure(keys: list[str]) -> None:
    now = utcnow()
    for key in keys:
        row = db.session.get(LoginThrottle, key)
        if row is None:
            try:
                with db.session.begin_nested():
                    row = LoginThrottle(key=key, failures=0)
                    db.session.add(row)
            except IntegrityError:  # a concurrent failure created it
                row = db.session.get(LoginThrottle, key)
        row.failures += 1
        extra = row.failures - FREE_FAILURES[key.partition(":")[0]]
        if extra >= 0:
            row.blocked_until = now + timedelta(seconds=min(FIRST_WAIT * 2 ** min(extra, 20), LONGEST_WAIT))


def record_success(keys: list[str]) -> None:
    """A correct password clears the account's count (the address keeps its own)."""
    row = db.session.get(LoginThrottle, keys[0])
    if row is not None:
        db.session.delete(row)


def describe(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' * (seconds != 1)}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' * (minutes != 1)}"
