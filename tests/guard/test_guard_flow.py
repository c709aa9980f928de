"""The guard end to end (the world is in conftest.py): a sustained breach, a spike, blindness,
the confirmation question and the guard command."""

from __future__ import annotations

from typing import Any

from storage.guard_models import GUARD_ACTOR, GuardStatus
from tests.guard.conftest import SUSTAINED, T, World, guard_messages


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


def test_due_evaluations_run_on_their_own_schedule_between_detection_rounds(
    make_world: Any,
) -> None:
    w: World = make_world()
    w.release("shop/checkout:v3")
    w.errors(0.2)
    w.tick()  # detection: revision 3 guarded, first evaluation
    guard = w.h.bot.guard
    assert guard.evaluate_due() == 0  # nothing due: one read, no evaluation
    requests = len(w.sim.requests)
    w.clock.advance(30)
    assert guard.evaluate_due() == 1  # due: evaluated without a detection round
    assert len(w.sim.requests) == requests  # no Deployment was listed or read for it
    w.clock.advance(30)
    assert guard.evaluate_due() == 1  # held for 60 s: fires
    w.recovered()
    (rollback,) = w.h.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR and rollback.status == "succeeded"
