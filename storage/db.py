"""Engine factory, Alembic migrations and health check.

SQLite (the default) runs with WAL, a busy timeout and enforced foreign keys, and SQLAlchemy emits
the `BEGIN` itself so that reads are transactional too and writers can take the write lock up
front (`immediate`). PostgreSQL always goes through psycopg 3.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Fixed key for pg_advisory_lock around migrations ("rbmigrat" in ASCII), shared by all replicas.
MIGRATION_LOCK_KEY = 0x72626D6967726174
# Alembic keeps its migration context in module globals: one migration per process at a time.
_PROCESS_MIGRATION_LOCK = threading.Lock()
_LOCK = sa.text("SELECT pg_advisory_lock(CAST(:key AS BIGINT))")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(CAST(:key AS BIGINT))")
# Execution option read by the SQLite `begin` hook: take the write lock at BEGIN.
_BEGIN_IMMEDIATE = "rollback_bot_begin_immediate"

_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first: switching to WAL below may have to wait for a lock
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def check_database_url(url: str) -> None:
    """Raise ``ValueError`` (saying why) unless ``url`` is a database URL the bot supports."""
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL") from None
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"{backend} is not supported")


def normalize_url(url: str) -> str:
    """Route `postgres://` and `postgresql://` URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, connect_args: Mapping[str, Any] | None = None) -> Engine:
    """Create the engine for `url` (SQLite file, SQLite memory, or PostgreSQL).

    `connect_args` is passed to the driver, e.g. `{"options": "-csearch_path=s"}` for PostgreSQL;
    libpq parameters in the URL query (`?options=-csearch_path%3Ds`) work as well.
    """
    parsed = make_url(normalize_url(url))
    args: dict[str, Any] = dict(connect_args or {})
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, args)
    # Sized for the bot's thread pools (HTTP, listeners, background work), not SQLAlchemy's 5+10.
    return sa.create_engine(
        parsed, connect_args=args, pool_pre_ping=True, pool_size=10, max_overflow=30
    )


def _make_sqlite_engine(url: sa.URL, args: dict[str, Any]) -> Engine:
    args.setdefault("check_same_thread", False)
    if url.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see its own empty database.
        engine = sa.create_engine(url, connect_args=args, poolclass=StaticPool)
    else:
        engine = sa.create_engine(url, connect_args=args, pool_size=20, max_overflow=40)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop the sqlite3 module from issuing its own (late, DML-only) BEGIN; see `_on_begin`.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_BEGIN_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def immediate(engine: Engine) -> Engine:
    """The same engine (same pool), whose SQLite transactions take the write lock at BEGIN.

    Read-then-write transactions on SQLite in WAL mode otherwise fail with "database is locked"
    instead of waiting when another writer commits first. No effect on PostgreSQL.
    """
    return engine.execution_options(**{_BEGIN_IMMEDIATE: True})


def alembic_config() -> Config:
    """An Alembic configuration pointing at `storage/migrations` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    """The newest migration revision shipped with the code."""
    return code_revisions()[0]


@cache
def code_revisions() -> tuple[str | None, frozenset[str]]:
    """The code's head and every revision of its migrations (read from the scripts once)."""
    script = ScriptDirectory.from_config(alembic_config())
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


SQLITE_MIGRATION_TRIES = 5


def migrate(engine: Engine) -> None:
    """Upgrade the database to head (on PostgreSQL under an advisory lock shared by replicas).

    On SQLite, processes starting together can still meet "database is locked" where SQLite
    answers at once instead of waiting (taking the file into WAL mode, a reader upgrading to a
    writer); an upgrade is idempotent, so it is tried again after a short pause."""
    for attempt in range(1, SQLITE_MIGRATION_TRIES + 1):
        try:
            _migrate_once(engine)
            return
        except sa.exc.OperationalError as exc:
            is_locked = engine.dialect.name == "sqlite" and "locked" in str(exc)
            if not is_locked or attempt == SQLITE_MIGRATION_TRIES:
                raise
            time.sleep(0.1 * 2**attempt)  # a competing process's migration, not an outcome


def _migrate_once(engine: Engine) -> None:
    config = alembic_config()
    is_postgres = engine.dialect.name == "postgresql"
    # On SQLite, BEGIN IMMEDIATE makes a second migrator wait for the first instead of failing.
    with _PROCESS_MIGRATION_LOCK, immediate(engine).connect() as conn:
        if is_postgres:
            conn.execute(_LOCK, {"key": MIGRATION_LOCK_KEY})
            conn.commit()  # the lock is session-level: it outlives this transaction
        try:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        finally:
            if is_postgres:
                conn.rollback()
                conn.execute(_UNLOCK, {"key": MIGRATION_LOCK_KEY})
                conn.commit()
