"""Engine overhead and many concurrent rollbacks, against the Kubernetes and Slack simulators.

1. One immediate `undo` rollback with zero readiness delay, from the signed request to the
   progress message showing SUCCEEDED (each run on a bot that finished the previous run's
   follow-up work: notices, incident channel, review), versus the bare client calls that do
   the same work (read the deployment, list its ReplicaSets, patch the template, poll until
   rolled out); then the same with the engine's listeners detached (the engine path alone).
2. N services rolled back at once: all must succeed; the progress edits (chat.update) must stay
   within Slack's Tier-3 budget; peak memory of the process is reported.

    python benchmarks/engine_overhead.py [--services 50] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import resource
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from kubernetes.client import AppsV1Api
from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.runtime.logs import setup_logging
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackCall, SlackSimulator
from bot.sim.slack_client import SlackRequester

NS = "shop"


def catalog(n: int) -> str:
    services = "".join(
        f"  svc{i}:\n    namespace: {NS}\n    deployment: svc{i}-api\n    responders: [U0ONCALL1]\n"
        for i in range(n)
    )
    return f"defaults:\n  channel: C0DEPLOYS\nservices:\n{services}"


def bare_undo(apps: AppsV1Api, name: str) -> None:
    """What the engine does for one undo, as straight client calls: read, list, patch, poll."""
    dep = apps.read_namespaced_deployment(name, NS)
    selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
    rss = apps.list_namespaced_replica_set(NS, label_selector=selector).items
    revision = int(dep.metadata.annotations["deployment.kubernetes.io/revision"])
    previous = max(
        (
            r
            for r in rss
            if int(r.metadata.annotations["deployment.kubernetes.io/revision"]) < revision
        ),
        key=lambda r: int(r.metadata.annotations["deployment.kubernetes.io/revision"]),
    )
    template = apps.api_client.sanitize_for_serialization(previous.spec.template)
    template["metadata"]["labels"].pop("pod-template-hash", None)
    apps.patch_namespaced_deployment(
        name, NS, [{"op": "replace", "path": "/spec/template", "value": template}]
    )
    while True:
        d = apps.read_namespaced_deployment(name, NS)
        s = d.status
        if (
            (d.metadata.generation or 0) <= (s.observed_generation or 0)
            and (s.updated_replicas or 0) >= d.spec.replicas
            and (s.available_replicas or 0) >= (s.updated_replicas or 0)
        ):
            return


def settle(bot: BotApp) -> None:
    """Wait until what follows a rollback (notices, review, incident updates) is done."""
    deps = bot.deps
    for _ in range(3):  # engine → follow-up work → what that scheduled
        deps.engine.wait_idle(30)
        deps.work.wait_idle(30)
        deps.due.tick()
    deps.engine.progress.flush(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default="", help="default: a new SQLite file")
    args = parser.parse_args()
    setup_logging("WARNING")
    n = args.services
    secret = secrets.token_hex(8)
    with (
        SlackSimulator(bot_token="xoxb-bench") as slack,
        KubeSimulator() as cluster,
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(timeout=30) as http,
    ):
        # part 1 runs on a small cluster; the 50 services of part 2 are added afterwards
        for i in range(n, n + args.runs):
            cluster.seed_deployment(NS, f"svc{i}-api", images=[f"svc:{i}.1", f"svc:{i}.2"])
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=slack.api_url,
            database_url=args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}",
        )
        kube = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client())
        bot = build_app(settings, catalog=parse_catalog(catalog(n + 2 * args.runs)), kube=kube)
        server = HttpServer(WebApp(bot), "127.0.0.1", 0, threads=16).start()
        requester = SlackRequester(server.url, secret, http)

        def succeeded(call: SlackCall, rollback_id: int) -> bool:
            # called by wait_for under the simulator's lock: look at this call only
            text = str(call.params.get("text"))
            return f"Rollback #{rollback_id} of" in text and "SUCCEEDED" in text

        def one_undo(run: int) -> float:
            t0 = time.perf_counter()
            requester.slash(f"run svc{n + run} --immediate bench", user_id="U0ONCALL1")
            slack.wait_for("chat.update", lambda c, r=run: succeeded(c, r + 1), timeout=30)
            took = time.perf_counter() - t0
            settle(bot)  # the next run starts on a quiet bot, as a single rollback would
            return took

        ours, bare, alone = [], [], []
        apps = AppsV1Api(cluster.api_client())
        for run in range(args.runs):
            ours.append(one_undo(run))
        # The same, with the engine's listeners detached: no critical notice, incident channel,
        # page or review running beside it. Shows what the engine path itself costs.
        listeners = list(bot.deps.engine.listeners)
        bot.deps.engine.listeners.clear()
        for run in range(args.runs, 2 * args.runs):
            cluster.seed_deployment(NS, f"svc{n + run}-api", images=["a:1", "a:2"])
            alone.append(one_undo(run))
        bot.deps.engine.listeners.extend(listeners)
        for run in range(args.runs):
            cluster.seed_deployment(NS, f"bare{run}", images=["b:1", "b:2"])
            t0 = time.perf_counter()
            bare_undo(apps, f"bare{run}")
            bare.append(time.perf_counter() - t0)
        print(f"one immediate undo, signed request → SUCCEEDED ({args.runs} runs):")
        print(
            f"  ours  median {statistics.median(ours) * 1000:7.1f} ms  max {max(ours) * 1000:7.1f}"
        )
        print(
            f"  bare  median {statistics.median(bare) * 1000:7.1f} ms  max {max(bare) * 1000:7.1f}"
        )
        print(
            f"  ratio ours/bare (median): {statistics.median(ours) / statistics.median(bare):.1f}"
        )
        print(
            f"  engine alone (listeners detached) median {statistics.median(alone) * 1000:7.1f} ms"
            f"  max {max(alone) * 1000:7.1f}"
            f"  ratio {statistics.median(alone) / statistics.median(bare):.1f}"
        )

        for i in range(n):
            cluster.seed_deployment(NS, f"svc{i}-api", images=[f"svc:{i}.1", f"svc:{i}.2"])
        edits_before = len(bot.deps.engine.progress.edit_times)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for i in range(n):
            requester.slash(f"run svc{i} --immediate bench", user_id="U0ONCALL1")
        assert bot.deps.engine.wait_idle(600), "rollbacks did not finish"
        wall = time.perf_counter() - t0
        rows = bot.deps.repo.list_rollbacks(limit=1000)
        done = sum(r.status == "succeeded" for r in rows)
        edits = bot.deps.engine.progress.edit_times[edits_before:]  # type: ignore[attr-defined]
        worst_minute = max((sum(1 for e in edits if s <= e < s + 60) for s in edits), default=0)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n} concurrent rollbacks: {done}/{len(rows)} succeeded in {wall:.1f} s")
        print(f"  chat.update edits: {len(edits)}, busiest 60 s: {worst_minute} (Tier 3 ≈ 50/min)")
        print(f"  peak RSS of the process: {peak_mb:.0f} MB")
        server.stop()
        bot.close()


if __name__ == "__main__":
    main()
