"""Engine-specific code lives here, and full-text search's in search.py. SQLite: WAL, a busy
timeout, foreign keys, synchronous=NORMAL, BEGIN IMMEDIATE for write transactions, and a queue
for the web's writers. PostgreSQL needs nothing beyond its pool settings (SQLALCHEMY_ENGINE_OPTIONS)."""
import fcntl
import functools
import os
import threading
import weakref
from typing import NamedTuple

from flask import current_app, g, has_request_context, request
from sqlalchemy import ColumnDefault, Insert, event, insert, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import Pool
from sqlalchemy.sql import Select

from .extensions import db

READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
_compiled: dict[tuple, "_Compiled"] = {}
_as_columns: dict[Select, tuple[type, Select]] = {}


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
    cursor.execute("PRAGMA temp_store=MEMORY")
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
    if not may_write():
        begin(connection, "BEGIN")
        return
    if has_request_context():
        wait_for_turn(connection)
    begin(connection, "BEGIN IMMEDIATE")


def begin(connection: Connection, sql: str) -> None:
    """On the driver's connection: exec_driver_sql would build an execution context and a result
    for a statement that returns nothing (most of what beginning a post's write transaction cost).
    A failure comes out as SQLAlchemy's own error, as from exec_driver_sql: a 503 when locked."""
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        connection.connection.driver_connection.execute(sql)
    except driver_error as error:
        raise DBAPIError.instance(sql, (), error, driver_error) from error


# Per thread: one lock file per database (flock excludes other open files, so each thread of a
# process needs its own), and the one whose turn it holds.
_turns = threading.local()


def wait_for_turn(connection: Connection) -> None:
    """Queue a web request's write transaction on a lock file beside the database (flock),
    held until its connection goes back to the pool, just after its commit or rollback.

    Why: when the write lock is taken, SQLite's busy handler sleeps 1, 2, 5, 10, ... ms
    between tries, while a comment's write transaction holds it for about a millisecond:
    posting workers spent a quarter of their time asleep with the lock long free (0.85 ms
    a post). The kernel wakes a writer waiting on flock the moment the turn is free.

    The wait has no timeout of its own, and needs none: the writer holding the turn runs
    only its transaction, whose statements give up at SQLite's busy timeout, and a turn
    ends with its connection's checkin or invalidation, or with its process. The command
    line does not queue: its long transactions wait for SQLite's lock, as before."""
    path = connection.engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    files = _turns.__dict__.setdefault("files", {})
    if path not in files:
        files[path] = os.open(path + "-writers", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(files[path], fcntl.LOCK_EX)  # at once if this thread holds it already
    _turns.held = files[path]


@event.listens_for(Pool, "checkin")
@event.listens_for(Pool, "invalidate")
def end_turn(*_) -> None:
    """The transaction is over, its connection back in the pool: the next writer's turn."""
    held = _turns.__dict__.pop("held", None)
    if held is not None:
        fcntl.flock(held, fcntl.LOCK_UN)


def may_write() -> bool:
    if not has_request_context():
        return True
    if request.method in READ_ONLY_METHODS:
        view = current_app.view_functions.get(request.endpoint)
        if getattr(view, "writes_first", False) and "first_transaction_began" not in g:
            g.first_transaction_began = True
            return True
        return False
    if g.get("read_first"):
        return g.pop("write_next", False)
    return True


def writes_first(view):
    """For a GET view that writes (opening a comment claims it): the request's first transaction,
    the login's and the view's own up to its commit, begins IMMEDIATE as a POST's does. A deferred
    transaction that has read cannot take SQLite's write lock once another connection committed
    since: SQLite refuses at once, without waiting (SQLITE_BUSY_SNAPSHOT), and the moderator
    would get a "try again". The transactions after that commit, the page's reads, are deferred."""
    view.writes_first = True
    return view


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
        if db.session.registry.has():  # the checks may have read outside the session alone
            db.session.close()
        g.write_next = True


def read_row(engine: Engine, query: Select, params: dict) -> tuple | None:
    """The first row of a read-only query, run on this thread's own DBAPI connection, outside
    the pool and without a SQLAlchemy Connection around it: a fifth of the cost, for the one
    query every public read runs.

    The values are the driver's own, not converted by the column types: SQLite gives JSON and
    datetimes as text, psycopg gives dicts and datetimes. The connection is in autocommit mode
    (SQLite's through tune_sqlite, psycopg's set here): one statement reads one consistent
    snapshot, and no transaction stays open between reads. A connection the server dropped
    (a restart, an idle timeout) is replaced once, as the pool's pre-ping would."""
    return _read(engine, _compile(engine, query), params, first_only=True)


def read_rows(source: "Engine | Session", query: Select, params: dict) -> list[tuple]:
    """Every row of a query, with the values converted by their column types, as the session
    gives them (a bool, a datetime, a dict from JSON), and no ORM or SQLAlchemy Connection
    around the statement: for the lookups of a new comment, which run for every post.

    source db.engine: read as read_row reads, outside the session, with no transaction to
    begin and end; for the checks before anything is written.
    source db.session: inside the session's transaction (begun if need be), on its own DBAPI
    connection, after a flush, so that it sees what the transaction has written, as an ORM
    query would; for the lookups under the write lock."""
    if isinstance(source, Engine):
        statement = _compile(source, query)
        rows = _read(source, statement, params, first_only=False)
    else:
        source.flush()
        connection = source.connection()
        statement = _compile(connection.engine, query)
        rows = _in_transaction(connection, statement, params)
    return [_converted(statement, row) for row in rows]


def read_value(source: "Engine | Session", query: Select, params: dict):
    """The first column of the first row (read_rows), or None when there is no row."""
    rows = read_rows(source, query, params)
    return rows[0][0] if rows else None


def read_detached(engine: Engine, query: Select, params: dict) -> list:
    """What an ORM query of one model (select(Site).where(...)) finds, read as read_rows reads,
    as instances detached from any session, as if loaded and the session then closed: to read,
    and to attach (session.add) without loading them again; not to change while detached."""
    if query not in _as_columns:
        model = query.column_descriptions[0]["entity"]
        _as_columns[query] = model, query.with_only_columns(*inspect(model).columns)
    model, columns_query = _as_columns[query]
    return [as_loaded(model, row) for row in read_rows(engine, columns_query, params)]


def insert_detached(session, model: type, values: dict, **related):
    """INSERT ... RETURNING every column, on the DBAPI connection of the session's transaction:
    the new row as a detached instance (as_loaded), its relationships `related` set as though
    loaded. A fifth of what the ORM's flush of a new object costs, for the insert of every post.

    Detached, not added to the session: an object in the session costs every later flush (each
    read_rows on the session makes one) and the commit, which expires it; for a post, 2.7% of
    its instructions. So the instance is for reading: what it loads is all it has (a relationship
    not given raises DetachedInstanceError), and a change made to it is not saved.
    The columns' Python defaults apply as in a flush, the server's through RETURNING; the ORM's
    insert events (before_insert...) do not."""
    row = dict(values)
    context = _RowBeingInserted(row)
    for key, default in _python_defaults(model):
        if key not in row:
            row[key] = default.arg(context) if default.is_callable else default.arg
    connection = session.connection()
    statement = _compile(connection.engine, _insert_of(model), column_keys=tuple(row))
    [inserted] = _in_transaction(connection, statement, row)
    instance = as_loaded(model, _converted(statement, inserted))
    for key, value in related.items():
        set_committed_value(instance, key, value)
    return instance


class _RowBeingInserted:
    """What a context-sensitive column default (Comment.body_hash's) asks of its context."""

    def __init__(self, row: dict):
        self.row = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict:
        return self.row


@functools.cache
def _python_defaults(model: type) -> list[tuple[str, ColumnDefault]]:
    defaults = []
    for column in inspect(model).local_table.columns:
        if column.default is None:
            continue
        if not (column.default.is_scalar or column.default.is_callable):
            raise TypeError(f"insert_detached cannot compute the default of {column} (a SQL expression)")
        defaults.append((column.key, column.default))
    return defaults


@functools.cache
def _insert_of(model: type) -> Insert:
    """INSERT ... RETURNING every column of the model's table."""
    mapper = inspect(model)
    return insert(mapper.local_table).returning(*mapper.columns)


def as_loaded(model: type, row) -> object:
    """A detached instance of the model from a row of all its columns (in inspect(model).columns
    order), with no changes pending, as the session leaves what it loaded once closed. Built
    as the ORM's own loading builds one, not through the constructor, whose attribute events
    record a change of every column only for make_transient_to_detached to forget it."""
    instance = inspect(model).class_manager.new_instance()
    instance.__dict__.update(zip(_attribute_keys(model), row))
    make_transient_to_detached(instance)
    return instance


@functools.cache
def _attribute_keys(model: type) -> list[str]:
    mapper = inspect(model)
    return [mapper.get_property_by_column(column).key for column in mapper.columns]


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]  # of the bound parameters, in the driver's order
    positional: bool
    literals: dict  # the values the query holds itself (Comment.status == Status.APPROVED)
    to_driver: dict  # per parameter: its conversion to the driver's value, or None
    from_driver: list  # per selected column: its conversion of the driver's value, or None


def _compile(engine: Engine, query: Select | Insert, column_keys: tuple[str, ...] | None = None) -> _Compiled:
    """Once per dialect and query (and, for an insert, the columns given): its SQL and the
    conversions the column types make."""
    key = (type(engine.dialect), query, column_keys)
    if key not in _compiled:
        dialect = engine.dialect
        compiled = query.compile(dialect=dialect, column_keys=column_keys)
        _compiled[key] = _Compiled(
            compiled.string, tuple(compiled.positiontup if compiled.positional else compiled.binds),
            compiled.positional,
            {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required},
            {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()},
            [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in query.exported_columns])
    return _compiled[key]


def _converted(statement: _Compiled, row: tuple) -> tuple:
    return tuple(value if convert is None else convert(value) for convert, value in zip(statement.from_driver, row))


def _bound(statement: _Compiled, params: dict) -> tuple[str, tuple | dict]:
    """The statement's SQL and its parameters as the driver takes them."""
    values = []
    for name in statement.names:
        value = params[name] if name in params else statement.literals[name]
        convert = statement.to_driver[name]
        values.append(value if convert is None else convert(value))
    return statement.sql, tuple(values) if statement.positional else dict(zip(statement.names, values))


def _read(engine: Engine, statement: _Compiled, params: dict, first_only: bool):
    sql, values = _bound(statement, params)
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        try:
            return fetch(reader(engine), sql, values, first_only)
        except driver_error:
            drop_reader(engine)
            return fetch(reader(engine), sql, values, first_only)
    except driver_error as error:  # as SQLAlchemy's own errors, for the error handlers (a 503)
        raise DBAPIError.instance(sql, values, error, driver_error) from error


def _in_transaction(connection: Connection, statement: _Compiled, params: dict) -> list:
    """Every row of the statement on the DBAPI connection of a transaction: nothing to retry,
    a failure is the transaction's, which its owner rolls back."""
    sql, values = _bound(statement, params)
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        return fetch(connection.connection.driver_connection, sql, values, first_only=False)
    except driver_error as error:
        raise DBAPIError.instance(sql, values, error, driver_error) from error


def fetch(connection, sql: str, values, first_only: bool):
    """The first row (or None), or every row, of one statement on a DBAPI connection."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql, values)
        return cursor.fetchone() if first_only else cursor.fetchall()
    finally:
        cursor.close()


# Per engine: (process id, thread id) -> a DBAPI connection detached from the engine's pool.
# Only the driver's connection is kept: SQLAlchemy's wrapper would keep the engine alive.
_readers: "weakref.WeakKeyDictionary[Engine, dict[tuple[int, int], object]]" = weakref.WeakKeyDictionary()


def reader(engine: Engine):
    """This thread's read connection (a new one after a fork: a socket is not shared with the parent)."""
    readers = _readers.get(engine)
    if readers is None:
        readers = _readers[engine] = {}
        event.listen(engine, "engine_disposed", lambda _: close_readers(readers))
    owner = (os.getpid(), threading.get_ident())
    connection = readers.get(owner)
    if connection is None:
        pooled = engine.raw_connection()
        pooled.detach()  # its own, outside the pool's size and checkout accounting
        connection = pooled.dbapi_connection
        if not is_sqlite(connection):
            connection.autocommit = True  # psycopg: no transaction left open between reads
        readers[owner] = connection
    return connection


def drop_reader(engine: Engine) -> None:
    connection = _readers.get(engine, {}).pop((os.getpid(), threading.get_ident()), None)
    if connection is not None:
        try:
            connection.close()
        except Exception:  # it is broken already; only its file descriptor is left to free
            pass


def close_readers(readers: dict) -> None:
    for owner in [owner for owner in readers if owner[0] == os.getpid()]:
        try:
            readers.pop(owner).close()
        except Exception:
            pass
