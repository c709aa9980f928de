"""What every repository mixin stands on: the engine, its read/write sessions, row lookup."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlmodel import Session

from storage.db import code_revisions, immediate
from storage.errors import DatabaseBehind, DatabaseNotMigrated, DatabaseUnavailable
from storage.models import Assessment, Rollback, RollbackStep
from storage.repo.records import RecordNotFound

_Row = TypeVar("_Row", Assessment, Rollback, RollbackStep)
_ALEMBIC_VERSION = text("SELECT version_num FROM alembic_version")


class RepositoryBase:
    """The engine and the short transactions every query runs in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writers take SQLite's lock at BEGIN so read-then-write transactions wait, not fail.
        self._writer = immediate(engine)
        # SQLite has one writer at a time and its busy handler waits by sleeping with back-off,
        # which starves unlucky writers under load (seen in benchmarks/ack_latency.py: > 3 s).
        # Queuing this process's writers on a lock first keeps waits short and in order.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    def check_schema(self) -> None:
        """For /healthz (one small read): raise ``DatabaseNotMigrated`` when the database has no
        rollback-bot tables or ``DatabaseBehind`` when they are older than the code's migrations,
        ``DatabaseUnavailable`` when it cannot be read at all. A revision the code does not know
        is a newer release's (its migration ran first in a rolling deploy): not an error."""
        try:
            head, known = code_revisions()
        except Exception as exc:  # migration scripts missing or broken in this image: a 503
            raise DatabaseUnavailable(f"cannot read this release's migrations: {exc}") from exc
        try:
            with _unavailable_as_storage_error(self.engine), self.engine.connect() as conn:
                at = set(conn.execute(_ALEMBIC_VERSION).scalars())
        except SQLAlchemyError as exc:  # anything else: this database cannot be used now
            raise _unavailable(exc) from exc
        if head is None or head in at or (at and not at <= known):
            return
        raise DatabaseBehind(where_of(self.engine), ", ".join(sorted(at)) or None, head)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with (
            _unavailable_as_storage_error(self.engine),
            Session(self.engine, expire_on_commit=False) as s,
        ):
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            _unavailable_as_storage_error(self.engine),
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session


# SQLite: "no such table: rollbacks"; PostgreSQL (UndefinedTable): relation "rollbacks" does not…
_MISSING_TABLE = re.compile(
    r"no such table: (?P<sqlite>\S+)" r'|relation "(?P<pg>[^"]+)" does not exist'
)
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for UndefinedTable


_SECRET_PARAM = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def where_of(engine: Engine) -> str:
    """Which database, for people: driver, user, host, port, name and options. Never a
    password, not even one given as a query parameter (``?sslpassword=``): those show ``***``."""
    url = engine.url
    query = {k: "***" if _SECRET_PARAM.search(k) else v for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True)


@contextmanager
def _unavailable_as_storage_error(engine: Engine) -> Iterator[None]:
    """A database that cannot be reached reaches the callers as the bot's own
    ``DatabaseUnavailable``, one without the bot's tables as ``DatabaseNotMigrated`` (which
    says what to do); constraint violations (IntegrityError) stay for the methods that settle
    races with them."""
    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        table = _missing_table(exc)
        if table is not None:
            raise DatabaseNotMigrated(where_of(engine), table) from exc
        if isinstance(exc, ProgrammingError):  # a bug in a query, not the database's state
            raise
        raise _unavailable(exc) from exc
    except (InterfaceError, SATimeoutError) as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}")


def _missing_table(exc: OperationalError | ProgrammingError) -> str | None:
    """The table a query found missing, or None when the error is about something else."""
    orig = exc.orig
    is_pg = getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE
    if not is_pg and not isinstance(exc, OperationalError):
        return None
    found = _MISSING_TABLE.search(str(orig))
    return (found.group("sqlite") or found.group("pg")) if found else None


def _get_or_raise(session: Session, model: type[_Row], row_id: int) -> _Row:
    row = session.get(model, row_id)
    if row is None:
        raise RecordNotFound(f"{model.__name__} {row_id} not found")
    return row
