"""The automatic guard's triggers (seed 001 "Automatic Rollback System"): when a signal of a new
release is bad for long enough to roll it back.

Pure: a reading in, the trigger's next state and verdict out. Sustained, never spiky: a trigger
fires only when its condition holds across consecutive evaluations for ``duration_seconds`` (or
for ``consecutive`` evaluations in a row); one good reading resets it. A reading that cannot be
taken is *unknown*: it neither fires nor resets the timer, and ``BLIND_AFTER`` unknowns in a row
make the guard say it is blind instead of looking healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

BLIND_AFTER = 3  # unknown evaluations in a row before the channel is told the guard is blind


class Comparison(StrEnum):
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"


class Verdict(StrEnum):
    HEALTHY = "healthy"
    BREACHING = "breaching"  # the condition holds, not yet for long enough
    FIRED = "fired"  # held for long enough: roll back (or ask)
    UNKNOWN = "unknown"  # no reading (or no baseline to compare with)


@dataclass(frozen=True)
class Trigger:
    """One trigger of a service's ``auto_rollback.triggers``.

    ``name`` is what messages call it (the signal's name, or the trigger's own for a raw query).
    Absolute: breaching when the value is beyond ``threshold``. Relative (``factor`` set): beyond
    ``factor`` × the baseline (the signal before the release). Exactly one of ``duration_seconds``
    and ``consecutive`` says how long it must hold.
    """

    name: str
    comparison: Comparison = Comparison.GREATER_THAN
    threshold: float | None = None
    factor: float | None = None
    duration_seconds: float | None = None
    consecutive: int | None = None
    query: str | None = None  # the PromQL read; None: the service's health probe (a failure = 1)

    @property
    def is_relative(self) -> bool:
        return self.factor is not None

    def limit(self, baseline: float | None) -> float | None:
        """The value the reading is compared with; None when a relative trigger has no baseline."""
        if self.factor is None:
            return self.threshold
        return None if baseline is None else self.factor * baseline

    def is_beyond(self, value: float, limit: float) -> bool:
        if self.comparison == Comparison.GREATER_THAN:
            return value > limit
        return value < limit


HEALTH_CHECK_FAILURES = "health_check_failures"  # the trigger name of the health probe


class ConfirmTimeout(StrEnum):
    """What an unanswered "Roll back now / Keep release" question does when its time is up."""

    ROLLBACK = "rollback"  # the runbooks put safety first
    KEEP = "keep"


@dataclass(frozen=True)
class GuardConfig:
    """A service's ``auto_rollback`` section, resolved (defaults applied, metrics turned into
    their PromQL)."""

    is_enabled: bool = False
    watch_minutes: float = 30.0
    interval_seconds: float = 30.0
    baseline_minutes: float = 30.0
    requires_confirmation: bool = False
    confirm_timeout_seconds: float = 300.0
    on_confirm_timeout: ConfirmTimeout = ConfirmTimeout.ROLLBACK
    max_per_day: int = 2
    triggers: tuple[Trigger, ...] = ()
    verify_previous_version_healthy: bool = True
    verify_rollback_tested: bool = False


@dataclass(frozen=True)
class TriggerState:
    """What the guard remembers of one trigger between evaluations (stored, so that a restart or
    another replica carries on without restarting the timer)."""

    breach_since: datetime | None = None
    breaches_in_row: int = 0
    unknown_in_row: int = 0
    last_value: float | None = None
    fired_at: datetime | None = None

    def breaching_for(self, now: datetime) -> float:
        """Seconds the condition has held (0 when it does not)."""
        return 0.0 if self.breach_since is None else (now - self.breach_since).total_seconds()


def evaluate(
    trigger: Trigger,
    value: float | None,
    baseline: float | None,
    state: TriggerState,
    now: datetime,
) -> tuple[TriggerState, Verdict]:
    """The trigger's next state and verdict for one reading taken at ``now``."""
    if state.fired_at is not None:
        return state, Verdict.FIRED  # fires once per release
    limit = trigger.limit(baseline)
    if value is None or limit is None:  # neither fires nor resets the timer
        return replace(state, unknown_in_row=state.unknown_in_row + 1), Verdict.UNKNOWN
    if not trigger.is_beyond(value, limit):
        return TriggerState(last_value=value), Verdict.HEALTHY
    held = replace(
        state,
        breach_since=state.breach_since or now,
        breaches_in_row=state.breaches_in_row + 1,
        unknown_in_row=0,
        last_value=value,
    )
    if _has_held_long_enough(trigger, held, now):
        return replace(held, fired_at=now), Verdict.FIRED
    return held, Verdict.BREACHING


def _has_held_long_enough(trigger: Trigger, state: TriggerState, now: datetime) -> bool:
    if trigger.consecutive is not None:
        return state.breaches_in_row >= trigger.consecutive
    return state.breaching_for(now) >= (trigger.duration_seconds or 0.0)


def is_blind(states: list[TriggerState]) -> bool:
    """Every trigger has gone ``BLIND_AFTER`` evaluations without a reading."""
    return bool(states) and all(s.unknown_in_row >= BLIND_AFTER for s in states)


def breach_text(
    trigger: Trigger, state: TriggerState, baseline: float | None, now: datetime
) -> str:
    """E.g. ``error_rate 0.153 > 0.01 for 2m10s`` or ``latency_p95_seconds 2.4 = 6.1× the 0.39
    before the release (limit 5×) for 5m0s``: the reason an automatic rollback states."""
    value = state.last_value
    shown = "unknown" if value is None else f"{value:.4g}"
    sign = ">" if trigger.comparison == Comparison.GREATER_THAN else "<"
    held = _duration(state.breaching_for(now))
    if trigger.factor is not None and baseline and value is not None:
        return (
            f"{trigger.name} {shown} = {value / baseline:.1f}× the {baseline:.4g} before the"
            f" release (limit {trigger.factor:g}×) for {held}"
        )
    limit = trigger.limit(baseline)
    limit_text = "?" if limit is None else f"{limit:.4g}"
    if trigger.consecutive is not None:
        return f"{trigger.name} {shown} {sign} {limit_text} {state.breaches_in_row} times in a row"
    return f"{trigger.name} {shown} {sign} {limit_text} for {held}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
