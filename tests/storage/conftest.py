"""Fixtures: each storage test runs on SQLite (a temp file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL nobody else uses: a fresh SQLite file or a fresh PostgreSQL schema."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


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
