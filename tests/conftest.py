"""Shared fixtures: the simulators, and the whole bot served over HTTP on port 0."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.demo import promql
from bot.deps import utcnow
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackCall, SlackSimulator
from bot.sim.slack_client import SlackRequester

REQUIRE_SERVICES = os.environ.get("ROLLBACK_BOT_REQUIRE_SERVICES") == "1"
BOT_TOKEN = "xoxb-test-token"


def skip_or_fail(reason: str) -> None:
    """Missing external service: skip locally, fail in CI (ROLLBACK_BOT_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ROLLBACK_BOT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def closed_port_url() -> str:
    """A URL on which nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def service_yaml(name: str, health_url: str | None, **extra: Any) -> str:
    lines = [f"  {name}:", "    namespace: shop", f"    deployment: {name}-api"]
    if health_url:
        lines.append(f"    health_url: {health_url}")
    for key, value in extra.items():
        lines.append(f"    {key}: {value}")
    lines.append("    signals:")
    lines += [f"      {k}: '{q}'" for k, q in promql(name).items()]
    lines += ["    approvers: [U0APPROVER1]", "    responders: [U0ONCALL1]"]
    return "\n".join(lines)


def catalog_yaml(*services: str) -> str:
    return "defaults:\n  channel: C0DEPLOYS\n  sla_minutes: 15\nservices:\n" + "\n".join(services)


def set_service_values(
    prometheus: PrometheusSimulator,
    name: str,
    *,
    error_rate: float | None,
    latency: float | None,
    sessions: float | None,
    db_up: float | None,
) -> None:
    q = promql(name)
    prometheus.set_value(q["error_rate"], error_rate)
    prometheus.set_value(q["latency_p95_seconds"], latency)
    prometheus.set_value(q["user_sessions_per_min"], sessions)
    prometheus.set_value(q["db_up"], db_up)


@dataclass
class Harness:
    """The bot as Slack sees it: a real HTTP server, a Slack simulator, a signed-request sender."""

    bot: BotApp
    server: HttpServer
    slack: SlackSimulator
    requester: SlackRequester
    secret: str

    def slash(self, text: str, user_id: str = "U0ONCALL1") -> httpx.Response:
        return self.requester.slash(text, user_id=user_id, channel_id="C0DEPLOYS")

    def wait_idle(self) -> None:
        assert self.bot.deps.work.wait_idle(10), "background work still running after 10 s"

    def posted(self) -> list[SlackCall]:
        return self.slack.calls_to("chat.postMessage")

    def wait_rollbacks(self) -> None:
        """Rollbacks done, and what follows their end (listeners run as due work) too."""
        assert self.bot.deps.engine.wait_idle(30), "rollbacks still running after 30 s"
        assert self.bot.deps.work.wait_idle(30), "follow-up work still running after 30 s"
        assert self.bot.deps.engine.wait_idle(30), "rollbacks still running after 30 s"


@pytest.fixture
def slack() -> Iterator[SlackSimulator]:
    with SlackSimulator(bot_token=BOT_TOKEN) as sim:
        yield sim


@pytest.fixture
def prometheus() -> Iterator[PrometheusSimulator]:
    with PrometheusSimulator() as sim:
        yield sim


@pytest.fixture
def make_harness(slack: SlackSimulator, tmp_path: Path) -> Iterator[Any]:
    started: list[tuple[BotApp, HttpServer, httpx.Client]] = []

    def make(catalog_text: str, *, prometheus_url: str | None, **settings: Any) -> Harness:
        settings_kube = {"kube": settings.pop("kube")} if "kube" in settings else {}
        clock = settings.pop("clock", utcnow)  # an injected clock (due work, expiry, SLA tests)
        secret = secrets.token_hex(16)
        config = Settings(
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=slack.api_url,
            database_url=settings.pop("database_url", f"sqlite:///{tmp_path / 'bot.db'}"),
            prometheus_url=prometheus_url,
            rollback_bot_http_threads=8,
            rollback_bot_workers=4,
            **settings,
        )
        kube = settings_kube.pop("kube", None)
        bot = build_app(
            config, catalog=parse_catalog(catalog_text, "test.yaml"), kube=kube, clock=clock
        )
        server = HttpServer(WebApp(bot), "127.0.0.1", 0, threads=8).start()
        http = httpx.Client(timeout=10)
        started.append((bot, server, http))
        requester = SlackRequester(server.url, secret, http, response_url=slack.response_url("cmd"))
        return Harness(bot, server, slack, requester, secret)

    yield make
    for bot, server, http in started:
        http.close()
        server.stop()
        bot.close()
