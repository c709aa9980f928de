"""The engine alone: a real repository (SQLite), a catalog whose plans need no cluster (waits and
an HTTP call to a port nobody listens on), and a progress sink that records what it is told.
No Slack, no handlers: what the engine stores and says, step by step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Catalog, parse_catalog
from bot.execution.engine import Engine
from bot.execution.steps.table import plan_rows
from bot.rollback.lifecycle import (
    DueKind,
    RollbackKind,
    RollbackStatus,
    StepStatus,
    finished_key,
)
from bot.sim.kube_api import KubeSimulator
from bot.sim.kubeconfig import kubeconfig_text
from storage.db import make_engine, migrate
from storage.models import Rollback
from storage.repository import Repository
from tests.conftest import catalog_yaml

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
CATALOG = catalog_yaml(
    "  svc:\n    namespace: shop\n    deployment: svc-api\n    responders: [U0ONCALL1]\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: wait, seconds: 0, name: First}\n"
    "      application:\n"
    "        - {kind: wait, seconds: 0, name: Second}\n"
    "      verification:\n"
    "        - {kind: http_request, url: 'http://127.0.0.1:1/undo', name: Undo API}\n"
)


@dataclass
class RecordedProgress:
    """The engine's ProgressSink (our own protocol): what it was told, in order."""

    changes: list[tuple[int, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gates: list[tuple[int, str]] = field(default_factory=list)

    def changed(self, rollback_id: int, *, is_final: bool = False) -> None:
        self.changes.append((rollback_id, is_final))

    def note(self, rollback_id: int, text: str) -> None:
        self.notes.append(text)

    def gate(self, rollback_id: int, step_id: int, prompt: str) -> None:
        self.gates.append((step_id, prompt))

    def flush(self, timeout: float) -> bool:
        return True


@dataclass
class World:
    engine: Engine
    repo: Repository
    catalog: Catalog
    progress: RecordedProgress


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(db)
    repo = Repository(db)
    catalog = parse_catalog(CATALOG, "engine-test.yaml")
    progress = RecordedProgress()
    with KubeSimulator() as kube_sim:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text({"sim": kube_sim.url}))
        kube = KubernetesClient(kubeconfig=str(kubeconfig))
        http = HttpClient()
        engine = Engine(
            repo=repo,
            catalog=catalog,
            kube=kube,
            http=http,
            prometheus=None,
            clock=lambda: NOW,
            progress=progress,
            lease_seconds=30,
            worker="test-worker",
        )
        yield World(engine, repo, catalog, progress)
        engine.shutdown()
        http.close()
        kube.close()
    db.dispose()


def _start(world: World, *, is_failing: bool = False) -> Rollback:
    plan = world.catalog.services["svc"].plan(None)
    steps = plan_rows(plan)
    if not is_failing:
        steps = steps[:2]  # the waits only: not the HTTP call to the closed port
    return world.repo.create_rollback(
        service="svc",
        kind=RollbackKind.IMMEDIATE,
        strategy=plan.strategy,
        requested_by="U0ONCALL1",
        status=RollbackStatus.RUNNING,
        now=NOW,
        steps=steps,
    )


def _statuses(world: World, rollback_id: int) -> list[str]:
    return [s.status for s in world.repo.list_steps(rollback_id)]


def test_a_plan_runs_step_by_step_and_its_end_is_stored_with_its_due_work(world: World) -> None:
    rollback = _start(world)
    assert rollback.id is not None
    world.engine.run(rollback.id)
    stored = world.repo.get_rollback(rollback.id)
    assert stored is not None and stored.status == RollbackStatus.SUCCEEDED
    assert _statuses(world, rollback.id) == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]
    # the listeners hear of the end through durable due work, stored with the status
    finished = world.repo.get_work(finished_key(rollback.id))
    assert finished is not None and finished.kind == DueKind.ROLLBACK_FINISHED
    assert [e.detail["step"] for e in world.repo.list_audit_events("step.succeeded")] == [
        "First",
        "Second",
    ]
    assert world.progress.changes[-1] == (rollback.id, True)  # the last change is final
    assert [n.split("*")[1] for n in world.progress.notes] == ["First", "Second"]


def test_a_resumed_rollback_never_runs_a_finished_step_again(world: World) -> None:
    rollback = _start(world)
    assert rollback.id is not None
    first = world.repo.list_steps(rollback.id)[0]
    assert first.id is not None
    world.repo.start_step(first.id, NOW)
    world.repo.finish_step(first.id, StepStatus.SUCCEEDED, NOW, detail={"seconds": 0})
    world.engine.run(rollback.id)
    assert [n.split("*")[1] for n in world.progress.notes] == ["Second"]
    assert _statuses(world, rollback.id) == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]


def test_a_failing_step_fails_the_rollback_and_says_why(world: World) -> None:
    rollback = _start(world, is_failing=True)
    assert rollback.id is not None
    world.engine.run(rollback.id)
    stored = world.repo.get_rollback(rollback.id)
    assert stored is not None and stored.status == RollbackStatus.FAILED
    assert stored.error is not None
    assert stored.error.startswith("Undo API: POST http://127.0.0.1:1/undo: unreachable")
    assert _statuses(world, rollback.id)[-1] == StepStatus.FAILED
    assert any(n.startswith(":x: *Undo API* failed") for n in world.progress.notes)


def test_an_abort_asked_before_the_run_skips_every_step(world: World) -> None:
    rollback = _start(world)
    assert rollback.id is not None
    world.repo.set_rollback_status(
        rollback.id, RollbackStatus.ABORTING, NOW, error="aborted by <@U0ONCALL1>: wrong target"
    )
    world.engine.run(rollback.id)
    stored = world.repo.get_rollback(rollback.id)
    assert stored is not None and stored.status == RollbackStatus.ABORTED
    assert stored.error == "aborted by <@U0ONCALL1>: wrong target"  # who and why are kept
    assert _statuses(world, rollback.id) == [StepStatus.SKIPPED, StepStatus.SKIPPED]
    assert world.progress.notes[-1].startswith(":octagonal_sign: *Aborted.*")


def test_a_rollback_leased_to_another_worker_is_not_run(world: World) -> None:
    rollback = _start(world)
    assert rollback.id is not None
    assert world.repo.claim_rollback(rollback.id, "other-replica", NOW, world.engine.lease)
    world.engine.run(rollback.id)
    assert _statuses(world, rollback.id) == [StepStatus.PENDING, StepStatus.PENDING]
    assert world.progress.notes == []
