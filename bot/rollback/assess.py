"""The rollback decision matrix of the runbook (seed 000, "Automated Rollback Decision Logic").

Pure: readings in, an :class:`Assessment` out. A reading whose value is ``None`` is *unknown*: it is
never scored as healthy, it is listed, and it keeps the decision from being ``CONTINUE``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

Level = Literal["critical", "high", "medium"]
LEVELS: tuple[Level, ...] = ("critical", "high", "medium")


class Decision(StrEnum):
    IMMEDIATE_ROLLBACK = "IMMEDIATE ROLLBACK"
    ROLLBACK_RECOMMENDED = "ROLLBACK RECOMMENDED"
    MONITOR = "MONITOR"
    CONTINUE = "CONTINUE"


class Signal(StrEnum):
    """Signals of the matrix. The first four are PromQL queries in the catalog; health is HTTP."""

    HEALTH = "health"
    ERROR_RATE = "error_rate"
    LATENCY_P95 = "latency_p95_seconds"
    DB_UP = "db_up"
    USER_SESSIONS = "user_sessions_per_min"


PROMQL_SIGNALS: tuple[Signal, ...] = (
    Signal.ERROR_RATE,
    Signal.LATENCY_P95,
    Signal.USER_SESSIONS,
    Signal.DB_UP,
)

SIGNAL_LABELS: dict[Signal, str] = {
    Signal.HEALTH: "Health check",
    Signal.ERROR_RATE: "Error rate",
    Signal.LATENCY_P95: "p95 latency",
    Signal.DB_UP: "Database",
    Signal.USER_SESSIONS: "User sessions/min",
}


@dataclass(frozen=True)
class Thresholds:
    """Trigger thresholds; defaults are the runbook's. Any of them may be overridden per service."""

    error_rate_critical: float = 0.10
    error_rate_high: float = 0.05
    latency_p95_critical: float = 5.0
    latency_p95_high: float = 2.0
    latency_p95_medium: float = 1.0
    user_sessions_high: float = 1.0


# Points per trigger (seed 000) and the decision cut-offs.
POINTS_HEALTH_FAILED = 30
POINTS_DB_DOWN = 30
POINTS_ERROR_RATE = {"critical": 25, "high": 20}
POINTS_LATENCY = {"critical": 20, "high": 15, "medium": 10}
POINTS_SESSIONS_LOW = 15
IMMEDIATE_CRITICAL_SCORE = 50
RECOMMENDED_TOTAL_SCORE = 60
MONITOR_TOTAL_SCORE = 30


@dataclass(frozen=True)
class Reading:
    """One observed signal. ``value`` is None when it could not be read; ``note`` says why."""

    signal: Signal
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class Trigger:
    """One row of the matrix for a signal: the condition and whether it fired."""

    level: Level
    points: int
    condition: str
    is_fired: bool


@dataclass(frozen=True)
class SignalResult:
    signal: Signal
    value: float | None
    shown: str
    note: str
    triggers: tuple[Trigger, ...]

    @property
    def label(self) -> str:
        return SIGNAL_LABELS[self.signal]

    @property
    def is_unknown(self) -> bool:
        return self.value is None

    @property
    def fired(self) -> Trigger | None:
        return next((t for t in self.triggers if t.is_fired), None)


@dataclass(frozen=True)
class Assessment:
    service: str
    results: tuple[SignalResult, ...]
    scores: Mapping[Level, int]
    decision: Decision
    reasons: tuple[str, ...] = field(default=())
    worst_case: Decision | None = None

    @property
    def total(self) -> int:
        return sum(self.scores.values())

    @property
    def unknown(self) -> tuple[SignalResult, ...]:
        return tuple(r for r in self.results if r.is_unknown)

    @property
    def headline(self) -> str:
        """First line of the Slack message: decision keyword, then the scores (CONTRACT.md)."""
        s = self.scores
        return (
            f"{self.decision.value}: {self.service} — critical {s['critical']}, high {s['high']},"
            f" medium {s['medium']}, total {self.total}"
        )


def _percent(v: float) -> str:
    return f"{v * 100:.3g} %"


def _seconds(v: float) -> str:
    return f"{v * 1000:.0f} ms" if round(v * 1000) < 1000 else f"{v:.2f} s"


def _triggers(signal: Signal, value: float | None, t: Thresholds) -> tuple[Trigger, ...]:
    """The matrix rows for ``signal``; at most one fires (the most severe that applies)."""
    if signal is Signal.HEALTH:
        return (
            Trigger("critical", POINTS_HEALTH_FAILED, "fails", value is not None and value < 1),
        )
    if signal is Signal.DB_UP:
        return (
            Trigger("critical", POINTS_DB_DOWN, "unreachable", value is not None and value < 1),
        )
    if signal is Signal.USER_SESSIONS:
        cond = f"< {t.user_sessions_high:g}"
        fired = value is not None and value < t.user_sessions_high
        return (Trigger("high", POINTS_SESSIONS_LOW, cond, fired),)
    if signal is Signal.ERROR_RATE:
        limits = {"critical": t.error_rate_critical, "high": t.error_rate_high}
        points, fmt = POINTS_ERROR_RATE, _percent
    else:
        limits = {
            "critical": t.latency_p95_critical,
            "high": t.latency_p95_high,
            "medium": t.latency_p95_medium,
        }
        points, fmt = POINTS_LATENCY, _seconds
    rows: list[Trigger] = []
    has_fired = False
    for level in LEVELS:
        if level not in limits:
            continue
        fires = not has_fired and value is not None and value > limits[level]
        has_fired = has_fired or fires
        rows.append(Trigger(level, points[level], f"> {fmt(limits[level])}", fires))
    return tuple(rows)


def _shown(signal: Signal, value: float | None) -> str:
    if value is None:
        return "unknown"
    if signal is Signal.HEALTH:
        return "passing" if value >= 1 else "failing"
    if signal is Signal.DB_UP:
        return "up" if value >= 1 else "unreachable"
    if signal is Signal.ERROR_RATE:
        return _percent(value)
    if signal is Signal.LATENCY_P95:
        return _seconds(value)
    return f"{value:.3g}"


def _decide(scores: Mapping[Level, int]) -> Decision:
    total = sum(scores.values())
    if scores["critical"] >= IMMEDIATE_CRITICAL_SCORE:
        return Decision.IMMEDIATE_ROLLBACK
    if total >= RECOMMENDED_TOTAL_SCORE:
        return Decision.ROLLBACK_RECOMMENDED
    if total >= MONITOR_TOTAL_SCORE:
        return Decision.MONITOR
    return Decision.CONTINUE


def _score(results: Iterable[SignalResult]) -> dict[Level, int]:
    scores: dict[Level, int] = {"critical": 0, "high": 0, "medium": 0}
    for r in results:
        if (fired := r.fired) is not None:
            scores[fired.level] += fired.points
    return scores


def _worst(result: SignalResult) -> SignalResult:
    """The result as if an unknown signal had fired its most severe row."""
    first = result.triggers[0]
    return replace(result, triggers=(replace(first, is_fired=True), *result.triggers[1:]))


def assess(service: str, readings: Iterable[Reading], thresholds: Thresholds) -> Assessment:
    """Score ``readings`` with the matrix and decide.

    A NaN reading (e.g. an error ratio with no traffic) counts as unknown. Unknown signals add no
    points but a decision that would be CONTINUE becomes MONITOR: the bot never calls a service
    healthy while blind to part of it. ``worst_case`` tells what the decision would be if every
    unknown signal were failing.
    """
    results: list[SignalResult] = []
    for r in readings:
        value = None if r.value is None or math.isnan(r.value) else r.value
        note = r.note or ("query returned NaN" if r.value is not None and value is None else "")
        results.append(
            SignalResult(
                r.signal,
                value,
                _shown(r.signal, value),
                note,
                _triggers(r.signal, value, thresholds),
            )
        )
    scores = _score(results)
    decision = _decide(scores)
    reasons = [
        f"{r.label}: {r.fired.condition} (+{r.fired.points} {r.fired.level})"
        for r in results
        if r.fired
    ]
    unknown = [r for r in results if r.is_unknown]
    worst_case: Decision | None = None
    if not results:
        reasons.append("no signals are configured: nothing confirms the service is healthy")
        return Assessment(service, (), scores, Decision.MONITOR, tuple(reasons), None)
    if unknown:
        worst_case = _decide(_score(_worst(r) if r.is_unknown else r for r in results))
        names = ", ".join(r.label for r in unknown)
        if decision is Decision.CONTINUE:
            decision = Decision.MONITOR
            reasons.append(f"cannot confirm healthy: {names} unknown")
        else:
            reasons.append(f"{names} unknown")
    return Assessment(service, tuple(results), scores, decision, tuple(reasons), worst_case)
