"""The HTTP server sleeps while idle, and still stops at once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from tests.conftest import Harness, catalog_yaml, service_yaml


def thread_cpu_seconds(thread: threading.Thread) -> float:
    """User + system CPU time of one thread of this process (Linux /proc)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def harness(make_harness: Any) -> Harness:
    h: Harness = make_harness(catalog_yaml(service_yaml("checkout", None)), prometheus_url=None)
    return h


def test_the_loop_timeout_waitress_uses_is_a_whole_second(harness: Harness) -> None:
    """waitress int()s the timeout: anything below 1 becomes 0, a busy poll."""
    server = HttpServer(WebApp(harness.bot), "127.0.0.1", 0, threads=2)
    try:
        effective = server._server.adj.asyncore_loop_timeout
        assert isinstance(effective, int) and effective >= 1
    finally:
        server.stop()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_an_idle_server_thread_uses_no_cpu(harness: Harness) -> None:
    thread = harness.server._thread
    assert thread is not None and thread.is_alive()
    assert harness.slash("help").status_code == 200  # it serves; now leave it alone
    before = thread_cpu_seconds(thread)
    time.sleep(0.5)  # the measured interval, not a wait for an outcome
    used = thread_cpu_seconds(thread) - before
    assert used < 0.05, f"the idle HTTP loop used {used:.2f} s of CPU in 0.5 s"


def test_stop_is_noticed_at_once(harness: Harness) -> None:
    """stop() wakes the loop itself: it does not wait out the (1 s) loop timeout."""
    server = HttpServer(WebApp(harness.bot), "127.0.0.1", 0, threads=2).start()
    assert harness.requester.http.get(f"{server.url}/healthz").status_code == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 0.9
    assert server._thread is not None and not server._thread.is_alive()
