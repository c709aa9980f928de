"""What every repository mixin stands on: the engine, its read/write sessions, row lookup."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlmodel import Session

from storage.db import immediate
from storage.errors import DatabaseUnavailable
from storage.models import Assessment, Rollback, RollbackStep
from storage.repo.records import RecordNotFound

_Row = TypeVar("_Row", Assessment, Rollback, RollbackStep)


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

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with _unavailable_as_storage_error(), Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            _unavailable_as_storage_error(),
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session


@contextmanager
def _unavailable_as_storage_error() -> Iterator[None]:
    """A database that cannot be reached reaches the callers as the bot's own
    ``DatabaseUnavailable``; constraint violations (IntegrityError) stay for the methods that
    settle races with them."""
    try:
        yield
    except (OperationalError, InterfaceError, SATimeoutError) as exc:
        raise DatabaseUnavailable(
            f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
        ) from exc


def _get_or_raise(session: Session, model: type[_Row], row_id: int) -> _Row:
    row = session.get(model, row_id)
    if row is None:
        raise RecordNotFound(f"{model.__name__} {row_id} not found")
    return row
