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
