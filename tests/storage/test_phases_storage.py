"""A partial rollback's phases (issue #16) are stored with it, and its skipped phases' steps as
skipped, in the transaction that creates it: on SQLite and PostgreSQL, and after an upgrade."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from storage.db import alembic_config, current_revision, head_revision, migrate
from storage.repo.records import NewStep
from storage.repository import Repository

STEPS = [
    NewStep("preparation", "Snapshot", "snapshot", {}, "skipped", "not run: phase not selected"),
    NewStep("application", "Roll back", "rollout_undo", {"params": {}}),
    NewStep("verification", "Soak", "wait", {"params": {"seconds": 1}}),
]


def test_the_phases_and_the_skipped_steps_are_stored_with_the_rollback(
    repo: Repository, now: datetime
) -> None:
    created = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=now,
        phases=["application", "verification"],
        steps=STEPS,
    )
    assert created.id is not None
    r = repo.get_rollback(created.id)
    assert r is not None and r.phases == ["application", "verification"]
    steps = repo.list_steps(created.id)
    assert [(s.phase, s.status, s.error, s.attempt) for s in steps] == [
        ("preparation", "skipped", "not run: phase not selected", 0),
        ("application", "pending", None, 0),
        ("verification", "pending", None, 0),
    ]


def test_a_whole_plan_stores_no_phases(repo: Repository, now: datetime) -> None:
    created = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=now,
        steps=STEPS[1:],
    )
    assert created.id is not None
    r = repo.get_rollback(created.id)
    assert r is not None and r.phases is None


def test_upgrading_from_0004_keeps_rollbacks_and_reads_them_as_whole_plans(
    engine: Engine, now: datetime
) -> None:
    config = alembic_config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.commit()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO rollbacks (service, status, kind, strategy, requested_by, reason,"
                " created_at, required_approvals) VALUES ('checkout', 'succeeded', 'immediate',"
                " 'undo', 'U0ONCALL1', 'old', :t, 1)"
            ),
            {"t": now},
        )
    migrate(engine)
    assert current_revision(engine) == head_revision()
    (old,) = Repository(engine).list_rollbacks()
    assert old.reason == "old" and old.phases is None
