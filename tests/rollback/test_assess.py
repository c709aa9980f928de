"""The decision matrix of seed 000, "Automated Rollback Decision Logic", row by row.

The runbook compares with ``>`` / ``<`` (bc), so a value exactly on a threshold does not fire it.
"""

from __future__ import annotations

import math
import re

import pytest

from bot.rollback.assess import (
    Assessment,
    Decision,
    Level,
    Reading,
    Signal,
    SignalResult,
    Thresholds,
    _decide,
    assess,
)

# A service with every signal read and nothing wrong: the base that each row changes one value of.
HEALTHY: dict[Signal, float | None] = {
    Signal.HEALTH: 1.0,
    Signal.ERROR_RATE: 0.001,
    Signal.LATENCY_P95: 0.2,
    Signal.DB_UP: 1.0,
    Signal.USER_SESSIONS: 120.0,
}
HEALTH, ERR, LAT, DB, SESS = (
    Signal.HEALTH,
    Signal.ERROR_RATE,
    Signal.LATENCY_P95,
    Signal.DB_UP,
    Signal.USER_SESSIONS,
)
NAN = float("nan")
DEFAULTS = Thresholds()
DECISION_KEYWORDS = ("IMMEDIATE ROLLBACK", "ROLLBACK RECOMMENDED", "MONITOR", "CONTINUE")


def readings(changes: dict[Signal, float | None]) -> list[Reading]:
    return [Reading(s, changes.get(s, v)) for s, v in HEALTHY.items()]


def run(changes: dict[Signal, float | None], thresholds: Thresholds = DEFAULTS) -> Assessment:
    return assess("checkout", readings(changes), thresholds)


def result_of(a: Assessment, signal: Signal) -> SignalResult:
    (found,) = [r for r in a.results if r.signal is signal]
    return found


def scores(critical: int = 0, high: int = 0, medium: int = 0) -> dict[Level, int]:
    return {"critical": critical, "high": high, "medium": medium}


# --- one signal at a time: every threshold edge --------------------------------------------------

# (signal, value, level that fires or None, points)
EDGES = [
    pytest.param(ERR, 0.0, None, 0, id="error rate 0 -> nothing"),
    pytest.param(ERR, 0.05, None, 0, id="error rate 0.05 exactly -> nothing"),
    pytest.param(ERR, 0.0500001, "high", 20, id="error rate 0.0500001 -> high +20"),
    pytest.param(ERR, 0.07, "high", 20, id="error rate 0.07 -> high +20"),
    pytest.param(ERR, 0.10, "high", 20, id="error rate 0.10 exactly -> high +20, not critical"),
    pytest.param(ERR, 0.1000001, "critical", 25, id="error rate 0.1000001 -> critical +25"),
    pytest.param(ERR, 1.0, "critical", 25, id="error rate 1.0 -> critical +25"),
    pytest.param(ERR, math.inf, "critical", 25, id="error rate inf -> critical +25"),
    pytest.param(LAT, 0.2, None, 0, id="latency 0.2 s -> nothing"),
    pytest.param(LAT, 1.0, None, 0, id="latency 1.0 exactly -> nothing"),
    pytest.param(LAT, 1.0000001, "medium", 10, id="latency 1.0000001 -> medium +10"),
    pytest.param(LAT, 2.0, "medium", 10, id="latency 2.0 exactly -> medium +10"),
    pytest.param(LAT, 2.0000001, "high", 15, id="latency 2.0000001 -> high +15"),
    pytest.param(LAT, 5.0, "high", 15, id="latency 5.0 exactly -> high +15"),
    pytest.param(LAT, 5.0000001, "critical", 20, id="latency 5.0000001 -> critical +20"),
    pytest.param(LAT, 30.0, "critical", 20, id="latency 30 s -> critical +20"),
    pytest.param(SESS, 120.0, None, 0, id="sessions 120/min -> nothing"),
    pytest.param(SESS, 1.0, None, 0, id="sessions 1.0 exactly -> nothing"),
    pytest.param(SESS, 0.999, "high", 15, id="sessions 0.999 -> high +15"),
    pytest.param(SESS, 0.0, "high", 15, id="sessions 0 -> high +15"),
    pytest.param(HEALTH, 1.0, None, 0, id="health passing -> nothing"),
    pytest.param(HEALTH, 0.0, "critical", 30, id="health failing -> critical +30"),
    pytest.param(DB, 1.0, None, 0, id="db_up 1 -> nothing"),
    pytest.param(DB, 0.0, "critical", 30, id="db_up 0 -> critical +30"),
]


@pytest.mark.parametrize(("signal", "value", "level", "points"), EDGES)
def test_threshold_edge(signal: Signal, value: float, level: Level | None, points: int) -> None:
    a = run({signal: value})
    fired = result_of(a, signal).fired
    if level is None:
        assert fired is None
        assert a.scores == scores()
    else:
        assert fired is not None
        assert (fired.level, fired.points) == (level, points)
        assert a.scores == scores(**{level: points})
    assert a.total == points
    assert a.unknown == ()
    assert a.worst_case is None


# (signal, value, the one level that fires)
MOST_SEVERE_ONLY = [
    pytest.param(ERR, 0.5, "critical", id="error rate 50 % fires critical only, not high too"),
    pytest.param(LAT, 12.0, "critical", id="latency 12 s fires critical only"),
    pytest.param(LAT, 3.0, "high", id="latency 3 s fires high only, not medium too"),
    pytest.param(LAT, 1.5, "medium", id="latency 1.5 s fires medium"),
]


@pytest.mark.parametrize(("signal", "value", "level"), MOST_SEVERE_ONLY)
def test_at_most_one_trigger_per_signal(signal: Signal, value: float, level: Level) -> None:
    result = result_of(run({signal: value}), signal)
    assert [t.level for t in result.triggers if t.is_fired] == [level]


# The rows shown for each signal, with the runbook's points and thresholds.
ROWS = [
    pytest.param(HEALTH, [("critical", 30, "fails")], id="health check"),
    pytest.param(ERR, [("critical", 25, "> 10 %"), ("high", 20, "> 5 %")], id="error rate"),
    pytest.param(
        LAT,
        [("critical", 20, "> 5.00 s"), ("high", 15, "> 2.00 s"), ("medium", 10, "> 1.00 s")],
        id="p95 latency",
    ),
    pytest.param(DB, [("critical", 30, "unreachable")], id="database"),
    pytest.param(SESS, [("high", 15, "< 1")], id="user sessions"),
]


@pytest.mark.parametrize(("signal", "rows"), ROWS)
def test_matrix_rows_per_signal(signal: Signal, rows: list[tuple[str, int, str]]) -> None:
    result = result_of(run({}), signal)
    assert [(t.level, t.points, t.condition) for t in result.triggers] == rows
    assert not any(t.is_fired for t in result.triggers)


# --- decisions --------------------------------------------------------------------------------

# (changes from healthy, expected scores, decision)
DECISIONS = [
    pytest.param(
        {HEALTH: 0, DB: 0},
        scores(critical=60),
        Decision.IMMEDIATE_ROLLBACK,
        id="health fails + db down: critical 60, total 60 -> IMMEDIATE ROLLBACK (critical wins)",
    ),
    pytest.param(
        {HEALTH: 0, LAT: 6.0},
        scores(critical=50),
        Decision.IMMEDIATE_ROLLBACK,
        id="health fails + latency > 5s: critical 50 exactly -> IMMEDIATE ROLLBACK",
    ),
    pytest.param(
        {HEALTH: 0, ERR: 0.2, SESS: 0.5},
        scores(critical=55, high=15),
        Decision.IMMEDIATE_ROLLBACK,
        id="critical 55, total 70 -> IMMEDIATE ROLLBACK",
    ),
    pytest.param(
        {HEALTH: 0, DB: 0, ERR: 0.5, LAT: 9.0, SESS: 0.0},
        scores(critical=105, high=15),
        Decision.IMMEDIATE_ROLLBACK,
        id="everything failing: critical 105, total 120 -> IMMEDIATE ROLLBACK",
    ),
    pytest.param(
        {ERR: 0.2, LAT: 6.0, SESS: 0.5},
        scores(critical=45, high=15),
        Decision.ROLLBACK_RECOMMENDED,
        id="critical 45 + high 15: total 60 exactly -> ROLLBACK RECOMMENDED",
    ),
    pytest.param(
        {HEALTH: 0, ERR: 0.07, LAT: 1.5},
        scores(critical=30, high=20, medium=10),
        Decision.ROLLBACK_RECOMMENDED,
        id="critical 30 + high 20 + medium 10: total 60 -> ROLLBACK RECOMMENDED",
    ),
    pytest.param(
        {ERR: 0.2, LAT: 3.0, SESS: 0.5},
        scores(critical=25, high=30),
        Decision.MONITOR,
        id="total 55 -> MONITOR",
    ),
    pytest.param(
        {ERR: 0.2, LAT: 6.0},
        scores(critical=45),
        Decision.MONITOR,
        id="critical 45 < 50, total 45 -> MONITOR",
    ),
    pytest.param(
        {HEALTH: 0},
        scores(critical=30),
        Decision.MONITOR,
        id="health fails alone: total 30 exactly -> MONITOR",
    ),
    pytest.param(
        {ERR: 0.07, LAT: 1.5},
        scores(high=20, medium=10),
        Decision.MONITOR,
        id="high 20 + medium 10: total 30 exactly -> MONITOR",
    ),
    pytest.param(
        {ERR: 0.2},
        scores(critical=25),
        Decision.CONTINUE,
        id="error rate critical alone: total 25 -> CONTINUE",
    ),
    pytest.param(
        {SESS: 0.5, LAT: 1.5},
        scores(high=15, medium=10),
        Decision.CONTINUE,
        id="high 15 + medium 10: total 25 -> CONTINUE",
    ),
    pytest.param({}, scores(), Decision.CONTINUE, id="all healthy: total 0 -> CONTINUE"),
]


@pytest.mark.parametrize(("changes", "expected_scores", "decision"), DECISIONS)
def test_decision(
    changes: dict[Signal, float | None], expected_scores: dict[Level, int], decision: Decision
) -> None:
    a = run(changes)
    assert dict(a.scores) == expected_scores
    assert a.total == sum(expected_scores.values())
    assert a.decision is decision
    assert a.headline.startswith(decision.value)


# Every trigger is worth a multiple of 5, so 49, 59 and 29 cannot come from readings: the cut-offs
# themselves are checked on the (private) decision function with made-up scores.
CUT_OFFS = [
    pytest.param(scores(critical=50), Decision.IMMEDIATE_ROLLBACK, id="critical 50 -> IMMEDIATE"),
    pytest.param(scores(critical=49), Decision.MONITOR, id="critical 49, total 49 -> MONITOR"),
    pytest.param(
        scores(critical=50, high=40), Decision.IMMEDIATE_ROLLBACK, id="critical 50, total 90"
    ),
    pytest.param(
        scores(critical=49, high=11), Decision.ROLLBACK_RECOMMENDED, id="critical 49, total 60"
    ),
    pytest.param(
        scores(high=45, medium=15), Decision.ROLLBACK_RECOMMENDED, id="total 60 -> RECOMMENDED"
    ),
    pytest.param(scores(high=44, medium=15), Decision.MONITOR, id="total 59 -> MONITOR"),
    pytest.param(scores(high=20, medium=10), Decision.MONITOR, id="total 30 -> MONITOR"),
    pytest.param(scores(high=19, medium=10), Decision.CONTINUE, id="total 29 -> CONTINUE"),
    pytest.param(scores(), Decision.CONTINUE, id="total 0 -> CONTINUE"),
]


@pytest.mark.parametrize(("given", "decision"), CUT_OFFS)
def test_decision_cut_offs(given: dict[Level, int], decision: Decision) -> None:
    assert _decide(given) is decision


def test_reasons_name_each_fired_trigger() -> None:
    a = run({HEALTH: 0, ERR: 0.2, LAT: 1.5})
    assert a.reasons == (
        "Health check: fails (+30 critical)",
        "Error rate: > 10 % (+25 critical)",
        "p95 latency: > 1.00 s (+10 medium)",
    )


def test_healthy_service_has_no_reasons() -> None:
    a = run({})
    assert a.decision is Decision.CONTINUE
    assert a.reasons == ()


# --- unknown signals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "note", "expected_note"),
    [
        pytest.param(
            None, "Prometheus timed out", "Prometheus timed out", id="None keeps its note"
        ),
        pytest.param(None, "", "", id="None without a note"),
        pytest.param(NAN, "", "query returned NaN", id="NaN -> note says NaN"),
        pytest.param(NAN, "no traffic", "no traffic", id="NaN keeps a given note"),
    ],
)
def test_unknown_reading(value: float | None, note: str, expected_note: str) -> None:
    rs = [Reading(s, v) for s, v in HEALTHY.items() if s is not ERR]
    a = assess("checkout", [*rs, Reading(ERR, value, note)], DEFAULTS)
    result = result_of(a, ERR)
    assert result.is_unknown
    assert result.value is None
    assert result.shown == "unknown"
    assert result.note == expected_note
    assert result.fired is None
    assert a.unknown == (result,)
    assert a.scores == scores()


# (changes, decision, worst case, the reason about the unknown signals)
UNKNOWN = [
    pytest.param(
        {ERR: None},
        Decision.MONITOR,
        Decision.CONTINUE,
        "cannot confirm healthy: Error rate unknown",
        id="error rate unknown, rest healthy: CONTINUE -> MONITOR; worst case 25 -> CONTINUE",
    ),
    pytest.param(
        {ERR: NAN},
        Decision.MONITOR,
        Decision.CONTINUE,
        "cannot confirm healthy: Error rate unknown",
        id="error rate NaN counts as unknown",
    ),
    pytest.param(
        {HEALTH: None, DB: 0},
        Decision.MONITOR,
        Decision.IMMEDIATE_ROLLBACK,
        "Health check unknown",
        id="health unknown + db down: MONITOR; worst case critical 60 -> IMMEDIATE",
    ),
    pytest.param(
        {LAT: None, ERR: 0.2, SESS: 0.5},
        Decision.MONITOR,
        Decision.ROLLBACK_RECOMMENDED,
        "p95 latency unknown",
        id="latency unknown + total 40: worst case +20 critical -> total 60 RECOMMENDED",
    ),
    pytest.param(
        {SESS: None, ERR: 0.2, LAT: 6.0},
        Decision.MONITOR,
        Decision.ROLLBACK_RECOMMENDED,
        "User sessions/min unknown",
        id="sessions unknown + critical 45: worst case +15 high -> total 60 RECOMMENDED",
    ),
    pytest.param(
        {HEALTH: 0, DB: 0, ERR: None},
        Decision.IMMEDIATE_ROLLBACK,
        Decision.IMMEDIATE_ROLLBACK,
        "Error rate unknown",
        id="already IMMEDIATE: stays IMMEDIATE, unknown still listed",
    ),
    pytest.param(
        {HEALTH: None, ERR: None, LAT: None, DB: None, SESS: None},
        Decision.MONITOR,
        Decision.IMMEDIATE_ROLLBACK,
        "cannot confirm healthy: Health check, Error rate, p95 latency, Database,"
        " User sessions/min unknown",
        id="all unknown: MONITOR, never CONTINUE; worst case IMMEDIATE",
    ),
]


@pytest.mark.parametrize(("changes", "decision", "worst_case", "reason"), UNKNOWN)
def test_unknown_signals(
    changes: dict[Signal, float | None], decision: Decision, worst_case: Decision, reason: str
) -> None:
    a = run(changes)
    assert a.decision is decision
    assert a.worst_case is worst_case
    assert a.reasons[-1] == reason
    assert {r.signal for r in a.unknown} == {s for s, v in changes.items() if not _is_known(v)}
    assert a.headline.startswith(decision.value)


def _is_known(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def test_unknown_signals_add_no_points() -> None:
    known = run({ERR: 0.2, LAT: 6.0})
    blind = run({ERR: 0.2, LAT: 6.0, HEALTH: None, DB: None, SESS: None})
    assert blind.scores == known.scores == scores(critical=45)


def test_worst_case_is_none_when_every_signal_was_read() -> None:
    assert run({HEALTH: 0}).worst_case is None


# --- per-service thresholds -------------------------------------------------------------------

# (thresholds, signal, value, level or None, condition of the first row)
OVERRIDES = [
    pytest.param(
        Thresholds(error_rate_critical=0.2),
        ERR,
        0.15,
        "high",
        "> 20 %",
        id="error critical 20 %: 15 % -> high only",
    ),
    pytest.param(
        Thresholds(error_rate_critical=0.2),
        ERR,
        0.2000001,
        "critical",
        "> 20 %",
        id="error critical 20 %: 20.00001 % -> critical",
    ),
    pytest.param(
        Thresholds(error_rate_high=0.01),
        ERR,
        0.02,
        "high",
        "> 10 %",
        id="error high 1 %: 2 % -> high",
    ),
    pytest.param(
        Thresholds(latency_p95_critical=10.0),
        LAT,
        6.0,
        "high",
        "> 10.00 s",
        id="latency critical 10 s: 6 s -> high",
    ),
    pytest.param(
        Thresholds(latency_p95_medium=0.5),
        LAT,
        0.6,
        "medium",
        "> 5.00 s",
        id="latency medium 500 ms: 600 ms -> medium",
    ),
    pytest.param(
        Thresholds(latency_p95_medium=0.5),
        LAT,
        0.5,
        None,
        "> 5.00 s",
        id="latency medium 500 ms: 500 ms exactly -> nothing",
    ),
    pytest.param(
        Thresholds(user_sessions_high=10.0),
        SESS,
        5.0,
        "high",
        "< 10",
        id="sessions 10/min: 5 -> high",
    ),
    pytest.param(
        Thresholds(user_sessions_high=0.0),
        SESS,
        0.0,
        None,
        "< 0",
        id="sessions 0/min: 0 -> nothing (quiet service)",
    ),
]


@pytest.mark.parametrize(("thresholds", "signal", "value", "level", "first_row"), OVERRIDES)
def test_threshold_overrides(
    thresholds: Thresholds, signal: Signal, value: float, level: Level | None, first_row: str
) -> None:
    result = result_of(run({signal: value}, thresholds), signal)
    assert result.triggers[0].condition == first_row
    assert (result.fired.level if result.fired else None) == level


def test_overridden_condition_is_shown() -> None:
    t = Thresholds(latency_p95_critical=3.0, latency_p95_high=1.5, latency_p95_medium=0.25)
    result = result_of(run({LAT: 0.3}, t), LAT)
    assert [r.condition for r in result.triggers] == ["> 3.00 s", "> 1.50 s", "> 250 ms"]


def test_overrides_do_not_change_health_or_database() -> None:
    strict = Thresholds(error_rate_critical=0.01, error_rate_high=0.001, user_sessions_high=1e9)
    a = run({HEALTH: 0, DB: 0, ERR: 0.0, SESS: 1e10}, strict)
    assert a.scores == scores(critical=60)


# --- the headline (CONTRACT.md, "Assessment message") -----------------------------------------

HEADLINE = re.compile(
    r"^(IMMEDIATE ROLLBACK|ROLLBACK RECOMMENDED|MONITOR|CONTINUE)\b.*"
    r"critical (\d+), high (\d+), medium (\d+), total (\d+)$"
)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({HEALTH: 0, DB: 0}, id="IMMEDIATE ROLLBACK"),
        pytest.param({ERR: 0.2, LAT: 6.0, SESS: 0.5}, id="ROLLBACK RECOMMENDED"),
        pytest.param({ERR: 0.07, LAT: 1.5}, id="MONITOR"),
        pytest.param({ERR: None}, id="MONITOR (unknown)"),
        pytest.param({SESS: 0.5}, id="CONTINUE"),
    ],
)
def test_headline_has_decision_and_four_scores(changes: dict[Signal, float | None]) -> None:
    a = run(changes)
    m = HEADLINE.match(a.headline)
    assert m is not None, a.headline
    assert m.group(1) == a.decision.value
    assert [int(g) for g in m.groups()[1:]] == [
        a.scores["critical"],
        a.scores["high"],
        a.scores["medium"],
        a.total,
    ]
    assert "checkout" in a.headline
    assert "\n" not in a.headline


def test_decision_values_are_the_contract_keywords() -> None:
    assert tuple(d.value for d in Decision) == DECISION_KEYWORDS


def test_no_signals_at_all_is_monitor_not_continue() -> None:
    result = assess("checkout", [], Thresholds())
    assert result.decision is Decision.MONITOR
    assert "no signals are configured" in result.reasons[0]


def test_latency_just_under_a_second_is_not_shown_as_1000_ms() -> None:
    (row,) = assess("checkout", [Reading(Signal.LATENCY_P95, 0.9996)], Thresholds()).results
    assert row.shown == "1.00 s"
