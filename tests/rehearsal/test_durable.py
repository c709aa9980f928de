"""A rehearsal is durable like any rollback: stored before it acts, left running by a shutdown and
finished by the next process without undoing twice — on SQLite and on PostgreSQL. Its rows are
keyed apart from production's: the active slot and the do-no-harm history never mix them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from storage.db import make_engine, migrate
from storage.repo.records import ActiveRollbackExists, NewStep
from storage.repository import Repository
from tests.conftest import Harness, catalog_yaml, service_yaml
from tests.scenarios.test_graceful_restart import until

STAGING = KubeTarget("staging", "shop-staging")
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
CATALOG = catalog_yaml(
    service_yaml(
        "checkout", None, context="prod", staging="{context: staging, namespace: shop-staging}"
    )
)


class SimClock:
    """The staging simulator's clock: real time plus what the test jumps forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_a_shutdown_mid_rehearsal_is_resumed_by_the_next_process(
    db_url: str,  # first: its schema outlives the bots (torn down after them)
    make_harness: Any,
) -> None:
    clock = SimClock()
    with KubeSimulator(clock=clock, ready_delay_seconds=60) as staging, KubeSimulator() as prod:
        staging.seed_deployment("shop-staging", "checkout-api", images=IMAGES)
        clusters = {"staging": staging, "prod": prod}
        kube = KubernetesClient(api_client_for=lambda c: clusters[str(c)].api_client())
        first: Harness = make_harness(CATALOG, prometheus_url=None, kube=kube, database_url=db_url)
        assert "Rehearsal #1" in first.slash("drill checkout --rehearse").json()["text"]
        repo = first.bot.deps.repo
        until(
            lambda: (
                [s.status for s in repo.list_steps(1)][:3] == ["succeeded", "succeeded", "running"]
            ),
            "the rollback to roll out",
        )
        first.bot.deps.engine.shutdown()  # a deploy of the bot, mid-rehearsal
        row = repo.get_rollback(1)
        assert row is not None and row.status == "running" and row.claimed_by is None

        clock.offset += 120  # the staging pods become ready while no bot runs
        staging.tick()
        staging.set_ready_delay(0)  # and the roll-forward's are ready at once
        second: Harness = make_harness(CATALOG, prometheus_url=None, kube=kube, database_url=db_url)
        assert second.bot.deps.engine.resume_all() == [1]
        until(lambda: _status(second) == "succeeded", "the rehearsal to finish", timeout=20)
        # the undo was not repeated: one patch back, one forward
        assert [m for m, *_ in staging.writes] == ["PATCH", "PATCH"]
        now = kube.deployment(STAGING, "checkout-api")
        assert (now.revision, now.images) == (5, {"app": "shop/checkout:v3"})
        assert prod.requests == []
        until(
            lambda: bool(second.bot.deps.repo.list_audit_events(kind="rehearsal.reported")),
            "the report",
        )


def _status(h: Harness) -> str | None:
    row = h.bot.deps.repo.get_rollback(1)
    return row.status if row is not None else None


def test_rehearsal_rows_hold_their_own_slot_and_history(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    repo, now = Repository(engine), datetime(2026, 12, 4, 20, 0, tzinfo=UTC)

    def row(service: str, kind: str) -> int:
        created = repo.create_rollback(
            service=service,
            kind=kind,
            strategy="undo",
            requested_by="U0ONCALL1",
            status="running",
            now=now,
            steps=[NewStep("application", "Roll back", "rollout_undo", {})],
        )
        assert created.id is not None
        return created.id

    production = row("checkout", "immediate")
    rehearsal = row("checkout@staging", "rehearsal")  # a production rollback runs: no matter
    with pytest.raises(ActiveRollbackExists) as caught:
        row("checkout@staging", "rehearsal")
    assert caught.value.existing_id == rehearsal
    (step,) = repo.list_steps(rehearsal)
    assert step.id is not None
    repo.start_step(step.id, now)
    undo = {"deployment": "checkout-api", "from_revision": 3, "to_revision": 2}
    repo.finish_step(step.id, "succeeded", now, detail={"undo": undo})
    # the rehearsal moved staging away from revision 3: production's history does not know
    assert repo.finished_undos("checkout") == []
    assert [r.id for r, _ in repo.finished_undos("checkout@staging")] == [rehearsal]
    assert repo.get_active_rollback("checkout") is not None
    assert production != rehearsal
    engine.dispose()
