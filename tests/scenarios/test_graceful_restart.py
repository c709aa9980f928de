"""Stopping the bot (deploy, Ctrl-C) never aborts a running rollback: the next process resumes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from tests.conftest import Harness, catalog_yaml

NS = "shop"
CATALOG = catalog_yaml(
    "  svc:\n    namespace: shop\n    deployment: svc-api\n    responders: [U0ONCALL1]\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: manual_gate, prompt: Go when ready, name: Hold for the DBA}\n"
    "      application:\n"
    "        - {kind: rollout_undo}\n"
    "        - {kind: wait_rollout}\n"
)


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "svc-api", images=["svc:1", "svc:2"])
        yield sim


def test_a_shutdown_mid_rollback_leaves_it_running_and_the_next_process_finishes_it(
    make_harness: Any, kube_sim: KubeSimulator, tmp_path: Path
) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: kube_sim.api_client())
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first: Harness = make_harness(CATALOG, prometheus_url=None, kube=kube, database_url=url)
    first.slash("run svc --immediate bad deploy", user_id="U0ONCALL1")
    repo = first.bot.deps.repo

    def gate_running() -> bool:
        return any(s.status == "running" for s in repo.list_steps(1))

    until(gate_running, "the gate to wait")
    first.bot.deps.engine.shutdown()  # the process is asked to stop

    rollback = repo.get_rollback(1)
    assert rollback is not None and rollback.status == "running"  # not aborted
    assert rollback.claimed_by is None  # the lease was given back: no need to wait it out
    assert [s.status for s in repo.list_steps(1)] == ["running", "pending", "pending"]
    assert not [m for m in first.slack.messages("C0DEPLOYS") if "Aborted" in str(m["text"])]
    kinds = [e.kind for e in repo.list_audit_events(rollback_id=1)]
    assert "rollback.aborted" not in kinds

    second: Harness = make_harness(CATALOG, prometheus_url=None, kube=kube, database_url=url)
    assert second.bot.deps.engine.resume_all() == [1]
    (gate,) = [s for s in second.bot.deps.repo.list_steps(1) if s.kind == "manual_gate"]
    assert gate.id is not None
    second.bot.deps.repo.record_step_detail(gate.id, {"continued_by": "U0ONCALL1"})
    assert second.bot.deps.engine.wait_idle(20)
    done = second.bot.deps.repo.get_rollback(1)
    assert done is not None and done.status == "succeeded"
    assert kube.deployment(KubeTarget(None, NS), "svc-api").images == {"app": "svc:1"}
