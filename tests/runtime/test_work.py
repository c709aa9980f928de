"""The background pools: urgent work never waits behind assessments, and one person cannot fill
the assessment lane alone."""

from __future__ import annotations

import threading

from bot.runtime.work import AssessmentSlots, BackgroundWork


def test_urgent_work_runs_while_the_bulk_lane_is_full() -> None:
    work = BackgroundWork(max_workers=2)
    release = threading.Event()
    try:
        for n in range(10):  # a burst of slow assessments: both bulk workers stuck, 8 queued
            work.submit(f"assessment {n}", release.wait, 30, lane="bulk")
        voted = threading.Event()
        work.submit("approve button", voted.set)  # the urgent lane
        assert voted.wait(5), "the vote waited behind the assessments"
        assert not release.is_set()
    finally:
        release.set()
        assert work.wait_idle(10)
        work.shutdown()


def test_a_service_is_assessed_once_at_a_time() -> None:
    slots = AssessmentSlots()
    assert slots.claim("U1", "checkout", "C1") is None
    busy = slots.claim("U2", "checkout", "C2")
    assert busy is not None and "already running (asked by <@U1>" in busy and "<#C2>" in busy
    slots.release("U1", "checkout")
    assert slots.claim("U2", "checkout", "C2") is None


def test_one_person_holds_at_most_three_assessments() -> None:
    slots = AssessmentSlots(per_user=3)
    for service in ("a", "b", "c"):
        assert slots.claim("U1", service, "C1") is None
    refused = slots.claim("U1", "d", "C1")
    assert refused is not None and "You have 3 assessments running" in refused
    assert slots.claim("U2", "d", "C1") is None  # others are not held back
    slots.release("U1", "a")
    assert slots.claim("U1", "e", "C1") is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_ask_right_after_an_assessment_was_posted_is_answered_by_it() -> None:
    """Ten people asking at once during an incident get one assessment, not ten in a row: an ask
    within a few seconds of the latest assessment's post, in the channel it was posted in, is
    answered by it, like one made while it ran; after that, in another channel, with other
    regions, or for **Assess again**, a new one runs."""
    clock = Clock()
    slots = AssessmentSlots(just_assessed_seconds=5, clock=clock)
    assert slots.claim("U1", "checkout", "C1") is None
    changes = slots.changes("checkout")
    slots.release("U1", "checkout")
    slots.posted("checkout", 41, asked_by="U1", channel="C1", decision="MONITOR", changes=changes)

    clock.now += 2
    answered = slots.claim("U2", "checkout", "C1")
    assert answered is not None
    assert "*checkout* was assessed 2 s ago (#41, MONITOR, asked by <@U1>)" in answered
    assert "the result is in <#C1>" in answered and "ask again in 3 s" in answered
    assert slots.claim("U2", "payments", "C1") is None  # other services are not affected
    slots.release("U2", "payments")
    assert slots.claim("U2", "checkout", "C1", regions=("eu",)) is None  # nor other regions
    slots.release("U2", "checkout")
    assert slots.claim("U2", "checkout", "D2") is None  # nor a channel the asker may not read
    slots.release("U2", "checkout")
    assert slots.claim("U3", "checkout", "C1", may_reuse=False) is None  # Assess again
    slots.release("U3", "checkout")

    clock.now += 3  # 5 s after the post: new readings
    assert slots.claim("U2", "checkout", "C1") is None


def test_a_rollback_makes_the_next_ask_assess_anew() -> None:
    clock = Clock()
    slots = AssessmentSlots(just_assessed_seconds=5, clock=clock)
    changes = slots.changes("checkout")
    slots.posted(
        "checkout", 41, asked_by="", channel="C1", decision="IMMEDIATE ROLLBACK", changes=changes
    )
    answered = slots.claim("U2", "checkout", "C1")
    assert answered is not None and "(#41, IMMEDIATE ROLLBACK, for alerts)" in answered
    slots.forget("checkout")  # a rollback of checkout started (or ended)
    assert slots.claim("U2", "checkout", "C1") is None
    slots.release("U2", "checkout")

    # an assessment that began reading before the rollback started is posted after it: it
    # describes the service before the rollback, so it answers nobody
    slots.posted("checkout", 42, asked_by="U1", channel="C1", decision="MONITOR", changes=changes)
    assert slots.claim("U2", "checkout", "C1") is None
