"""A bot process killed with SIGKILL mid-rollback; another takes over and finishes it once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sim.kube_api import KubeSimulator
from bot.sim.kubeconfig import kubeconfig_text
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester
from storage.db import make_engine
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml
from tests.postgres import fresh_schema

SECRET = "crash-secret"
NS = "shop"
CATALOG = catalog_yaml(
    "  svc:\n    namespace: shop\n    deployment: svc-api\n    responders: [U0ONCALL1]\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: snapshot, objects: [[Deployment, svc-api]]}\n"
    "        - {kind: wait, seconds: 3, name: Soak before the undo}\n"
    "      application:\n"
    "        - {kind: rollout_undo}\n"
    "        - {kind: wait_rollout}\n"
)


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(kubeconfig_text({"sim": server}))
    return path


def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polls other processes' progress


class Bots:
    """Starts `rollback-bot serve` processes sharing one database and simulators."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=self.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stderr is not None
        for line in proc.stderr:
            if m := re.search(r"listening on port (\d+)", line):
                return f"http://127.0.0.1:{m.group(1)}"
        raise AssertionError(f"serve did not start (exit {proc.wait()})")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)


@pytest.fixture
def world(tmp_path: Path, slack: SlackSimulator) -> Iterator[tuple[Bots, KubeSimulator, str]]:
    with KubeSimulator() as kube:
        kube.seed_deployment(NS, "svc-api", images=["svc:1", "svc:2"])
        catalog = tmp_path / "rollback.yaml"
        catalog.write_text(CATALOG)
        db_url = f"sqlite:///{tmp_path / 'bot.db'}"
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": db_url,
            "ROLLBACK_CONFIG": str(catalog),
            "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", kube.url)),
            "ROLLBACK_BOT_LEASE_SECONDS": "1",
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        bots = Bots(env)
        yield bots, kube, db_url
        bots.stop_all()


def deployment_writes(kube: KubeSimulator) -> list[tuple[str, str]]:
    return [
        (m, p)
        for m, p in kube.requests
        if m in ("PATCH", "PUT") and "/deployments/svc-api" in p and "dryRun" not in p
    ]


def test_sigkill_mid_rollback_resumes_from_the_step_it_was_in(
    world: tuple[Bots, KubeSimulator, str], slack: SlackSimulator
) -> None:
    bots, kube, db_url = world
    repo = Repository(make_engine(db_url))
    first = bots.start()
    with __import__("httpx").Client(timeout=10) as http:
        ack = SlackRequester(first, SECRET, http).slash(
            "run svc --immediate bad release", user_id="U0ONCALL1"
        )
    assert "Rollback #1" in ack.text
    until(
        lambda: [s.status for s in repo.list_steps(1)][:2] == ["succeeded", "running"], "the soak"
    )
    progress_ts = repo.get_rollback(1).progress_ts  # type: ignore[union-attr]

    bots.procs[0].send_signal(signal.SIGKILL)
    bots.procs[0].wait(timeout=10)
    bots.start()
    until(lambda: repo.get_rollback(1).status == "succeeded", "the resumed rollback")  # type: ignore[union-attr]

    steps = repo.list_steps(1)
    assert [s.attempt for s in steps] == [1, 2, 1, 1]  # the snapshot was not repeated
    assert len(deployment_writes(kube)) == 1  # the undo ran once
    assert kube_images(kube) == "svc:1"
    rollback = repo.get_rollback(1)
    assert rollback is not None and rollback.progress_ts == progress_ts

    def progress() -> list[dict[str, Any]]:
        return [
            m for m in slack.messages("C0DEPLOYS") if m.get("text", "").startswith("Rollback #1")
        ]

    # the final edit follows the status change (posts go out from their own thread)
    until(lambda: "SUCCEEDED" in progress()[0]["text"], "the final progress edit")
    assert len(progress()) == 1


def kube_images(kube: KubeSimulator) -> str:
    from kubernetes.client import AppsV1Api

    dep = AppsV1Api(kube.api_client()).read_namespaced_deployment("svc-api", NS)
    return str(dep.spec.template.spec.containers[0].image)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.mark.postgres
def test_two_bot_processes_on_postgresql_run_a_rollback_once(
    pg_url: str, world: tuple[Bots, KubeSimulator, str]
) -> None:
    # pg_url first: fixtures are torn down in reverse, so the bot processes are stopped before
    # their schema is dropped (dropping it under their 1 s guard tick deadlocked)
    bots, kube, _ = world
    bots.env["DATABASE_URL"] = pg_url
    one = bots.start()
    bots.start()  # a second replica, same database: both tick for lapsed leases
    with __import__("httpx").Client(timeout=10) as http:
        SlackRequester(one, SECRET, http).slash(
            "run svc --immediate bad release", user_id="U0ONCALL1"
        )
    repo = Repository(make_engine(pg_url))
    until(
        lambda: (r := repo.get_rollback(1)) is not None and r.status == "succeeded", "the rollback"
    )

    assert [s.attempt for s in repo.list_steps(1)] == [1, 1, 1, 1]
    assert len(deployment_writes(kube)) == 1
