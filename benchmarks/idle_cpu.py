"""Idle CPU of ``rollback-bot serve``: a bot with nothing to do must not burn a core.

Starts ``rollback-bot serve`` as its own process against the Slack and Prometheus simulators (as
tests/scenarios/test_serve_process.py does), waits until it listens and answers ``/healthz``,
lets it settle, then reads its CPU time (user + system, from ``/proc/<pid>/stat``) before and
after ``--seconds`` of idleness. The figure includes everything the process does while idle:
the HTTP loop, the scheduler's due-work ticks and lease renewals.

    python benchmarks/idle_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bot.demo import promql
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator

TARGET_PERCENT = 1.0
BOT_TOKEN = "xoxb-bench-token"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_listening(log: Path, proc: subprocess.Popen[bytes], deadline: float) -> int:
    while time.monotonic() < deadline:
        if m := re.search(r"listening on port (\d+)", log.read_text(errors="replace")):
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("serve did not start:\n" + log.read_text(errors="replace"))


def measure(seconds: float, settle: float) -> float:
    with (
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
        PrometheusSimulator() as prometheus,
        tempfile.TemporaryDirectory() as tmp,
    ):
        catalog = Path(tmp) / "rollback.yaml"
        signals = "\n".join(f"      {k}: '{q}'" for k, q in promql("checkout").items())
        catalog.write_text(
            "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    namespace: shop\n"
            f"    deployment: checkout-api\n    signals:\n{signals}\n"
            "    approvers: [U0APPROVER1]\n    responders: [U0ONCALL1]\n"
        )
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "bench-secret",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bot.db'}",
            "ROLLBACK_CONFIG": str(catalog),
            "PROMETHEUS_URL": prometheus.url,
        }
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            port = wait_listening(log, proc, time.monotonic() + 60)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).is_success
            time.sleep(settle)  # start-up work (imports, migrations, first ticks) is not idle
            before, started = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 100 * used / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    percent = measure(args.seconds, args.settle)
    verdict = "ok" if percent < TARGET_PERCENT else "OVER TARGET"
    print(
        f"idle CPU of `rollback-bot serve` over {args.seconds:.0f} s: {percent:.2f} % of a core"
        f" (target < {TARGET_PERCENT:.0f} %) {verdict}"
    )


if __name__ == "__main__":
    main()
