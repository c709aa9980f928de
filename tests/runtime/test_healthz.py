"""``/healthz``: 200 only when the database answers AND has this release's schema; a database
never migrated, or migrated by an older release, is 503 saying what to do. Which database and
why go to the log only (anyone who reaches the port reads the answer), once per change of the
answer. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from storage.db import alembic_config, head_revision
from storage.repo.base import where_of
from tests.conftest import Harness, catalog_yaml, service_yaml
from tests.postgres import POSTGRES_URL, fresh_database

PASSWORD = "not-the-password"  # the local PostgreSQL trusts its clients: any password works


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request: pytest.FixtureRequest, make_harness: Any, tmp_path: Path) -> Iterator[Harness]:
    with fresh_database(request.param, tmp_path) as url:
        if url.startswith(POSTGRES_URL):
            url = url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
        h: Harness = make_harness(
            catalog_yaml(service_yaml("checkout", None)), prometheus_url=None, database_url=url
        )
        yield h
        h.bot.close()  # before the schema goes: nothing may hold a connection to it


def healthz(h: Harness) -> httpx.Response:
    return httpx.get(f"{h.server.url}/healthz")


def engine(h: Harness) -> Engine:
    return h.bot.deps.repo.engine


def migrate_to(h: Harness, revision: str) -> None:
    config = alembic_config()
    with engine(h).connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()


def where(h: Harness) -> str:
    return where_of(engine(h))


NOT_MIGRATED = {"status": "database not migrated", "why": "run `rollback-bot migrate`"}


def test_migrated_database_is_healthy(harness: Harness) -> None:
    resp = healthz(harness)

    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


def test_never_migrated_database_is_503_saying_what_to_do(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    migrate_to(harness, "base")
    with engine(harness).begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))

    with caplog.at_level(logging.WARNING, logger="bot.runtime.web"):
        answers = [healthz(harness) for _ in range(3)]

    assert [(r.status_code, r.json()) for r in answers] == [(503, NOT_MIGRATED)] * 3
    assert "postgres" not in answers[0].text and "sqlite" not in answers[0].text
    told = [r.getMessage() for r in caplog.records if "/healthz" in r.getMessage()]
    assert told == [  # once, not once per probe
        "/healthz answers 503 (database not migrated): the database at"
        f" {where(harness)} has no rollback-bot tables (no table `alembic_version`):"
        " run `rollback-bot migrate`"
    ]
    assert PASSWORD not in caplog.text


def test_database_of_an_older_release_is_503(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    migrate_to(harness, "0003")

    with caplog.at_level(logging.WARNING, logger="bot.runtime.web"):
        resp = healthz(harness)

    assert (resp.status_code, resp.json()) == (503, NOT_MIGRATED)
    assert (
        f"the database at {where(harness)} is at migration 0003, this release needs"
        f" {head_revision()}: run `rollback-bot migrate`"
    ) in caplog.text
    assert PASSWORD not in caplog.text


def test_unreadable_migrations_are_503_not_500(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration scripts missing from the image: the probe fails soft, with what it could not
    read in the log."""

    def broken() -> None:
        raise FileNotFoundError("storage/migrations: no such directory")

    monkeypatch.setattr("storage.repo.base.code_revisions", broken)

    resp = healthz(harness)

    assert (resp.status_code, resp.json()) == (503, {"status": "database unreachable"})


def test_where_of_never_shows_a_password() -> None:
    url = "postgresql+psycopg://bot:s3cret@db:5432/rb?sslpassword=s3cret2&password=s3cret3"
    shown = where_of(sa.create_engine(url))
    assert "s3cret" not in shown
    assert (
        shown == "postgresql+psycopg://bot:***@db:5432/rb?password=%2A%2A%2A&sslpassword=%2A%2A%2A"
    )


def test_emptied_schema_is_503(harness: Harness) -> None:
    migrate_to(harness, "base")  # alembic_version stays, empty

    resp = healthz(harness)

    assert (resp.status_code, resp.json()) == (503, NOT_MIGRATED)


def test_database_of_a_newer_release_is_healthy(harness: Harness) -> None:
    """A rolling deploy migrates first: the old replicas keep serving until they are replaced."""
    with engine(harness).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))

    assert healthz(harness).status_code == 200
