"""How long an approver's vote waits while someone floods the bot with `/rollback assess`.

The real app behind its HTTP server, with the Slack, Prometheus (200 ms per query) and
Kubernetes simulators. One request for approval is posted; then one unprivileged user sends a
burst of signed `/rollback assess` commands over 20 connections while an approver presses
**Approve**. Printed: how long the vote took to be counted (press → request approved), how many
of the burst started an assessment (the rest were answered by the running one or refused by the
per-person limit), and the burst's ack latency.

    python benchmarks/vote_under_load.py [--burst 200]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.app import build_app
from bot.approvals import blocks as ab
from bot.demo import DEMO_SERVICES, demo_catalog, query_values, seed_cluster
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester
from storage.db import make_engine
from storage.repository import Repository

QUERY_DELAY_SECONDS = 0.2


def serve(secret: str, database_url: str) -> None:
    """Child process: the simulators and the app; prints their URLs, then serves until killed."""
    health = {d.name: d.health_status for d in DEMO_SERVICES}
    slack = SlackSimulator(bot_token="xoxb-bench").start()
    prometheus = PrometheusSimulator(query_values(), health).start()
    prometheus.set_delay(QUERY_DELAY_SECONDS)
    cluster = KubeSimulator().start()
    seed_cluster(cluster)
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-bench"),
        slack_signing_secret=SecretStr(secret),
        slack_api_url=slack.api_url,
        database_url=database_url,
        prometheus_url=prometheus.url,
    )
    kube = KubernetesClient(api_client_for=lambda _context: cluster.api_client())
    bot = build_app(settings, catalog=demo_catalog(prometheus.url), kube=kube)
    server = HttpServer(WebApp(bot), "127.0.0.1", 0, threads=8).start()
    print(json.dumps({"url": server.url, "slack": slack.api_url}), flush=True)
    threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--secret", default="")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if args.serve:
        serve(args.secret, args.database_url)
        return
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--secret",
                secret,
                "--database-url",
                database_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            urls = json.loads(proc.stdout.readline())
            repo = Repository(make_engine(database_url))
            run(repo, urls["url"], urls["slack"], secret, args.burst)
        finally:
            proc.kill()
            proc.wait()


def run(repo: Repository, url: str, slack_api: str, secret: str, burst: int) -> None:
    http = httpx.Client(timeout=60)
    requester = SlackRequester(url, secret, http)
    requester.slash("plan payments slow since v3", user_id="U0ONCALL1")
    request = _request_message(http, slack_api)
    approve = next(
        e
        for b in request["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == ab.APPROVE_ACTION
    )
    names = [d.name for d in DEMO_SERVICES]
    acks: list[float] = []
    started: list[bool] = []
    lock = threading.Lock()

    def assess(n: int) -> None:
        with httpx.Client(timeout=60) as own:
            t0 = time.perf_counter()
            resp = SlackRequester(url, secret, own).slash(
                f"assess {names[n % len(names)]}", user_id="U0RANDOM"
            )
            with lock:
                acks.append(time.perf_counter() - t0)
                started.append("Assessing" in str(resp.json().get("text")))

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(assess, n) for n in range(burst)]
        time.sleep(0.05)  # the burst is under way (pacing the load, not waiting for an outcome)
        t0 = time.perf_counter()
        requester.click(request, approve, user_id="U0APPROVER1", channel_id="C0DEPLOYS")
        while (r := repo.get_rollback(1)) is not None and r.status == "pending_approval":
            time.sleep(0.005)
        voted = time.perf_counter() - t0
        for f in futures:
            f.result()
    print(f"burst: {burst} x /rollback assess by one user over 20 connections")
    print(f"  asks that started an assessment: {sum(started)} of {burst}")
    print(f"  burst ack p50 {statistics.median(acks) * 1000:.1f} ms, max {max(acks) * 1000:.1f} ms")
    print(f"approver's vote counted {voted * 1000:.0f} ms after the press (request → approved)")


def _request_message(http: httpx.Client, slack_api: str) -> dict[str, Any]:
    """The request message as the Slack simulator holds it (polled from the other process)."""
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        history = http.post(
            f"{slack_api}conversations.history",
            data={"channel": "C0DEPLOYS"},
            headers={"Authorization": "Bearer xoxb-bench"},
        ).json()
        for message in history.get("messages", []):
            if "Rollback request #1" in message.get("text", ""):
                return dict(message)
        time.sleep(0.05)  # polling another process
    raise SystemExit("the request for approval was never posted")


if __name__ == "__main__":
    main()
