"""A readiness drill of a service with the default undo plan: wall time and Kubernetes calls.

The bot's own app (``build_app``) against the simulators: Kubernetes (``KubeSimulator``, whose
request log counts every call), Prometheus and Slack. A deployment with ``--revisions``
revisions; ``--drills`` drills are run one after the other (after one warm-up), each the way
``/rollback drill`` runs them after the ack (every check at once), then stored and posted.

Printed: the Kubernetes calls of one drill by kind, and the wall time per drill (median, max).
Targets (issue #15): one LIST of ReplicaSets, one SelfSubjectAccessReview per distinct write,
no object read twice.

    python benchmarks/drill.py [--drills 20] [--revisions 10]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.kube.client import KubernetesClient
from bot.app import build_app
from bot.catalog.load import parse_catalog
from bot.demo import promql
from bot.drills.run import run_drill
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from storage.drill_models import DrillTrigger

CATALOG = """\
defaults: {channel: C0DEPLOYS, sla_minutes: 30}
services:
  checkout:
    namespace: shop
    deployment: checkout-api
    signals: {error_rate: '%s'}
    oncall: [{name: Primary, phone: '+15550100001'}]
"""


def kind_of(method: str, path: str) -> str:
    path = path.partition("?")[0]
    if "selfsubjectaccessreviews" in path:
        return "POST selfsubjectaccessreview"
    name = re.sub(r"^/apis?/(?:[^/]+/)?v1/namespaces/[^/]+/", "", path)
    return f"{method} {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drills", type=int, default=20)
    parser.add_argument("--revisions", type=int, default=10)
    args = parser.parse_args()
    query = promql("checkout")["error_rate"]
    with (
        KubeSimulator() as kube_sim,
        PrometheusSimulator() as prometheus,
        SlackSimulator(bot_token="xoxb-bench") as slack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        images = [f"checkout:v{n}" for n in range(1, args.revisions + 1)]
        kube_sim.seed_deployment("shop", "checkout-api", images=images)
        prometheus.set_value(query, 0.001)
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr("bench"),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp}/bench.db",
            prometheus_url=prometheus.url,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token=SecretStr("t"),
            twilio_from_number="+15550100999",
        )
        kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client())
        bot = build_app(settings, catalog=parse_catalog(CATALOG % query), kube=kube)
        deps, service = bot.deps, bot.deps.catalog.services["checkout"]

        def drill() -> tuple[float, list[tuple[str, str]]]:
            drill_id = deps.repo.start_drill("checkout", deps.clock(), trigger=DrillTrigger.MANUAL)
            assert drill_id is not None
            since, started = len(kube_sim.requests), time.perf_counter()
            done = run_drill(deps, service, drill_id, None, actor="U0BENCH")
            took = time.perf_counter() - started
            assert done.status == "passed", done.checks
            return took, kube_sim.requests[since:]

        drill()  # warm-up: connections, discovery
        runs = [drill() for _ in range(args.drills)]
        bot.close()
    calls = Counter(kind_of(m, p) for m, p in runs[-1][1])
    print(f"Kubernetes calls of one drill (default undo plan, {args.revisions} revisions):")
    for what, count in sorted(calls.items()):
        print(f"  {count:3d}  {what}")
    print(f"  {sum(calls.values()):3d}  in all")
    times = sorted(took for took, _ in runs)
    median_ms, max_ms = statistics.median(times) * 1000, times[-1] * 1000
    print(
        f"wall time per drill over {args.drills} drills: median {median_ms:.1f} ms,"
        f" max {max_ms:.1f} ms (checks at once; stored and posted included)"
    )


if __name__ == "__main__":
    main()
