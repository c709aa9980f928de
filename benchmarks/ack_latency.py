"""Ack latency of `/rollback assess` over HTTP with signed requests, ours vs a bare Bolt app.

Each app runs in its own process (so the load generator does not share its GIL) behind the same
waitress server; the load generator keeps N clients busy with signed slash commands and records
the time from sending each request to receiving the HTTP answer (the ack). Our app does real work
on the ack path (idempotency key + assessment row in SQLite) and the assessment itself afterwards
(against the Prometheus and Slack simulators), all inside the measured process.

Both apps run at once and are loaded in turn, several rounds each, in alternating order (the
load generator is slower in a round that follows another: with a fixed order, two identical
bare apps differed by 1.4x at p99); the figures pool every round of an app.

Then the backlog: a burst of ``--burst`` (100) `/rollback assess` of distinct services by distinct
people against a Prometheus whose every answer (queries and health URL) takes 200 ms. Each
assessment's five probes run at once, so it takes ~200 ms of a bulk worker; the bound is
``burst x 200 ms / workers`` (100 x 0.2 s / 4 = 5 s) and the target is draining within 2x that,
counted from the last ack.

    python benchmarks/ack_latency.py [--requests-per-client 20] [--repeats 8] [--burst 100]
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bot.runtime.work import JUST_ASSESSED_SECONDS
from bot.sim.kubeconfig import kubeconfig_text
from bot.sim.slack_client import SlackRequester

CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CLIENTS", "20,100").split(","))


def burst_names(count: int) -> list[str]:
    return [f"svc{i:03d}" for i in range(count)]


def burst_catalog_text(count: int, health_base_url: str) -> str:
    """A catalog of ``count`` services shaped like the demo's checkout, each its own queries."""
    from bot.demo import promql

    lines = ["defaults:", "  channel: C0DEPLOYS", "  sla_minutes: 15", "services:"]
    for name in burst_names(count):
        lines += [
            f"  {name}:",
            "    namespace: shop",
            f"    deployment: {name}-api",
            "    strategy: undo",
            f"    health_url: {health_base_url.rstrip('/')}/health/{name}",
            "    signals:",
            *(f"      {signal}: {json.dumps(q)}" for signal, q in promql(name).items()),
            "    approvers: [U0APPROVER1, U0APPROVER2]",
            "    responders: [U0ONCALL1]",
        ]
    return "\n".join(lines) + "\n"


def serve_simulators(burst: int, delay: float) -> None:
    """Child process: the Slack, Prometheus and Kubernetes simulators, out of the measured app's
    process. With ``burst``, Prometheus and the cluster know the burst's services too, and
    Prometheus answers each call after ``delay``."""
    from bot.demo import DEMO_SERVICES, image_of, query_values, seed_cluster
    from bot.sim.kube_api import KubeSimulator
    from bot.sim.prometheus_api import PrometheusSimulator
    from bot.sim.slack_api import SlackSimulator

    slack = SlackSimulator(bot_token="xoxb-bench").start()
    payments = next(d for d in DEMO_SERVICES if d.name == "payments")  # wobbly readings
    services = [*DEMO_SERVICES, *(replace(payments, name=n) for n in burst_names(burst))]
    health = {d.name: d.health_status for d in services}
    prometheus = PrometheusSimulator(query_values(services), health, delay_seconds=delay).start()
    cluster = KubeSimulator().start()  # each assessment reads the release it is about
    seed_cluster(cluster)
    for name in burst_names(burst):
        images = [image_of(name, n) for n in (1, 2, 3)]
        cluster.seed_deployment("shop", f"{name}-api", images=images, replicas=3)
    urls = {"slack": slack.api_url, "prometheus": prometheus.url, "kube": cluster.url}
    print(json.dumps(urls), flush=True)
    threading.Event().wait()


def serve(kind: str, secret: str, workdir: str, urls: dict[str, str], burst: int) -> None:
    """Child process: start the app of ``kind`` and print its URL, then serve until killed."""
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    from bot.app import build_app
    from bot.catalog.load import parse_catalog
    from bot.demo import demo_catalog
    from bot.runtime.logs import setup_logging
    from bot.runtime.server import HttpServer
    from bot.runtime.web import WebApp
    from bot.settings import Settings

    setup_logging("WARNING")
    if kind == "bare":
        bare = App(
            client=WebClient(token="xoxb-bench", base_url=urls["slack"]),
            signing_secret=secret,
            listener_executor=ThreadPoolExecutor(max_workers=32),
        )

        @bare.command("/rollback")
        def only_ack(ack: Ack) -> None:
            ack(text="ok", response_type="ephemeral")

        app: Any = SlackRequestHandler(bare)
    else:
        kubeconfig = Path(workdir) / f"kubeconfig-{os.getpid()}"
        kubeconfig.write_text(kubeconfig_text({"sim": urls["kube"]}))
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=urls["slack"],
            prometheus_url=urls["prometheus"],
            kubeconfig=str(kubeconfig),
            database_url=f"sqlite:///{Path(workdir) / f'bench-{os.getpid()}.db'}",
        )
        if burst:
            catalog = parse_catalog(burst_catalog_text(burst, urls["prometheus"]), "burst.yaml")
        else:
            catalog = demo_catalog(urls["prometheus"])
        app = WebApp(build_app(settings, catalog=catalog))
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


def burst(url: str, secret: str, count: int) -> tuple[float, float, int]:
    """``count`` people each ask at once for a different service; return the slowest ack (s),
    the seconds from the last ack until every assessment was answered, and how many started."""
    start = threading.Barrier(count)
    acks: list[tuple[float, float, bool]] = []  # (sent, acked, started) on perf_counter
    lock = threading.Lock()

    def client(i: int, name: str) -> None:
        with httpx.Client(timeout=30) as http:
            requester = SlackRequester(url, secret, http)
            body = requester.slash_body(
                f"assess {name}", user_id=f"U0BURST{i:03d}", channel_id="C0DEPLOYS"
            )
            start.wait()
            t0 = time.perf_counter()
            resp = requester.post_form(body)
            t1 = time.perf_counter()
            ok = resp.status_code == 200 and "Assessing" in str(resp.json().get("text"))
            with lock:
                acks.append((t0, t1, ok))

    before = assessments_done(url)
    threads = [
        threading.Thread(target=client, args=(i, name)) for i, name in enumerate(burst_names(count))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = sum(1 for *_, ok in acks if ok)
    last_ack = max(t1 for _, t1, _ in acks)
    while assessments_done(url) < before + started:
        if time.perf_counter() - last_ack > 300:
            raise SystemExit("burst backlog not drained after 300 s")
        time.sleep(0.05)  # polling an external process, not waiting for an outcome in a test
    drained = time.perf_counter() - last_ack
    return max(t1 - t0 for t0, t1, _ in acks), drained, started


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
    parser.add_argument("--urls", default="{}", help="the simulators' URLs (JSON)")
    parser.add_argument("--requests-per-client", type=int, default=20)
    parser.add_argument(
        "--repeats", type=int, default=8, help="rounds per app and concurrency (even)"
    )
    parser.add_argument(
        "--control", action="store_true", help="a second bare app in ours' place: ratios ~1.0"
    )
    parser.add_argument("--burst", type=int, default=100, help="assessments in the burst; 0: none")
    parser.add_argument("--burst-rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.2, help="Prometheus latency in the burst")
    args = parser.parse_args()
    if args.repeats < 2 or args.repeats % 2:
        parser.error("--repeats must be even (each app goes first as often as second)")
    if args.serve == "simulators":
        serve_simulators(args.burst, args.delay)
        return
    if args.serve:
        serve(args.serve, args.secret, args.workdir, json.loads(args.urls), args.burst)
        return
    secret = secrets.token_hex(16)
    results: dict[tuple[str, int], list[float]] = {}
    drained: dict[int, float] = {}
    assessed: dict[int, int] = {}
    sims, urls = spawn("--serve", "simulators", "--burst", "0", "--delay", "0")
    procs: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            bots: dict[str, str] = {}
            for kind in ("bare", "ours"):  # both up at once; only one is loaded at a time
                served = "bare" if args.control else kind
                proc, bot = spawn(
                    *("--serve", served, "--secret", secret, "--workdir", workdir),
                    *("--urls", json.dumps(urls)),
                    *("--burst", "0"),
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
    report(results, drained, assessed)
    if args.burst:
        backlog(secret, args.burst, args.burst_rounds, args.delay)


def backlog(secret: str, count: int, rounds: int, delay: float) -> None:
    """The burst of distinct assessments against a slow Prometheus, and its bound."""
    from bot.settings import Settings

    workers = Settings.model_fields["rollback_bot_workers"].default
    sims, urls = spawn("--serve", "simulators", "--burst", str(count), "--delay", str(delay))
    try:
        with tempfile.TemporaryDirectory() as workdir:
            proc, bot = spawn(
                *("--serve", "ours", "--secret", secret, "--workdir", workdir),
                *("--urls", json.dumps(urls)),
                *("--burst", str(count)),
            )
            try:
                burst(bot["url"], secret, min(count, 8))  # warm-up: connections, caches
                figures = []
                for _ in range(rounds):
                    # each service was just assessed: until that answer is too old to answer
                    # its asks (bot.runtime.work), an ask would not start a new assessment
                    time.sleep(JUST_ASSESSED_SECONDS + 0.5)
                    figures.append(burst(bot["url"], secret, count))
            finally:
                proc.kill()
                proc.wait()
    finally:
        sims.kill()
        sims.wait()
    print(
        f"\nburst of {count} `/rollback assess` (distinct services and people), every"
        f" Prometheus answer after {delay * 1000:.0f} ms, {workers} workers:"
    )
    for i, (slowest_ack, drained, started) in enumerate(figures, 1):
        if not started:
            print(f"  round {i}: !! no assessment started (every ask was answered by another)")
            continue
        bound = started * delay / workers
        print(
            f"  round {i}: {started} started, slowest ack {slowest_ack * 1000:.0f} ms;"
            f" drained {drained:.1f} s after the last ack; bound {started} x"
            f" {delay * 1000:.0f} ms / {workers} = {bound:.1f} s; ratio {drained / bound:.2f}"
            " (target <= 2)"
        )


def report(
    results: dict[tuple[str, int], list[float]],
    drained: dict[int, float],
    assessed: dict[int, int],
) -> None:
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
            " answered by the running or just-posted one; backlog drained"
            f" at most {drained[clients]:.1f} s after the last ack)"
        )


if __name__ == "__main__":
    main()
