"""Detection latency of the guard: from the moment a breach becomes sustained to the first
Kubernetes write (the undo's PATCH in the Kubernetes simulator's request log).

A ``rollback-bot serve`` process (the real scheduler: a detection round every 5 s, the due
evaluations claimed every 1 s) guards a service
with ``interval_seconds: --interval`` and one trigger (error rate > 0.01 for ``--duration`` s),
against a real Prometheus scraping an exporter this script controls (every second), the
Kubernetes simulator and the Slack simulator. Each trial rolls a new release out, turns its error
rate bad, waits for the undo's PATCH, then lets it recover. Two figures per trial:

- end to end: PATCH time − (the first instant Prometheus answered the bad value + duration);
  this includes up to one interval before the guard's first look at the breach;
- from the guard's own clock: PATCH time − (the stored breach start + duration).

Printed beside the target: ≤ interval + 2 s.

    python benchmarks/guard_latency.py [--trials 3] [--interval 5] [--duration 15]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the simulators' harness lives with the tests; run as a script, the repository root is not on
# sys.path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackSimulator
from storage.db import make_engine
from storage.guard_models import states_from_json
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml
from tests.guard.conftest import ERRORS, SIGNALS, T, wait_seen
from tests.guard.exporter import Exporter, scrape_config
from tests.prometheus_server import RealPrometheus, require_prometheus
from tests.scenarios.test_crash_resume import kubeconfig

SLACK_MARGIN = 2.0  # the target: interval + 2 s


def catalog(interval: int, duration: int) -> str:
    return catalog_yaml(
        "  checkout:\n    namespace: shop\n    deployment: checkout-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
        + SIGNALS
        + "    auto_rollback:\n      enabled: true\n"
        f"      interval_seconds: {interval}\n      watch_minutes: 30\n      max_per_day: 100\n"
        "      triggers:\n"
        "        - {metric: error_rate, threshold: 0.01, comparison: greater_than,"
        f" duration_seconds: {duration}}}\n"
    )


def until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)  # polls another process's progress; 5 ms bounds the timing error
    return found


def undo_writes(kube_sim: KubeSimulator) -> int:
    return sum(
        1
        for m, p in kube_sim.requests
        if m in ("PATCH", "PUT") and "/deployments/checkout-api" in p and "dryRun" not in p
    )


def start_serve(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if re.search(r"listening on port (\d+)", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # never block it
            return proc
    raise SystemExit(f"serve did not start (exit {proc.wait()}): {line}")


def trial(
    n: int,
    kube_sim: KubeSimulator,
    kube: KubernetesClient,
    exporter: Exporter,
    prom_url: str,
    repo: Repository,
    duration: int,
) -> tuple[float, float]:
    """(end-to-end latency, latency from the guard's breach start) of one bad release."""
    kube.set_image(T, "checkout-api", "app", f"shop/checkout:bad{n}")
    guarded = len(repo.list_guarded(service="checkout"))
    until(lambda: len(repo.list_guarded(service="checkout")) > guarded, "the guard to notice")
    writes = undo_writes(kube_sim)
    exporter.set("guard_error_rate", 0.2, service="checkout")
    wait_seen(prom_url, ERRORS, 0.2)
    bad_seen = time.time()  # Prometheus answers the bad value from now on
    until(lambda: undo_writes(kube_sim) > writes, "the undo's PATCH")
    patched = time.time()
    release = repo.list_guarded(service="checkout")[0]
    since = states_from_json(release.states)["error_rate"].breach_since
    assert since is not None
    exporter.set("guard_error_rate", 0.001, service="checkout")
    wait_seen(prom_url, ERRORS, 0.001)
    until(
        lambda: all(r.status in ("succeeded", "failed") for r in repo.list_rollbacks()),
        "the rollback to end",
    )
    # the guard records the revision the rollback left once the rollback's listeners ran: a
    # release before that would be taken for the rollback's own revision
    until(
        lambda: (
            (g := repo.guarded_service("checkout")) is not None
            and g.last_revision == str(kube.deployment(T, "checkout-api").revision)
        ),
        "the guard to record the rollback's revision",
    )
    return patched - (bad_seen + duration), patched - (since.timestamp() + duration)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    require_prometheus()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Exporter() as exporter,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
        KubeSimulator() as kube_sim,
        RealPrometheus(config_text=scrape_config(exporter.target)) as prom,
    ):
        kube_sim.seed_deployment(
            "shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"]
        )
        exporter.set("guard_error_rate", 0.001, service="checkout")
        wait_seen(prom.url, ERRORS, 0.001)
        (Path(tmp) / "rollback.yaml").write_text(catalog(args.interval, args.duration))
        db_url = f"sqlite:///{Path(tmp) / 'bot.db'}"
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "bench-secret",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": db_url,
            "ROLLBACK_CONFIG": str(Path(tmp) / "rollback.yaml"),
            "KUBECONFIG": str(kubeconfig(Path(tmp) / "kubeconfig", kube_sim.url)),
            "PROMETHEUS_URL": prom.url,
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        proc = start_serve(env)
        repo = Repository(make_engine(db_url))
        kube = KubernetesClient(
            api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None
        )
        try:
            until(lambda: repo.guarded_service("checkout"), "the guard's first look")
            figures = [
                trial(n, kube_sim, kube, exporter, prom.url, repo, args.duration)
                for n in range(args.trials)
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            kube.close()
    report(args, figures)


def report(args: argparse.Namespace, figures: list[tuple[float, float]]) -> None:
    target = args.interval + SLACK_MARGIN
    print(
        f"guard detection latency: {args.trials} trials, detection round every 5 s,"
        " due evaluations claimed every 1 s,"
        f" interval_seconds {args.interval}, duration_seconds {args.duration},"
        " Prometheus scraping every 1 s"
    )
    for name, index in (
        ("end to end (Prometheus shows it)", 0),
        ("from the guard's breach start", 1),
    ):
        values = [f[index] for f in figures]
        worst = max(values)
        print(
            f"{name:<34} median {statistics.median(values):6.2f} s, max {worst:6.2f} s"
            f"  (target <= {target:g} s: {'met' if worst <= target else 'MISSED'})"
            f"  [{', '.join(f'{v:.2f}' for v in values)}]"
        )


if __name__ == "__main__":
    main()
