"""Fixtures for paging tests: the bot with an injected clock, behind HTTP, next to the Slack and
Twilio simulators. ``start_ladder`` schedules ``page.start`` the way the notifications code does;
``tick`` runs due work at the injected time, so escalation is tested without waiting."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.rollback.lifecycle import DueKind, finished_key, sla_key
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester
from bot.sim.twilio_api import TwilioSimulator
from bot.sim.twilio_messages import SimMessage
from storage.models import Page
from storage.repo.records import NewWork
from tests.conftest import BOT_TOKEN, catalog_yaml, closed_port_url, service_yaml

FROM_NUMBER = "+15550009999"
PRIMARY, SECONDARY, SECONDARY_2 = "+15550100001", "+15550100002", "+15550100003"
LEAD = "+15550100004"
CHANNEL = "C0CHECKOUT"
LADDER = (
    "[{name: Primary on-call, phone: '+15550100001'},"
    " {name: Senior SRE, phone: '+15550100002', after_minutes: 5},"
    " {name: SRE backup, phone: '+15550100003', after_minutes: 5},"
    " {name: Engineering lead, phone: '+15550100004', after_minutes: 15}]"
)


class ManualClock:
    """An aware UTC clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def paging_catalog(oncall: str | None = LADDER) -> str:
    extra: dict[str, Any] = {"channel": CHANNEL}
    if oncall:
        extra["oncall"] = oncall
    return catalog_yaml(service_yaml("checkout", None, **extra))


@dataclass
class PagingHarness:
    bot: BotApp
    server: HttpServer
    slack: SlackSimulator
    twilio: TwilioSimulator
    requester: SlackRequester
    clock: ManualClock
    http: httpx.Client
    started: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def new_rollback(self, service: str = "checkout") -> int:
        rollback = self.bot.deps.repo.create_rollback(
            service=service,
            kind="immediate",
            strategy="undo",
            requested_by="U0ONCALL1",
            status="running",
            now=self.clock(),
            reason="5xx storm after v3",
            channel_id=CHANNEL,
        )
        assert rollback.id is not None
        return rollback.id

    def start_ladder(self, rollback_id: int, reason: str = "critical", summary: str = "") -> None:
        self.bot.deps.due.schedule(
            "page.start",
            f"page-start:{rollback_id}:{reason}",
            self.clock(),
            {"rollback_id": rollback_id, "reason": reason, "summary": summary or "5xx storm"},
        )

    def finish(self, rollback_id: int, status: str, error: str | None = None) -> None:
        """End the rollback as the engine does: its status and the listeners' due work in one
        transaction (the next tick tells the notifications and the pager)."""
        told = NewWork(
            DueKind.ROLLBACK_FINISHED, finished_key(rollback_id), self.clock(), {"id": rollback_id}
        )
        repo = self.bot.deps.repo
        assert repo.set_rollback_status(rollback_id, status, self.clock(), error, schedule=[told])

    def breach_sla(self, rollback_id: int) -> None:
        """The rollback's SLA check comes due now (the notifications page ``sla``)."""
        payload = {"rollback_id": rollback_id}
        self.bot.deps.due.schedule(DueKind.SLA_CHECK, sla_key(rollback_id), self.clock(), payload)

    def settle(self) -> None:
        """Tick until the due work that ticks schedule (listeners, pages) has all run."""
        while self.tick():
            pass

    def tick(self, **advance: float) -> int:
        # work started by an ack or a webhook finishes first: moving the clock past its claim
        # while it still runs would let this tick run it a second time
        assert self.bot.deps.work.wait_idle(10), "background work still running"
        if advance:
            self.clock.advance(**advance)
        ran = self.bot.deps.due.tick()
        assert self.bot.deps.work.wait_idle(10), "background work still running"
        return ran

    def sms_to(self, phone: str) -> list[SimMessage]:
        return [m for m in self.twilio.messages if m.to == phone]

    def pages(self, rollback_id: int, reason: str = "critical") -> list[Page]:
        return self.bot.deps.repo.list_pages(rollback_id, reason)

    def channel_texts(self, channel: str = CHANNEL) -> list[str]:
        return [str(m.get("text", "")) for m in self.slack.messages(channel)]

    def reply(self, phone: str, body: str, **kwargs: Any) -> httpx.Response:
        return self.twilio.send_inbound(f"{self.url}/twilio/sms", phone, body, **kwargs)


@pytest.fixture
def twilio() -> Iterator[TwilioSimulator]:
    with TwilioSimulator() as sim:
        yield sim


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_paging(
    slack: SlackSimulator, twilio: TwilioSimulator, clock: ManualClock, tmp_path: Path
) -> Iterator[Any]:
    """``make_paging(catalog_text=…, is_sms_enabled=True, twilio_auth_token=None)``: a started
    app (a wrong token plays bad credentials); call it again for a second app on the same
    database (a restart)."""
    started: list[tuple[BotApp, HttpServer, httpx.Client]] = []
    secret = secrets.token_hex(16)

    def make(
        catalog_text: str | None = None,
        *,
        is_sms_enabled: bool = True,
        twilio_auth_token: str | None = None,
    ) -> PagingHarness:
        public_url = closed_port_url()  # a free port; the server listens there below
        twilio_settings: dict[str, Any] = (
            {
                "twilio_account_sid": twilio.account_sid,
                "twilio_auth_token": SecretStr(twilio_auth_token or twilio.auth_token),
                "twilio_from_number": FROM_NUMBER,
                "twilio_api_url": twilio.url,
            }
            if is_sms_enabled
            else {}
        )
        config = Settings(
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp_path / 'paging.db'}",
            public_url=public_url,
            rollback_bot_http_threads=8,
            rollback_bot_workers=4,
            **twilio_settings,
        )
        catalog = parse_catalog(catalog_text or paging_catalog(), "test.yaml")
        bot = build_app(config, catalog=catalog, clock=clock)
        port = int(public_url.rsplit(":", 1)[1])
        server = HttpServer(WebApp(bot), "127.0.0.1", port, threads=8).start()
        http = httpx.Client(timeout=10)
        started.append((bot, server, http))
        requester = SlackRequester(server.url, secret, http, response_url=slack.response_url("p"))
        return PagingHarness(bot, server, slack, twilio, requester, clock, http)

    yield make
    for bot, server, http in started:
        http.close()
        server.stop()
        bot.close()
