"""The guard when things go wrong: Prometheus down or silent during a round, a bot killed with
SIGKILL in the middle of a breach, two replicas ticking at once on one PostgreSQL database."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackSimulator
from storage.db import make_engine
from storage.guard_models import GUARD_ACTOR, GuardStatus, states_from_json
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml, closed_port_url
from tests.guard.conftest import ERRORS, FakeClock, T, World, service, wait_seen
from tests.guard.exporter import Exporter
from tests.postgres import fresh_schema
from tests.prometheus_server import RealPrometheus
from tests.scenarios.test_crash_resume import kubeconfig

pytestmark = pytest.mark.prometheus

QUERY_TIMEOUT = 1.0  # the adapter's bound on one Prometheus query


# --- Prometheus down or silent ----------------------------------------------------------------


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A socket that listens but never accepts: the handshake completes, no answer ever comes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


@pytest.mark.parametrize("down", ["closed port", "never answers"])
def test_prometheus_down_or_silent_makes_a_bounded_round_and_fires_nothing(
    make_world: Any, silent_url: str, down: str
) -> None:
    url = closed_port_url() if down == "closed port" else silent_url
    w: World = make_world(prometheus_url=url, rollback_bot_query_timeout_seconds=QUERY_TIMEOUT)
    w.release("shop/checkout:v3")
    for after in (0, 30, 30, 30, 30):
        w.clock.advance(after)
        started = time.monotonic()
        w.h.bot.guard.tick()
        took = time.monotonic() - started
        assert took < QUERY_TIMEOUT + 2, f"a round with Prometheus {down} took {took:.1f} s"
        w.h.wait_idle()
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.status == GuardStatus.WATCHING and release.evaluations == 5
    state = states_from_json(release.states)["error_rate"]
    assert state.unknown_in_row == 5 and state.breach_since is None
    texts = [c.params.get("text", "") for c in w.h.slack.calls_to("chat.postMessage")]
    (blind,) = [t for t in texts if "is blind" in t]
    why = "unreachable (ConnectError)" if down == "closed port" else "did not answer within 1 s"
    assert why in blind


# --- two replicas on PostgreSQL ---------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def evaluations_counted(w: World) -> float:
    value = w.h.bot.deps.metrics.registry.get_sample_value("rollback_bot_guard_evaluations_total")
    return value or 0.0


@pytest.mark.postgres
def test_two_replicas_on_postgresql_evaluate_each_release_once_and_fire_once(
    pg_url: str,
    make_world: Any,  # pg_url first: the replicas stop before its schema is dropped
) -> None:
    clock = FakeClock(datetime.now(UTC))
    # evaluated every 10 s and both replicas tick every 10 s: every round the release is due
    # and contested
    a: World = make_world(database_url=pg_url, clock=clock, interval_seconds=10)
    b: World = make_world(database_url=pg_url, clock=clock, interval_seconds=10)
    a.h.bot.guard.worker, b.h.bot.guard.worker = "replica-a", "replica-b"  # one process here
    a.release("shop/checkout:v3")
    a.errors(0.2)
    gate = threading.Barrier(2)

    def tick(w: World) -> None:
        gate.wait()  # both replicas start the round at the same instant
        w.h.bot.guard.tick()

    rounds = 0
    while not a.h.bot.deps.repo.list_rollbacks(service="checkout"):
        assert rounds < 20, "the sustained breach never fired"
        threads = [threading.Thread(target=tick, args=(w,)) for w in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        a.h.wait_idle()
        b.h.wait_idle()
        clock.advance(10)
        rounds += 1
    a.errors(0.001)
    for w in (a, b):
        w.h.wait_rollbacks()

    (rollback,) = a.h.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR and rollback.status == "succeeded"
    (release,) = a.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.status == GuardStatus.FIRED and release.rollback_id == rollback.id
    # every evaluation either replica made was stored: none was made twice at the same time
    assert evaluations_counted(a) + evaluations_counted(b) == release.evaluations
    assert release.evaluations == rounds == 7  # once per round: breaching at 0 s … 60 s
    fired = [e for e in a.h.bot.deps.repo.list_audit_events() if e.kind == "guard.fired"]
    assert len(fired) == 1


# --- SIGKILL mid-breach -----------------------------------------------------------------------

DURATION = 30
INTERVAL = 5
CRASH_GUARD = (
    "      triggers:\n"
    "        - {metric: error_rate, threshold: 0.01, comparison: greater_than,"
    f" duration_seconds: {DURATION}}}\n"
)


def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polls another process's progress
    return found


class Serve:
    """``rollback-bot serve`` processes (the real scheduler: a guard round every 5 s)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.procs = env, list[subprocess.Popen[str]]()

    def start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=self.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stderr is not None
        for line in proc.stderr:
            if re.search(r"listening on port (\d+)", line):
                # keep draining stderr so the process never blocks on a full pipe
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                return proc
        raise AssertionError(f"serve did not start (exit {proc.wait()})")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)


@pytest.fixture
def serve_env(
    tmp_path: Path,
    slack: SlackSimulator,
    kube_sim: KubeSimulator,
    scraping_prometheus: RealPrometheus,
) -> Iterator[tuple[Serve, str]]:
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(catalog_yaml(service(CRASH_GUARD, INTERVAL)))
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "crash-secret",
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": db_url,
        "ROLLBACK_CONFIG": str(catalog),
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", kube_sim.url)),
        "PROMETHEUS_URL": scraping_prometheus.url,
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    bots = Serve(env)
    yield bots, db_url
    bots.stop_all()


def deployment_writes(kube_sim: KubeSimulator) -> list[tuple[str, str]]:
    return [
        (m, p)
        for m, p in kube_sim.requests
        if m in ("PATCH", "PUT") and "/deployments/checkout-api" in p and "dryRun" not in p
    ]


def test_sigkill_mid_breach_keeps_the_timer_and_rolls_back_once(
    serve_env: tuple[Serve, str],
    kube_sim: KubeSimulator,
    exporter: Exporter,
    scraping_prometheus: RealPrometheus,
) -> None:
    bots, db_url = serve_env
    repo = Repository(make_engine(db_url))
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    exporter.set("guard_error_rate", 0.001, service="checkout")
    wait_seen(scraping_prometheus.url, ERRORS, 0.001)
    first = bots.start()
    until(lambda: repo.guarded_service("checkout"), "the guard's first look")
    kube.set_image(T, "checkout-api", "app", "shop/checkout:v3")
    released = len(deployment_writes(kube_sim))
    exporter.set("guard_error_rate", 0.2, service="checkout")

    def breaching_for() -> float:
        found = repo.list_guarded(service="checkout")
        state = states_from_json(found[0].states).get("error_rate") if found else None
        since = state.breach_since if state else None
        return (datetime.now(UTC) - since).total_seconds() if since else 0.0

    until(lambda: breaching_for() >= 12, "a breach held for 12 s", timeout=40)
    (before,) = repo.list_guarded(service="checkout")
    breach_since = states_from_json(before.states)["error_rate"].breach_since
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert repo.list_rollbacks(service="checkout") == []

    bots.start()  # a new process on the same database
    (rollback,) = until(lambda: repo.list_rollbacks(service="checkout"), "the rollback", 60)
    exporter.set("guard_error_rate", 0.001, service="checkout")
    until(lambda: repo.get_rollback(rollback.id).status == "succeeded", "its end", 60)  # type: ignore[union-attr]

    (after,) = repo.list_guarded(service="checkout")
    state = states_from_json(after.states)["error_rate"]
    assert after.status == GuardStatus.FIRED and state.breach_since == breach_since
    assert state.fired_at is not None and breach_since is not None
    held = (state.fired_at - breach_since).total_seconds()
    # the restarted process carried the timer on: it fired at the original start + duration
    # (within an evaluation period or two of rounds), not a whole duration after the restart
    assert DURATION <= held < DURATION + 2 * INTERVAL + 1, held
    assert f"error_rate 0.2 > 0.01 for {int(held)}s" in rollback.reason
    assert rollback.requested_by == GUARD_ACTOR
    assert len(deployment_writes(kube_sim)) == released + 1  # one undo
    kube.close()
