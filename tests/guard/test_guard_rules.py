"""The guard's rules against the real Prometheus: a trigger relative to the signal before the
release (a baseline backfilled with promtool), and what turns a firing trigger into a question
or into nothing — the day's automatic rollbacks used up, a failed safety check, a rollback
already under way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import AppsV1Api

from bot.sim.kube_api import KubeSimulator
from storage.guard_models import GUARD_ACTOR, GuardStatus, states_from_json
from tests.guard.conftest import SUSTAINED, T, World, guard_messages
from tests.guard.exporter import Exporter, scrape_config
from tests.prometheus_server import RealPrometheus, Series, require_prometheus

pytestmark = pytest.mark.prometheus

BASELINE = 0.4
RELATIVE = (
    "      baseline_minutes: 10\n"
    "      triggers:\n"
    "        - {metric: latency_p95_seconds, factor: 5, relative_to: baseline,"
    " duration_seconds: 60}\n"
)


@pytest.fixture
def backfilled(exporter: Exporter) -> Iterator[Callable[[float | None], RealPrometheus]]:
    """``backfilled(0.4)``: a fresh Prometheus holding 15 minutes of p95 latency at 0.4 s that
    ended just before now (written with promtool before the release), and scraping the exporter
    for what comes after. ``backfilled(None)``: no history at all."""
    started: list[RealPrometheus] = []

    def start(baseline: float | None) -> RealPrometheus:
        require_prometheus()
        exporter.set("guard_latency_p95", None, service="checkout")  # the history is the backfill
        history = (
            []
            if baseline is None
            else [Series("guard_latency_p95", {"service": "checkout"}, "gauge", baseline)]
        )
        prometheus = RealPrometheus(
            history,
            end=time.time() - 20,
            duration_s=15 * 60,
            config_text=scrape_config(exporter.target),
        )
        started.append(prometheus.__enter__())
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()


def relative_world(make_world: Any, prometheus: RealPrometheus) -> World:
    w: World = make_world(RELATIVE, prometheus_url=prometheus.url)
    w.errors(0.001)  # what the rollback's verification gate reads
    return w


def rollbacks(w: World) -> list[Any]:
    return list(w.h.bot.deps.repo.list_rollbacks(service="checkout"))


def test_six_times_the_baseline_for_the_duration_rolls_back(
    make_world: Any, backfilled: Callable[[float | None], RealPrometheus]
) -> None:
    w = relative_world(make_world, backfilled(BASELINE))
    w.release("shop/checkout:v3")
    w.latency(6 * BASELINE)
    w.tick()  # guarded: the baseline is read from the window before the release
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.baseline == {"latency_p95_seconds": pytest.approx(BASELINE)}
    w.tick(30)
    assert rollbacks(w) == []
    w.tick(30)
    w.latency(BASELINE)
    w.recovered()
    (rollback,) = rollbacks(w)
    assert rollback.requested_by == GUARD_ACTOR
    assert (
        "latency_p95_seconds 2.4 = 6.0× the 0.4 before the release (limit 5×) for 1m00s"
        in rollback.reason
    )
    assert w.kube.deployment(T, "checkout-api").images == {"app": "shop/checkout:v2"}


def test_four_times_the_baseline_does_not_fire(
    make_world: Any, backfilled: Callable[[float | None], RealPrometheus]
) -> None:
    w = relative_world(make_world, backfilled(BASELINE))
    w.release("shop/checkout:v3")
    w.latency(4 * BASELINE)
    w.tick()
    for _ in range(4):
        w.tick(30)
    assert rollbacks(w) == []
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.status == GuardStatus.WATCHING and release.evaluations == 5
    state = states_from_json(release.states)["latency_p95_seconds"]
    assert state.breach_since is None and state.last_value == pytest.approx(1.6)


def test_a_relative_trigger_without_a_baseline_is_unknown_never_fired(
    make_world: Any, backfilled: Callable[[float | None], RealPrometheus]
) -> None:
    w = relative_world(make_world, backfilled(None))
    w.release("shop/checkout:v3")
    w.latency(6 * BASELINE)  # far beyond any limit, but there is nothing to compare with
    w.tick()
    for _ in range(4):
        w.tick(30)
    assert rollbacks(w) == []
    (release,) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert release.baseline == {"latency_p95_seconds": None}
    assert release.status == GuardStatus.WATCHING
    state = states_from_json(release.states)["latency_p95_seconds"]
    assert state.unknown_in_row == 5 and state.breach_since is None and state.fired_at is None
    assert any(":grey_question: unknown (5 in a row)" in t for t in guard_messages(w.h))


# --- what turns a firing trigger into a question, or into nothing ------------------------------


def breach(w: World, image: str) -> None:
    """A new release whose error rate stays bad for the trigger's 60 s."""
    w.release(image)
    w.errors(0.2)
    w.tick()
    w.tick(30)
    w.tick(30)
    w.h.wait_idle()


def asked(w: World) -> str:
    texts = [c.params.get("text", "") for c in w.h.slack.calls_to("chat.postMessage")]
    (question,) = [str(t) for t in texts if "Roll back now, or keep" in t]
    return question


def test_max_per_day_reached_asks_instead_of_rolling_back(make_world: Any) -> None:
    w: World = make_world(SUSTAINED + "      max_per_day: 1\n")
    breach(w, "shop/checkout:v3")
    w.recovered()
    (first,) = rollbacks(w)
    assert first.requested_by == GUARD_ACTOR and first.status == "succeeded"

    breach(w, "shop/checkout:v4")  # the next release is as bad: no second automatic rollback
    assert rollbacks(w) == [first]
    question = asked(w)
    assert (
        "Not rolling back by itself: 1 automatic rollbacks of checkout in the last 24 h"
        " (max_per_day: 1): no rollback loops" in question
    )
    assert "the guard will keep the release" in question  # silence never loops either
    (latest, _) = w.h.bot.deps.repo.list_guarded(service="checkout")
    assert latest.revision == "5" and latest.status == GuardStatus.FIRED


def test_no_previous_revision_fails_the_safety_check_and_asks(
    make_world: Any, kube_sim: KubeSimulator
) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    apps = AppsV1Api(kube_sim.api_client())
    for rs in apps.list_namespaced_replica_set("shop").items:  # only revision 3 is left
        meta = rs.metadata
        assert meta is not None and meta.name and meta.annotations
        if meta.annotations["deployment.kubernetes.io/revision"] != "3":
            apps.delete_namespaced_replica_set(meta.name, "shop")
    w.errors(0.2)
    w.tick()
    w.tick(30)
    w.tick(30)
    assert rollbacks(w) == []
    question = asked(w)
    assert "Not rolling back by itself: verify_previous_version_healthy:" in question
    assert 'no rollout history found for deployment "checkout-api"' in question
    assert "the guard will keep the release" in question


def test_verify_rollback_tested_asks_while_no_drill_exists(make_world: Any) -> None:
    w: World = make_world(SUSTAINED + "      safety_checks: {verify_rollback_tested: true}\n")
    breach(w, "shop/checkout:v3")
    assert rollbacks(w) == []
    assert (
        "Not rolling back by itself: verify_rollback_tested: no successful drill of this"
        " rollback is recorded" in asked(w)
    )


def test_a_rollback_already_under_way_wins(make_world: Any) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()
    assert "Rollback request #1" in w.h.slash("plan checkout 5xx after v3").json()["text"]
    w.tick(30)
    w.tick(30)
    (pending,) = rollbacks(w)
    assert pending.status == "pending_approval" and pending.requested_by == "U0ONCALL1"
    texts = [c.params.get("text", "") for c in w.h.slack.calls_to("chat.postMessage")]
    assert any(
        "Rollback #1 of *checkout* is already pending approval: the guard leaves it to that one"
        in t
        for t in texts
    )
    assert not [t for t in texts if "Roll back now, or keep" in t]
    assert w.kube.deployment(T, "checkout-api").images == {"app": "shop/checkout:v3"}
