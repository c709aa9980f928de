"""The guard end to end: a real Prometheus scraping an exporter the test controls, the Kubernetes
simulator, the whole bot (Slack simulator, engine) — and an injected clock for the guard's time
(how long a breach has held), so that nothing waits for minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from storage.guard_models import GUARD_ACTOR, GuardStatus
from tests.conftest import Harness, catalog_yaml
from tests.guard.exporter import Exporter, scrape_config
from tests.prometheus_server import RealPrometheus, require_prometheus

T = KubeTarget(None, "shop")
ERRORS = 'max(guard_error_rate{service="checkout"})'


def service(guard: str) -> str:
    return (
        "  checkout:\n    namespace: shop\n    deployment: checkout-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
        f"    signals:\n      error_rate: '{ERRORS}'\n"
        "    auto_rollback:\n      enabled: true\n      interval_seconds: 30\n"
        "      watch_minutes: 30\n" + guard
    )


SUSTAINED = (
    "      triggers:\n"
    "        - {metric: error_rate, threshold: 0.01, comparison: greater_than,"
    " duration_seconds: 60}\n"
)


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    h: Harness
    kube: KubernetesClient
    exporter: Exporter
    prometheus: RealPrometheus
    clock: FakeClock

    def errors(self, value: float | None) -> None:
        """Set the exporter's error rate and wait until Prometheus has scraped it."""
        self.exporter.set("guard_error_rate", value, service="checkout")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = httpx.post(
                f"{self.prometheus.url}/api/v1/query", data={"query": ERRORS}, timeout=5
            ).json()["data"]["result"]
            seen = float(found[0]["value"][1]) if found else None
            if seen == value:
                return
            time.sleep(0.1)  # the scrape interval is 1 s: poll Prometheus with a deadline
        raise AssertionError(f"Prometheus did not see error rate {value} within 15 s")

    def release(self, image: str) -> None:
        self.kube.set_image(T, "checkout-api", "app", image)

    def tick(self, after_seconds: float = 0) -> None:
        self.clock.advance(after_seconds)
        self.h.bot.guard.tick()
        self.h.wait_idle()

    def recovered(self) -> None:
        """The rollback helped: the error rate falls (its verification gate reads it)."""
        self.errors(0.001)
        self.h.wait_rollbacks()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    with Exporter() as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter) -> Iterator[RealPrometheus]:
    require_prometheus()
    with RealPrometheus(config_text=scrape_config(exporter.target)) as running:
        yield running


@pytest.fixture
def make_world(make_harness: Any, exporter: Exporter, prometheus: RealPrometheus) -> Iterator[Any]:
    with KubeSimulator() as kube_sim:
        kube_sim.seed_deployment(
            "shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"]
        )
        kube = KubernetesClient(
            api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None
        )

        def make(guard: str = SUSTAINED) -> World:
            clock = FakeClock(datetime.now(UTC))
            h = make_harness(
                catalog_yaml(service(guard)), prometheus_url=prometheus.url, kube=kube, clock=clock
            )
            world = World(h, kube, exporter, prometheus, clock)
            world.errors(0.001)
            world.tick()  # the guard's first look: the running release is not new
            return world

        yield make
        kube.close()


def guard_messages(h: Harness) -> list[str]:
    texts = [c.params.get("text", "") for c in h.slack.calls_to("chat.postMessage")]
    texts += [c.params.get("text", "") for c in h.slack.calls_to("chat.update")]
    return [t for t in texts if "uard" in t]


def test_a_sustained_breach_rolls_the_new_release_back(make_world: Any) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()  # notices revision 3, guards it, first evaluation: breaching
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.revision == "3" and release.status == GuardStatus.WATCHING
    assert any("Guarding *checkout* checkout:v3 (revision 3)" in t for t in guard_messages(w.h))
    w.tick(30)
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []  # 30 s: not yet
    w.tick(30)  # held for 60 s: fires
    w.recovered()
    (rollback,) = w.h.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR
    assert "error_rate 0.2 > 0.01 for 1m00s" in rollback.reason
    assert rollback.status == "succeeded"
    assert w.kube.deployment(T, "checkout-api").images == {"app": "shop/checkout:v2"}
    fired = w.h.bot.deps.repo.guarded_release(release.id or 0)
    assert fired is not None and fired.status == GuardStatus.FIRED
    assert fired.rollback_id == rollback.id
    # the rollback's own revision is not a new release: no ping-pong
    w.tick(30)
    assert len(w.h.bot.deps.repo.list_guarded(service="checkout")) == 1


def test_a_spike_shorter_than_the_duration_does_nothing(make_world: Any) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()
    w.errors(0.001)
    w.tick(30)
    w.errors(0.2)
    w.tick(30)
    w.tick(30)  # breaching again for 30 s only
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []
    w.errors(0.001)
    w.tick(30 * 60)  # the watch is over
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.status == GuardStatus.ENDED
    assert any("Guard ended" in t for t in guard_messages(w.h))


def test_unknown_readings_make_the_guard_say_it_is_blind(make_world: Any) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    w.errors(None)  # the series disappears: unknown, never healthy
    for _ in range(3):
        w.tick(30)
    assert any("is blind" in t for t in guard_messages(w.h))
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []


def test_with_confirmation_the_channel_is_asked_and_keep_keeps(make_world: Any) -> None:
    w: World = make_world(SUSTAINED + "      require_manual_confirmation: true\n")
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()
    w.tick(30)
    w.tick(30)
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []
    posts = w.h.slack.calls_to("chat.postMessage")
    (asked,) = [c for c in posts if "Roll back now, or keep" in c.params.get("text", "")]
    message = {"ts": asked.response["ts"], "blocks": asked.params["blocks"]}
    keep = asked.params["blocks"][1]["elements"][1]
    resp = w.h.requester.click(message, keep, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    assert resp.status_code == 200
    answered = w.h.slack.wait_for("response_url").params  # the listener runs after the ack
    assert answered["text"].startswith(":white_check_mark: Release kept by <@U0ONCALL1>")
    w.clock.advance(600)
    w.h.bot.deps.due.tick()  # the confirmation's time is up, but it was answered
    w.h.wait_rollbacks()
    assert w.h.bot.deps.repo.list_rollbacks(service="checkout") == []


def test_an_unanswered_question_rolls_back_by_default(make_world: Any) -> None:
    asks = "      require_manual_confirmation: true\n      confirm_timeout_seconds: 300\n"
    w: World = make_world(SUSTAINED + asks)
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()
    w.tick(30)
    w.tick(30)
    w.clock.advance(301)
    w.h.bot.deps.due.tick()
    w.recovered()
    (rollback,) = w.h.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR and rollback.status == "succeeded"


def test_guard_command_shows_and_switches(make_world: Any) -> None:
    w: World = make_world()
    shown = w.h.slash("guard checkout").json()["text"]
    assert "waits for the next release" in shown and "revision 2" in shown
    refused = w.h.slash("guard checkout off", user_id="U0SOMEONE").json()["text"]
    assert "Only responders" in refused
    assert "paused" in w.h.slash("guard checkout off").json()["text"]
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()
    assert w.h.bot.deps.repo.list_guarded(service="checkout") == []  # paused: nothing watched
    assert "on again" in w.h.slash("guard checkout on").json()["text"]
