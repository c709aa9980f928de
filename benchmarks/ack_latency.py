"""Ack latency of `/rollback assess` over HTTP with signed requests, ours vs a bare Bolt app.

Each app runs in its own process (so the load generator does not share its GIL) behind the same
waitress server; the load generator keeps N clients busy with signed slash commands and records
the time from sending each request to receiving the HTTP answer (the ack). Our app does real work
on the ack path (idempotency key + assessment row in SQLite) and the assessment itself afterwards
(against the Prometheus and Slack simulators), all inside the measured process.

Both apps run at once and are loaded in turn, several rounds each, in alternating order (the
load generator is slower in a round that follows another: with a fixed order, two identical
bare apps differed by 1.4x at p99); the figures pool every round of an app.

    python benchmarks/ack_latency.py [--requests-per-client 20] [--repeats 8]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bot.sim.slack_client import SlackRequester

CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CLIENTS", "20,100").split(","))


def serve_simulators() -> None:
    """Child process: the Slack and Prometheus simulators, out of the measured app's process."""
    from bot.demo import DEMO_SERVICES, query_values
    from bot.sim.prometheus_api import PrometheusSimulator
    from bot.sim.slack_api import SlackSimulator

    slack = SlackSimulator(bot_token="xoxb-bench").start()
    health = {d.name: d.health_status for d in DEMO_SERVICES}
    prometheus = PrometheusSimulator(query_values(), health).start()
    print(json.dumps({"slack": slack.api_url, "prometheus": prometheus.url}), flush=True)
    threading.Event().wait()


def serve(kind: str, secret: str, workdir: str, slack_api: str, prometheus_url: str) -> None:
    """Child process: start the app of ``kind`` and print its URL, then serve until killed."""
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    from bot.app import build_app
    from bot.demo import demo_catalog
    from bot.runtime.logs import setup_logging
    from bot.runtime.server import HttpServer
    from bot.runtime.web import WebApp
    from bot.settings import Settings

    setup_logging("WARNING")
    if kind == "bare":
        bare = App(
            client=WebClient(token="xoxb-bench", base_url=slack_api),
            signing_secret=secret,
            listener_executor=ThreadPoolExecutor(max_workers=32),
        )

        @bare.command("/rollback")
        def only_ack(ack: Ack) -> None:
            ack(text="ok", response_type="ephemeral")

        app: Any = SlackRequestHandler(bare)
    else:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=slack_api,
            prometheus_url=prometheus_url,
            database_url=f"sqlite:///{Path(workdir) / 'bench.db'}",
        )
        app = WebApp(build_app(settings, catalog=demo_catalog(prometheus_url)))
    server = HttpServer(app, "127.0.0.1", 0, threads=32).start()
    print(json.dumps({"url": server.url}), flush=True)
    threading.Event().wait()


def assessments_done(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rollback_bot_assessments_total{")
    )


def wait_for_backlog(url: str, expected: float, deadline_s: float = 300) -> float:
    """Wait until every acked assessment has been answered; return the seconds it took."""
    t0 = time.perf_counter()
    while assessments_done(url) < expected:
        if time.perf_counter() - t0 > deadline_s:
            raise SystemExit(f"backlog not drained after {deadline_s} s")
        time.sleep(0.1)  # polling an external process, not waiting for an outcome in a test
    return time.perf_counter() - t0


def load(url: str, secret: str, clients: int, per_client: int) -> tuple[list[float], int]:
    """Run ``clients`` threads each sending ``per_client`` requests; return the latencies (s)
    and how many acks started an assessment (the rest were answered by a running one, or
    refused by the per-person limit: the bot no longer queues a pile of identical work)."""
    latencies: list[float] = []
    started: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(clients)

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            requester = SlackRequester(url, secret, http)
            bodies = [
                requester.slash_body("assess checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
                for _ in range(per_client)
            ]
            mine = []
            start.wait()
            for body in bodies:
                t0 = time.perf_counter()
                resp = requester.post_form(body)
                mine.append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    errors.append(f"HTTP {resp.status_code}")
                elif resp.content and "Assessing" in str(resp.json().get("text")):
                    with lock:
                        started.append(1)
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"!! {len(errors)} of {clients * per_client} requests failed, first: {errors[0]}")
    return latencies, len(started)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["ours", "bare", "simulators"])
    parser.add_argument("--secret", default="")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--slack", default="")
    parser.add_argument("--prometheus", default="")
    parser.add_argument("--requests-per-client", type=int, default=20)
    parser.add_argument(
        "--repeats", type=int, default=8, help="rounds per app and concurrency (even)"
    )
    parser.add_argument(
        "--control", action="store_true", help="a second bare app in ours' place: ratios ~1.0"
    )
    args = parser.parse_args()
    if args.repeats < 2 or args.repeats % 2:
        parser.error("--repeats must be even (each app goes first as often as second)")
    if args.serve == "simulators":
        serve_simulators()
        return
    if args.serve:
        serve(args.serve, args.secret, args.workdir, args.slack, args.prometheus)
        return
    secret = secrets.token_hex(16)
    results: dict[tuple[str, int], list[float]] = {}
    drained: dict[int, float] = {}
    assessed: dict[int, int] = {}
    sims, urls = spawn("--serve", "simulators")
    procs: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            bots: dict[str, str] = {}
            for kind in ("bare", "ours"):  # both up at once; only one is loaded at a time
                served = "bare" if args.control else kind
                proc, bot = spawn(
                    *("--serve", served, "--secret", secret, "--workdir", workdir),
                    *("--slack", urls["slack"], "--prometheus", urls["prometheus"]),
                )
                procs.append(proc)
                bots[kind] = bot["url"]
            sent = 0
            for clients, per_client, repeats in [
                (10, 5, 1),  # warm-up
                *((c, args.requests_per_client, args.repeats) for c in CONCURRENCY),
            ]:
                for repeat in range(repeats):
                    # Alternate which app goes first: the load generator itself is slower in a
                    # round that follows another (its heap, its garbage), and with a fixed order
                    # that made two identical bare apps differ by 1.4x at p99.
                    order = ("bare", "ours") if repeat % 2 == 0 else ("ours", "bare")
                    for kind in order:
                        gc.collect()  # the load generator's garbage, not the app's
                        lat, started = load(bots[kind], secret, clients, per_client)
                        if clients in CONCURRENCY:
                            results.setdefault((kind, clients), []).extend(lat)
                        if kind == "ours":  # let the assessments of this round finish first
                            sent += started
                            waited = wait_for_backlog(bots[kind], sent)
                            if clients in CONCURRENCY:
                                drained[clients] = max(drained.get(clients, 0.0), waited)
                                assessed[clients] = assessed.get(clients, 0) + started
    finally:
        for proc in (*procs, sims):
            proc.kill()
            proc.wait()
    print(f"{'app':<6}{'clients':>8}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for (kind, clients), lat in sorted(results.items()):
        print(
            f"{kind:<6}{clients:>8}{len(lat):>10}{statistics.median(lat) * 1000:>9.1f}"
            f"{pct(lat, 99) * 1000:>9.1f}{max(lat) * 1000:>9.1f}"
        )
    for clients in CONCURRENCY:
        ratio = pct(results[("ours", clients)], 99) / pct(results[("bare", clients)], 99)
        print(
            f"p99 ours/bare at {clients} clients: {ratio:.2f}  ({assessed[clients]} of"
            f" {len(results[('ours', clients)])} asks started an assessment, the others were"
            " answered by the running one; backlog drained"
            f" at most {drained[clients]:.1f} s after the last ack)"
        )


if __name__ == "__main__":
    main()
