"""Fixtures: each storage test runs on SQLite (a temp file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

from storage.db import make_engine, migrate
from storage.repository import Repository

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


def _require_postgres() -> None:
    error = _postgres_unreachable()
    if error is None:
        return
    message = f"PostgreSQL not reachable at 127.0.0.1:5432: {error}"
    if os.environ.get("ROLLBACK_BOT_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL nobody else uses: a fresh SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rollback-bot.db'}"
        return
    _require_postgres()
    schema = f"rb_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the empty test database."""
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated_engine(engine: Engine) -> Engine:
    """The test engine with the schema at head."""
    migrate(engine)
    return engine


@pytest.fixture
def repo(migrated_engine: Engine) -> Repository:
    """A repository on a migrated, empty database."""
    return Repository(migrated_engine)


@pytest.fixture
def now() -> datetime:
    """A fixed clock reading."""
    return datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
