"""The guard's triggers, table-driven: sustained breaches fire, spikes do not, unknown readings
neither fire nor reset, relative triggers need their baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.rollback.triggers import (
    BLIND_AFTER,
    Comparison,
    Trigger,
    TriggerState,
    breach_text,
    evaluate,
    is_blind,
)

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
ERRORS = Trigger("error_rate", threshold=0.01, duration_seconds=120)
HEALTH = Trigger("health_check_failures", threshold=0.5, consecutive=3)
LATENCY_5X = Trigger("latency_p95_seconds", factor=5, duration_seconds=300)


def run(trigger: Trigger, readings: list[float | None], baseline: float | None = None) -> list[str]:
    """Verdicts of readings taken every 30 s."""
    state, verdicts = TriggerState(), []
    for i, value in enumerate(readings):
        state, verdict = evaluate(trigger, value, baseline, state, T0 + timedelta(seconds=30 * i))
        verdicts.append(verdict.value)
    return verdicts


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # held for 120 s: the fifth breaching reading (at +120 s) fires
        ([0.2] * 5, ["breaching"] * 4 + ["fired"]),
        # a spike shorter than the duration does nothing
        (
            [0.2, 0.2, 0.0, 0.2, 0.2],
            ["breaching", "breaching", "healthy", "breaching", "breaching"],
        ),
        # unknown neither fires nor resets the timer: the breach still started at +0 s
        ([0.2, None, None, None, 0.2], ["breaching", "unknown", "unknown", "unknown", "fired"]),
        # exactly at the threshold is not beyond it
        ([0.01] * 6, ["healthy"] * 6),
    ],
)
def test_a_duration_trigger_fires_only_when_the_breach_is_sustained(
    readings: list[float | None], expected: list[str]
) -> None:
    assert run(ERRORS, readings) == expected


def test_a_consecutive_trigger_counts_breaching_readings_in_a_row() -> None:
    assert run(HEALTH, [1, 1, 0, 1, 1, 1]) == [
        "breaching",
        "breaching",
        "healthy",
        "breaching",
        "breaching",
        "fired",
    ]


def test_a_trigger_fires_once_per_release() -> None:
    assert run(HEALTH, [1, 1, 1, 1, 0]) == ["breaching", "breaching", "fired", "fired", "fired"]


def test_a_less_than_trigger() -> None:
    sessions = Trigger("user_sessions_per_min", Comparison.LESS_THAN, 100, consecutive=2)
    assert run(sessions, [150, 50, 40]) == ["healthy", "breaching", "fired"]


def test_a_relative_trigger_compares_with_factor_times_the_baseline() -> None:
    assert run(LATENCY_5X, [2.4] * 11, baseline=0.39) == ["breaching"] * 10 + ["fired"]
    assert run(LATENCY_5X, [1.9] * 11, baseline=0.39) == ["healthy"] * 11  # 4.9×: not beyond 5×


def test_a_relative_trigger_without_a_baseline_is_unknown_never_fired() -> None:
    assert run(LATENCY_5X, [99.0] * 12, baseline=None) == ["unknown"] * 12


def test_blind_after_three_unknown_readings_in_a_row() -> None:
    state = TriggerState()
    for i in range(BLIND_AFTER):
        assert not is_blind([state])
        state, _ = evaluate(ERRORS, None, None, state, T0 + timedelta(seconds=30 * i))
    assert is_blind([state])
    state, _ = evaluate(ERRORS, 0.0, None, state, T0 + timedelta(minutes=5))
    assert not is_blind([state])  # one reading and the guard sees again
    assert not is_blind([])


def test_the_breach_text_states_trigger_value_and_duration() -> None:
    state = TriggerState(breach_since=T0, breaches_in_row=5, last_value=0.153)
    assert breach_text(ERRORS, state, None, T0 + timedelta(seconds=130)) == (
        "error_rate 0.153 > 0.01 for 2m10s"
    )
    relative = TriggerState(breach_since=T0, breaches_in_row=11, last_value=2.4)
    assert breach_text(LATENCY_5X, relative, 0.39, T0 + timedelta(minutes=5)) == (
        "latency_p95_seconds 2.4 = 6.2× the 0.39 before the release (limit 5×) for 5m00s"
    )
    health = TriggerState(breach_since=T0, breaches_in_row=3, last_value=1.0)
    assert breach_text(HEALTH, health, None, T0) == "health_check_failures 1 > 0.5 3 times in a row"
