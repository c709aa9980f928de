"""CPU time of `/rollback assess checkout`: per ack (ours vs a bare Bolt app) and per assessment.

Wall-clock benchmarks are noisy on a shared machine; CPU time is not (much). Everything measured
runs in this process: signed slash commands go sequentially through the real WSGI app (our
``WebApp`` around the Bolt app, or a bare Bolt app that only acks) without a socket, and
``time.process_time`` (all threads of the process: Bolt's listener threads, the probe pool) is
read around them. The Slack and Prometheus simulators run in a child process, so their CPU is
not counted.

- ack, ours: the slot of ``checkout`` is held, so every request is answered "already running"
  (what 98 % of the asks in ``benchmarks/ack_latency.py`` get);
- ack, bare: Bolt's own work for the same request (signature, parsing, dispatch, the ack);
- assessment: one assessment end to end after the ack (store the row, read the four signals and
  the health URL and the Deployment, score, store, build the message, post it, audit), run one
  after another.

    python benchmarks/ack_cpu.py [--acks 2000] [--assessments 100] [--profile ours|bare|assessment]

``--profile`` prints the top of a cProfile of that path, every thread included, in CPU time
(``time.thread_time``: waiting on a socket or a lock costs nothing, as it costs no CPU).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from pydantic import SecretStr
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

# run as a script, the repository root is not on sys.path; the benchmarks package is
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ack_latency import spawn
from bot.app import build_app
from bot.assessment.service import start_assessment
from bot.demo import demo_catalog
from bot.notify.reply import Asker
from bot.runtime.logs import setup_logging
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.kubeconfig import kubeconfig_text
from bot.sim.slack_client import SlackRequester, signed_headers

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FORM = "application/x-www-form-urlencoded"


class ThreadProfiles:
    """cProfile in every thread started after ``install`` (and in this one)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        def first_event(*_: Any) -> None:
            profile = cProfile.Profile(time.thread_time)
            with self._lock:
                self.profiles.append(profile)
            profile.enable()  # replaces this hook in this thread

        threading.setprofile(first_event)
        main = cProfile.Profile(time.thread_time)
        self.profiles.append(main)
        main.enable()

    def report(self, top: int = 40, dump: str = "") -> str:
        self.profiles[0].disable()
        threading.setprofile(None)
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for profile in self.profiles[1:]:
            profile.create_stats()
            stats.add(profile)
        if dump:
            stats.dump_stats(dump)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return out.getvalue()


def environ_for(secret: str, body: str) -> dict[str, Any]:
    raw = body.encode()
    headers = signed_headers(secret, body, FORM)
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": FORM,
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": headers["X-Slack-Request-Timestamp"],
        "HTTP_X_SLACK_SIGNATURE": headers["X-Slack-Signature"],
        "wsgi.input": io.BytesIO(raw),
    }


def send(app: WsgiApp, environ: dict[str, Any]) -> bytes:
    status: list[str] = []

    def start(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)

    body = b"".join(app(environ, start))
    assert status[0].startswith("200"), (status, body)
    return body


def thread_cpu(threads: Iterable[threading.Thread]) -> dict[int, float]:
    """CPU seconds each thread has used so far (by its ident)."""
    return {
        t.ident: time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for t in threads
        if t.ident is not None and t.is_alive()
    }


def cpu_per_ack(app: WsgiApp, bolt: App, secret: str, n: int, expect: bytes) -> float:
    """CPU µs per signed slash command, sent one after another, in the threads that serve it:
    this one (as the WSGI server's would) and Bolt's listener threads. (The whole process's CPU
    was the same within 1 %: the background threads are idle meanwhile.)"""
    requester = SlackRequester("http://unused", secret, None)  # type: ignore[arg-type]
    bodies = [
        requester.slash_body("assess checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
        for _ in range(n)
    ]
    environs = [environ_for(secret, b) for b in bodies]
    for environ in environs[:20]:  # warm-up: threads, caches
        assert expect in send(app, environ)
    executor = bolt._listener_runner.listener_executor

    def serving() -> list[threading.Thread]:
        return [threading.current_thread(), *executor._threads]  # type: ignore[attr-defined]

    before = thread_cpu(serving())
    for environ in environs[20:]:
        send(app, environ)
    after = thread_cpu(serving())
    used = sum(cpu - before.get(ident, 0.0) for ident, cpu in after.items())
    return used / (n - 20) * 1e6


def bare_app(secret: str, slack_api: str) -> App:
    bare = App(
        client=WebClient(token="xoxb-bench", base_url=slack_api),
        signing_secret=secret,
        listener_executor=ThreadPoolExecutor(max_workers=32),
    )

    @bare.command("/rollback")
    def only_ack(ack: Ack) -> None:
        ack(text="ok", response_type="ephemeral")

    return bare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--acks", type=int, default=2000)
    parser.add_argument("--assessments", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["ours", "bare", "assessment"])
    parser.add_argument("--dump", default="", help="with --profile: write the pstats here too")
    args = parser.parse_args()
    setup_logging("WARNING")
    secret = secrets.token_hex(16)
    sims, urls = spawn("--serve", "simulators", "--burst", "0", "--delay", "0")
    profiles = ThreadProfiles()
    try:
        with TemporaryDirectory() as workdir:
            kubeconfig = Path(workdir) / "kubeconfig"
            kubeconfig.write_text(kubeconfig_text({"sim": urls["kube"]}))
            settings = Settings(
                slack_bot_token=SecretStr("xoxb-bench"),
                slack_signing_secret=SecretStr(secret),
                slack_api_url=urls["slack"],
                prometheus_url=urls["prometheus"],
                kubeconfig=str(kubeconfig),
                database_url=f"sqlite:///{Path(workdir) / 'bench.db'}",
            )
            bot = build_app(settings, catalog=demo_catalog(urls["prometheus"]))
            ours = WebApp(bot)
            bare = bare_app(secret, urls["slack"])
            bare_wsgi: WsgiApp = SlackRequestHandler(bare)
            if args.profile:
                profiles.install()
            # the slot is held: every ask of ours is answered by the "running" assessment
            assert bot.deps.work.assessments.claim("U0OTHER", "checkout", "C0DEPLOYS") is None
            figures: dict[str, list[float]] = {"bare": [], "ours": [], "assessment": []}
            for _ in range(args.rounds):  # interleaved: the machine's load changes over time
                if args.profile in (None, "bare"):
                    per = cpu_per_ack(bare_wsgi, bare, secret, args.acks // args.rounds, b"ok")
                    figures["bare"].append(per)
                if args.profile in (None, "ours"):
                    per = cpu_per_ack(
                        ours, bot.bolt, secret, args.acks // args.rounds, b"already running"
                    )
                    figures["ours"].append(per)
            bot.deps.work.assessments.release("U0OTHER", "checkout")
            for _ in range(args.rounds if args.profile in (None, "assessment") else 0):
                figures["assessment"].append(
                    cpu_per_assessment(bot, max(1, args.assessments // args.rounds))
                )
            bot.close()
    finally:
        sims.kill()
        sims.wait()
    if args.profile:
        print(profiles.report(dump=args.dump))
    report(figures)


def report(figures: dict[str, list[float]]) -> None:
    def spread(values: list[float], unit: str, digits: int) -> str:
        low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
        return f"{statistics.median(values):8.{digits}f} {unit} (rounds: {low}–{high})"

    print("CPU in the threads serving the request (this one and Bolt's listener threads),")
    print(f"median of {max(len(v) for v in figures.values())} interleaved rounds:")
    if figures["bare"]:
        print(f"  ack, bare Bolt:          {spread(figures['bare'], 'µs', 0)}")
    if figures["ours"]:
        print(f"  ack, ours (slot held):   {spread(figures['ours'], 'µs', 0)}")
    if figures["bare"] and figures["ours"]:
        ratios = [o / b for o, b in zip(figures["ours"], figures["bare"], strict=True)]
        print(f"  ours / bare:             {spread(ratios, '', 2)}")
    if figures["assessment"]:
        print(
            f"  assessment, end to end:  {spread(figures['assessment'], 'ms', 2)}  (whole process)"
        )


def cpu_per_assessment(bot: Any, n: int) -> float:
    """CPU ms per assessment of checkout (run here, one after another; the pool threads count)."""
    service = bot.deps.catalog.get("checkout")

    def one(i: int) -> None:
        asker = Asker(
            user="U0ONCALL1",
            channel="C0DEPLOYS",
            delivery_key=f"trigger:bench-{i}-{secrets.token_hex(4)}",
            respond=lambda **_: None,
        )
        start_assessment(bot.deps, service, asker)

    for i in range(3):  # warm-up: connections
        one(i)
    t0 = time.process_time()
    for i in range(n):
        one(i)
    return (time.process_time() - t0) / n * 1e3


if __name__ == "__main__":
    main()
