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
  the health URL, score, store, build the message, post it, audit), run one after another.

    python benchmarks/ack_cpu.py [--acks 2000] [--assessments 100] [--profile ours|bare|assessment]

``--profile`` prints the top of a cProfile of that path, every thread included.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
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

from benchmarks.ack_latency import spawn  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.assessment.service import start_assessment  # noqa: E402
from bot.demo import demo_catalog  # noqa: E402
from bot.notify.reply import Asker  # noqa: E402
from bot.runtime.logs import setup_logging  # noqa: E402
from bot.runtime.web import WebApp  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sim.slack_client import SlackRequester, signed_headers  # noqa: E402

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FORM = "application/x-www-form-urlencoded"


class ThreadProfiles:
    """cProfile in every thread started after ``install`` (and in this one)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        def first_event(*_: Any) -> None:
            profile = cProfile.Profile()
            with self._lock:
                self.profiles.append(profile)
            profile.enable()  # replaces this hook in this thread

        threading.setprofile(first_event)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()

    def report(self, top: int = 40) -> str:
        self.profiles[0].disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for profile in self.profiles[1:]:
            profile.create_stats()
            stats.add(profile)
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


def cpu_per_ack(app: WsgiApp, secret: str, n: int, expect: bytes) -> float:
    """CPU µs per signed slash command, sent one after another."""
    requester = SlackRequester("http://unused", secret, None)  # type: ignore[arg-type]
    bodies = [
        requester.slash_body("assess checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
        for _ in range(n)
    ]
    environs = [environ_for(secret, b) for b in bodies]
    for environ in environs[:20]:  # warm-up: threads, caches
        assert expect in send(app, environ)
    t0 = time.process_time()
    for environ in environs[20:]:
        send(app, environ)
    return (time.process_time() - t0) / (n - 20) * 1e6


def bare_app(secret: str, slack_api: str) -> WsgiApp:
    bare = App(
        client=WebClient(token="xoxb-bench", base_url=slack_api),
        signing_secret=secret,
        listener_executor=ThreadPoolExecutor(max_workers=32),
    )

    @bare.command("/rollback")
    def only_ack(ack: Ack) -> None:
        ack(text="ok", response_type="ephemeral")

    return SlackRequestHandler(bare)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--acks", type=int, default=2000)
    parser.add_argument("--assessments", type=int, default=100)
    parser.add_argument("--profile", choices=["ours", "bare", "assessment"])
    args = parser.parse_args()
    setup_logging("WARNING")
    secret = secrets.token_hex(16)
    sims, urls = spawn("--serve", "simulators")
    profiles = ThreadProfiles()
    try:
        with TemporaryDirectory() as workdir:
            settings = Settings(
                slack_bot_token=SecretStr("xoxb-bench"),
                slack_signing_secret=SecretStr(secret),
                slack_api_url=urls["slack"],
                prometheus_url=urls["prometheus"],
                database_url=f"sqlite:///{Path(workdir) / 'bench.db'}",
            )
            bot = build_app(settings, catalog=demo_catalog(urls["prometheus"]))
            ours = WebApp(bot)
            bare = bare_app(secret, urls["slack"])
            if args.profile:
                profiles.install()
            figures: dict[str, float] = {}
            if args.profile in (None, "bare"):
                figures["bare"] = cpu_per_ack(bare, secret, args.acks, b"ok")
            if args.profile in (None, "ours"):
                # the slot is held: every ask is answered by the "running" assessment
                assert bot.deps.work.assessments.claim("U0OTHER", "checkout", "C0DEPLOYS") is None
                figures["ours"] = cpu_per_ack(ours, secret, args.acks, b"already running")
                bot.deps.work.assessments.release("U0OTHER", "checkout")
            if args.profile in (None, "assessment"):
                figures["assessment"] = cpu_per_assessment(bot, args.assessments)
            bot.close()
    finally:
        sims.kill()
        sims.wait()
    if args.profile:
        print(profiles.report())
    if "bare" in figures:
        print(f"ack, bare Bolt:         {figures['bare']:8.0f} µs CPU per ack")
    if "ours" in figures:
        print(f"ack, ours (slot held):  {figures['ours']:8.0f} µs CPU per ack")
    if "ours" in figures and "bare" in figures:
        print(f"ours / bare:            {figures['ours'] / figures['bare']:8.2f}")
    if "assessment" in figures:
        print(f"assessment end to end:  {figures['assessment']:8.2f} ms CPU per assessment")


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

    for i in range(5):  # warm-up: connections
        one(i)
    t0 = time.process_time()
    for i in range(n):
        one(i)
    return (time.process_time() - t0) / n * 1e3


if __name__ == "__main__":
    main()
