"""``/healthz``: 200 only when the database answers AND has this release's schema; a database
never migrated, or migrated by an older release, is 503 saying which database (password hidden)
and what to do. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from storage.db import alembic_config, head_revision
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
    return engine(h).url.render_as_string(hide_password=True)


def test_migrated_database_is_healthy(harness: Harness) -> None:
    resp = healthz(harness)

    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


def test_never_migrated_database_is_503_saying_what_to_do(harness: Harness) -> None:
    migrate_to(harness, "base")
    with engine(harness).begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))

    resp = healthz(harness)

    assert resp.status_code == 503
    assert resp.json() == {
        "status": "database not migrated",
        "why": f"the database at {where(harness)} has no rollback-bot tables"
        " (no table `alembic_version`): run `rollback-bot migrate`",
    }
    assert PASSWORD not in resp.text


def test_database_of_an_older_release_is_503(harness: Harness) -> None:
    migrate_to(harness, "0003")

    resp = healthz(harness)

    assert resp.status_code == 503
    assert resp.json()["why"] == (
        f"the database at {where(harness)} is at migration 0003, this release needs"
        f" {head_revision()}: run `rollback-bot migrate`"
    )
    assert PASSWORD not in resp.text


def test_emptied_schema_is_503(harness: Harness) -> None:
    migrate_to(harness, "base")  # alembic_version stays, empty

    resp = healthz(harness)

    assert resp.status_code == 503
    assert "is at migration (none), this release needs" in resp.json()["why"]


def test_database_of_a_newer_release_is_healthy(harness: Harness) -> None:
    """A rolling deploy migrates first: the old replicas keep serving until they are replaced."""
    with engine(harness).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))

    assert healthz(harness).status_code == 200
