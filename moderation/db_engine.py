"""Engine-specific code lives here and only here. SQLite: WAL, a busy timeout, foreign keys,
synchronous=NORMAL, and BEGIN IMMEDIATE for write transactions. PostgreSQL needs nothing beyond its pool settings
(SQLALCHEMY_ENGINE_OPTIONS)."""
import functools

from flask import g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select

from .extensions import db

READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
_compiled: dict[tuple[type, Select], tuple[str, tuple[str, ...] | None]] = {}


def is_sqlite(dbapi_connection) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "connect")
def tune_sqlite(dbapi_connection, connection_record) -> None:
    """WAL, a busy timeout and foreign keys for every SQLite connection; other engines untouched."""
    if not is_sqlite(dbapi_connection):
        return
    # We emit BEGIN ourselves (below): pysqlite's own implicit BEGIN is always DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the app or the
    # OS loses nothing and cannot corrupt the file; only a power cut may drop the last commits.
    # FULL would cost an fsync (milliseconds) on every comment posted.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def begin_sqlite(connection: Connection) -> None:
    """Take SQLite's write lock at BEGIN when the transaction may write.

    A DEFERRED transaction that reads and then writes cannot wait for the lock: when another
    worker committed meanwhile, SQLite answers "database is locked" at once, busy timeout or
    not. IMMEDIATE waits (up to the busy timeout) before reading anything. Reads (GET) stay
    DEFERRED so they never queue behind writers; the command line counts as a writer."""
    if connection.dialect.name != "sqlite":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE" if may_write() else "BEGIN")


def may_write() -> bool:
    if not has_request_context():
        return True
    if request.method in READ_ONLY_METHODS:
        return False
    if g.get("read_first"):
        return g.pop("write_next", False)
    return True


def read_first(view):
    """For a view that checks a lot before it writes a little (posting a comment): its reads
    begin DEFERRED, holding no lock, and only the transaction begun after start_writing()
    takes SQLite's write lock, from its BEGIN IMMEDIATE to its commit. Other writers are held
    up for the writes alone, not for the checks and the sanitizer."""
    @functools.wraps(view)
    def reading_first(*args, **kwargs):
        g.read_first = True
        return view(*args, **kwargs)
    return reading_first


def start_writing() -> None:
    """In a read_first view: end the read-only transaction (nothing was written in it) so that
    the writes begin their own. close(), not rollback(): the objects read so far stay loaded
    (detached) instead of being read again under the lock. What the checks found may change
    meanwhile: the caller looks up again, inside the write transaction, whatever must not.
    Elsewhere: nothing to do."""
    if has_request_context() and g.get("read_first"):
        db.session.close()
        g.write_next = True


def read_row(engine: Engine, query: Select, params: dict) -> tuple | None:
    """The first row of a read-only query, run on a pooled DBAPI connection without a SQLAlchemy
    Connection around it: a tenth of the cost, for the one query every public read runs.

    The values are the driver's own, not converted by the column types: SQLite gives JSON and
    datetimes as text, psycopg gives dicts and datetimes. On SQLite the query runs outside an
    explicit transaction (the driver is in autocommit mode, see tune_sqlite): one statement
    reads one consistent snapshot."""
    key = (type(engine.dialect), query)
    if key not in _compiled:
        compiled = query.compile(dialect=engine.dialect)
        _compiled[key] = compiled.string, compiled.positiontup if compiled.positional else None
    sql, positions = _compiled[key]
    values = tuple(params[name] for name in positions) if positions is not None else params
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, values)
            row = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()  # back to the pool, which rolls back what psycopg began
    except driver_error as error:  # as SQLAlchemy's own errors, for the error handlers (a 503)
        raise DBAPIError.instance(sql, values, error, driver_error) from error
    return row
