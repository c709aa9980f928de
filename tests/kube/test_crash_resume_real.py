"""kill -9 of a `rollback-bot serve` process mid-rollback, on the real control plane: another
process takes over and finishes the rollback, and the undo reaches the cluster exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester
from storage.db import make_engine
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml
from tests.kube.conftest import Cluster
from tests.kube.workloads import Workloads, until
from tests.scenarios.test_crash_resume import SECRET, Bots

pytestmark = pytest.mark.kube


def test_sigkill_mid_rollback_resumes_and_undoes_once(
    cluster: Cluster, workloads: Workloads, slack: SlackSimulator, tmp_path: Path
) -> None:
    workloads.release("svc-api", ["svc:1", "svc:2"])
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(
        catalog_yaml(
            f"  svc:\n    namespace: {workloads.ns}\n    deployment: svc-api\n"
            "    responders: [U0ONCALL1]\n    phases:\n      preparation:\n"
            "        - {kind: snapshot, objects: [[Deployment, svc-api]]}\n"
            "        - {kind: wait, seconds: 3, name: Soak before the undo}\n"
            "      application:\n        - {kind: rollout_undo}\n        - {kind: wait_rollout}\n"
        )
    )
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": db_url,
        "ROLLBACK_CONFIG": str(catalog),
        "KUBECONFIG": str(cluster.bot_kubeconfig),  # the ServiceAccount, as in production
        "ROLLBACK_BOT_LEASE_SECONDS": "1",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    bots = Bots(env)
    try:
        repo = Repository(make_engine(db_url))
        first = bots.start()
        with httpx.Client(timeout=10) as http:
            ack = SlackRequester(first, SECRET, http).slash(
                "run svc --immediate bad release", user_id="U0ONCALL1"
            )
        assert "Rollback #1" in ack.text
        until(
            lambda: [s.status for s in repo.list_steps(1)][:2] == ["succeeded", "running"],
            "the soak",
        )
        bots.procs[0].send_signal(signal.SIGKILL)
        bots.procs[0].wait(timeout=10)
        bots.start()
        until(
            lambda: getattr(repo.get_rollback(1), "status", None) == "succeeded",
            "the resumed rollback",
            60,
        )
    finally:
        bots.stop_all()

    assert [s.attempt for s in repo.list_steps(1)] == [1, 2, 1, 1]  # no second snapshot
    dep = workloads.deployment("svc-api")
    assert workloads.images("svc-api") == {"app": "svc:1"}
    # one undo: revision 3 and generation 3 (create, svc:2, undo); a second would be 4 and 4
    assert workloads.revision("svc-api") == 3
    assert dep.metadata.generation == 3
    assert workloads.rolled_out("svc-api")
