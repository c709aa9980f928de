"""The machine's PostgreSQL for the tests (127.0.0.1:5432, user postgres, database test): a
fresh schema per test, skipped when unreachable (a failure with ROLLBACK_BOT_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

_postgres_error: list[str | None] = []  # memo: checked once per session


def _postgres_unreachable() -> str | None:
    """None when the server answers, else the connection error."""
    if not _postgres_error:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _postgres_error.append(None)
        except psycopg.Error as exc:
            _postgres_error.append(str(exc).strip() or type(exc).__name__)
    return _postgres_error[0]


def require_postgres() -> None:
    error = _postgres_unreachable()
    if error is None:
        return
    message = f"PostgreSQL not reachable at 127.0.0.1:5432: {error}"
    if os.environ.get("ROLLBACK_BOT_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A database URL whose search_path is a new, empty schema (dropped afterwards)."""
    require_postgres()
    schema = f"rb_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def fresh_database(dialect: str, folder: Path) -> Iterator[str]:
    """A database URL nobody else uses: a new SQLite file in ``folder`` or a fresh schema."""
    if dialect == "sqlite":
        yield f"sqlite:///{folder / 'rollback-bot.db'}"
        return
    with fresh_schema() as url:
        yield url
