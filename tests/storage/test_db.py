"""Engine set-up, health check and migrations on both dialects."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from storage.db import (
    alembic_config,
    check_database_url,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    normalize_url,
)
from storage.repository import Repository
from tests.storage.threads import run_in_threads

TABLES = {
    "alembic_version",
    "approvals",
    "assessments",
    "audit_events",
    "customer_updates",
    "drills",
    "due_work",
    "guard_services",
    "guarded_releases",
    "pages",
    "reviews",
    "rollback_steps",
    "rollbacks",
    "slack_deliveries",
    "status_page_posts",
}
ACTIVE_PREDICATE_STATUSES = ("pending_approval", "approved", "scheduled", "running", "aborting")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_use_psycopg3(url: str, expected: str) -> None:
    assert normalize_url(url) == expected
    assert make_engine(url).url.render_as_string() == expected


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "synchronous": 1,
        "foreign_keys": 1,
    }


def test_in_memory_sqlite_is_shared_between_sessions() -> None:
    engine = make_engine("sqlite://")
    migrate(engine)
    assert current_revision(engine) == head_revision()


def test_migrate_from_empty_to_head_and_again(engine: Engine) -> None:
    assert current_revision(engine) is None
    migrate(engine)
    assert head_revision() == "0009"  # the latest migration
    assert current_revision(engine) == head_revision()
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    migrate(engine)  # a second run is a no-op
    assert current_revision(engine) == head_revision()


def test_concurrent_migrations_in_one_process(engine: Engine) -> None:
    outcomes = run_in_threads(3, lambda _: migrate(engine))
    assert outcomes == [None, None, None]
    assert current_revision(engine) == head_revision()


def test_concurrent_migrations_from_several_processes(engine: Engine, db_url: str) -> None:
    """Replicas starting together: the advisory lock (PostgreSQL) / BEGIN IMMEDIATE (SQLite)."""
    script = (
        "import sys; from storage.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, db_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert current_revision(engine) == head_revision()


def test_models_and_migrations_do_not_drift(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_drift_check_would_notice_a_difference(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_due_work_due_at")
    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert [entry[0] for entry in diff] == ["add_index"]


def test_active_rollback_index_is_partial_and_unique(migrated_engine: Engine) -> None:
    indexes = {ix["name"]: ix for ix in sa.inspect(migrated_engine).get_indexes("rollbacks")}
    index = indexes["uq_rollbacks_active_service"]
    assert index["unique"]
    assert index["column_names"] == ["service"]
    with migrated_engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            ddl = conn.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes"
                    " WHERE indexname = :n AND schemaname = current_schema()"
                ),
                {"n": "uq_rollbacks_active_service"},
            ).scalar_one()
        else:
            ddl = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :n"),
                {"n": "uq_rollbacks_active_service"},
            ).scalar_one()
    assert "WHERE" in ddl
    for status in ACTIVE_PREDICATE_STATUSES:
        assert status in ddl


def test_downgrade_to_base_and_up_again(migrated_engine: Engine) -> None:
    config = alembic_config()
    with migrated_engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        conn.commit()
    assert set(sa.inspect(migrated_engine).get_table_names()) == {"alembic_version"}
    assert current_revision(migrated_engine) is None
    migrate(migrated_engine)
    assert current_revision(migrated_engine) == head_revision()


def test_upgrade_from_0003_keeps_the_data_and_adds_the_guard(engine: Engine) -> None:
    config = alembic_config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.commit()
    assert current_revision(engine) == "0003"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO due_work (kind, key, due_at, payload, status, attempts, waits,"
                " created_at) VALUES ('k', 'key-1', :t, '{}', 'pending', 0, 0, :t)"
            ),
            {"t": datetime(2026, 3, 1, tzinfo=UTC)},
        )
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    repo = Repository(engine)
    assert repo.get_work("key-1") is not None
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert repo.see_revision("checkout", "7", now) is None
    release = repo.start_guarding("checkout", "7", "app=checkout:v7", now, now, {}, {})
    assert release is not None and release.status == "watching"


def test_database_urls_are_checked_by_storage() -> None:
    check_database_url("sqlite:///x.db")
    check_database_url("postgresql://u@h/db")
    with pytest.raises(ValueError, match="not a database URL"):
        check_database_url("rollback.db")
    with pytest.raises(ValueError, match="mysql is not supported"):
        check_database_url("mysql://u@h/db")
