"""Approvals and due work under concurrency on the real PostgreSQL: one effect, whatever races."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.approvals import blocks as ab
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.postgres import fresh_schema
from tests.scenarios.test_approval_flow import request_message, settle

pytestmark = pytest.mark.postgres

APPROVERS = [f"U0APPR{n:02d}" for n in range(20)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
def kube() -> Iterator[KubernetesClient]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)


def test_twenty_approvers_at_the_same_instant_start_one_run(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator, pg_url: str
) -> None:
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)
    service = service_yaml("checkout", None).replace(
        "    approvers: [U0APPROVER1]", f"    approvers: [{', '.join(APPROVERS)}]"
    )
    h: Harness = make_harness(
        catalog_yaml(service), prometheus_url=prometheus.url, kube=kube, database_url=pg_url
    )
    h.slash("plan checkout bad deploy")
    message = request_message(h)
    approve = next(
        e
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == ab.APPROVE_ACTION
    )
    barrier = threading.Barrier(len(APPROVERS))
    codes: list[int] = []

    def press(user: str) -> None:
        barrier.wait()
        resp = h.requester.click(message, approve, user_id=user, channel_id="C0DEPLOYS")
        codes.append(resp.status_code)

    threads = [threading.Thread(target=press, args=(u,)) for u in APPROVERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * len(APPROVERS)
    deadline = time.monotonic() + 10
    while len(h.slack.calls_to("response_url")) < len(APPROVERS):  # every click was answered
        assert time.monotonic() < deadline
        time.sleep(0.01)
    settle(h)

    events = [e.kind for e in h.bot.deps.repo.list_audit_events(rollback_id=1)]
    assert events.count("approval.granted") == 1
    assert events.count("rollback.started") == 1
    assert events.count("rollback.succeeded") == 1
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "succeeded"
    work = h.bot.deps.repo.get_work("start:1")
    assert work is not None and work.status == "done" and work.attempts == 1


def test_the_same_approver_from_twenty_threads_is_one_vote(pg_url: str) -> None:
    repo = Repository(make_engine(pg_url))
    migrate(repo.engine)
    now = datetime.now(UTC)
    r = repo.create_rollback(
        service="checkout",
        kind="planned",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="pending_approval",
        now=now,
        required_approvals=2,
    )
    assert r.id is not None
    rollback_id = r.id
    barrier = threading.Barrier(20)
    results: list[bool] = []

    def vote() -> None:
        barrier.wait()
        results.append(
            repo.record_approval(rollback_id, "U0APPR01", "approve", via="button", now=now)
        )

    threads = [threading.Thread(target=vote) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 19 + [True]
    assert len(repo.list_approvals(rollback_id)) == 1
    repo.engine.dispose()


SCHEDULER = """
import sys, time
from datetime import UTC, datetime
from bot.runtime.due import DueWorkRunner
from storage.db import make_engine
from storage.repository import Repository

repo = Repository(make_engine(sys.argv[1]))
runner = DueWorkRunner(
    repo, lambda: datetime.now(UTC), sys.argv[2], lease_seconds=30, batch=5, parallel=2
)

def ran(item):
    repo.add_audit_event("due.ran", now=datetime.now(UTC), actor=sys.argv[2],
                         detail={"key": item.key})
    time.sleep(0.002)  # a little work, so the two schedulers overlap

runner.register("test.count", ran)
print("ready", flush=True)
sys.stdin.readline()  # both start ticking together
idle = 0
while idle < 3:
    idle = idle + 1 if runner.tick() == 0 else 0
runner.shutdown()
"""


def test_two_scheduler_processes_run_each_due_item_once(pg_url: str) -> None:
    repo = Repository(make_engine(pg_url))
    migrate(repo.engine)
    now = datetime.now(UTC)
    keys = [f"item:{n}" for n in range(200)]
    for key in keys:
        assert repo.schedule_work("test.count", key, now, now)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCHEDULER, pg_url, f"scheduler-{n}"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=60) == 0

    ran = repo.list_audit_events(kind="due.ran")
    counted: dict[str, int] = {}
    for event in ran:
        counted[event.detail["key"]] = counted.get(event.detail["key"], 0) + 1
    assert counted == dict.fromkeys(keys, 1), json.dumps(
        {k: v for k, v in counted.items() if v != 1}
    )
    workers = {e.actor for e in ran}
    assert workers == {"scheduler-0", "scheduler-1"}  # both took a share
    assert all(repo.get_work(k).status == "done" for k in keys)  # type: ignore[union-attr]
    repo.engine.dispose()
