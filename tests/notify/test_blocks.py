"""Block Kit builders: the assessment message (CONTRACT.md, "Assessment message") and escaping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.notify.blocks import (
    assessment_message,
    escape,
    notice,
    unknown_service_message,
    usage_message,
)
from bot.rollback.assess import Assessment, Decision, Reading, Signal, Thresholds, assess
from bot.rollback.command import USAGE

AT = datetime(2025, 3, 1, 14, 30, 5, tzinfo=UTC)
HEALTHY: dict[Signal, float | None] = {
    Signal.HEALTH: 1.0,
    Signal.ERROR_RATE: 0.001,
    Signal.LATENCY_P95: 0.2,
    Signal.DB_UP: 1.0,
    Signal.USER_SESSIONS: 120.0,
}


def assessed(changes: dict[Signal, float | None], service: str = "checkout") -> Assessment:
    return assess(
        service, [Reading(s, changes.get(s, v)) for s, v in HEALTHY.items()], Thresholds()
    )


def message(a: Assessment, requested_by: str | None = "U0ABC") -> tuple[str, list[dict[str, Any]]]:
    return assessment_message(a, assessment_id=7, requested_by=requested_by, at=AT)


def texts(node: Any) -> Iterator[str]:
    """Every ``text`` string anywhere in the blocks."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def section_of(blocks: list[dict[str, Any]], label: str) -> str:
    (found,) = [
        b["text"]["text"]
        for b in blocks
        if b["type"] == "section" and f"*{label}*" in b["text"]["text"]
    ]
    return str(found)


# --- escape ----------------------------------------------------------------------------------

ESCAPES = [
    pytest.param("<!channel>", "&lt;!channel&gt;", id="@channel"),
    pytest.param("<!here|here>", "&lt;!here|here&gt;", id="@here"),
    pytest.param("<@U123>", "&lt;@U123&gt;", id="user mention"),
    pytest.param("<#C0DEPLOYS>", "&lt;#C0DEPLOYS&gt;", id="channel link"),
    pytest.param("<http://evil|click>", "&lt;http://evil|click&gt;", id="forged link"),
    pytest.param("a & b", "a &amp; b", id="ampersand"),
    pytest.param("&lt;", "&amp;lt;", id="already an entity is shown as typed"),
    pytest.param("p95 > 2 s", "p95 &gt; 2 s", id="comparison"),
    pytest.param("plain *bold* text", "plain *bold* text", id="nothing to escape"),
]


@pytest.mark.parametrize(("raw", "escaped"), ESCAPES)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert "<" not in escape(raw) and ">" not in escape(raw)


# --- assessment_message ------------------------------------------------------------------------

DECISIONS = [
    pytest.param({Signal.HEALTH: 0, Signal.DB_UP: 0}, Decision.IMMEDIATE_ROLLBACK, id="IMMEDIATE"),
    pytest.param(
        {Signal.ERROR_RATE: 0.2, Signal.LATENCY_P95: 6.0, Signal.USER_SESSIONS: 0.5},
        Decision.ROLLBACK_RECOMMENDED,
        id="RECOMMENDED",
    ),
    pytest.param({Signal.HEALTH: 0}, Decision.MONITOR, id="MONITOR"),
    pytest.param({Signal.ERROR_RATE: None}, Decision.MONITOR, id="MONITOR (unknown)"),
    pytest.param({}, Decision.CONTINUE, id="CONTINUE"),
]


@pytest.mark.parametrize(("changes", "decision"), DECISIONS)
def test_text_starts_with_the_decision(
    changes: dict[Signal, float | None], decision: Decision
) -> None:
    a = assessed(changes)
    text, blocks = message(a)
    first = text.splitlines()[0]
    assert first.startswith(decision.value)
    assert first == a.headline
    s = a.scores
    for part in (
        f"critical {s['critical']}",
        f"high {s['high']}",
        f"medium {s['medium']}",
        f"total {a.total}",
    ):
        assert part in first
    header = blocks[0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith(decision.value)
    scores = blocks[1]["text"]["text"]
    assert f"critical *{s['critical']}*" in scores
    assert f"total *{a.total}*" in scores


def test_text_lists_every_signal() -> None:
    a = assessed({Signal.ERROR_RATE: 0.12, Signal.DB_UP: None})
    text, _ = message(a)
    assert text.splitlines()[1:] == [
        "Health check: passing",
        "Error rate: 12 %",
        "p95 latency: 200 ms",
        "Database: unknown",
        "User sessions/min: 120",
    ]


# (changes, label, what the signal's section must say)
SIGNAL_LINES = [
    pytest.param(
        {Signal.ERROR_RATE: 0.12},
        "Error rate",
        [":red_circle:", "— 12 %", "*critical if > 10 % → +25*", "high if > 5 %"],
        id="error rate 12 % -> critical row bold with +25",
    ),
    pytest.param(
        {Signal.ERROR_RATE: 0.07},
        "Error rate",
        [":large_orange_circle:", "— 7 %", "critical if > 10 %", "*high if > 5 % → +20*"],
        id="error rate 7 % -> high row bold with +20",
    ),
    pytest.param(
        {Signal.LATENCY_P95: 1.5},
        "p95 latency",
        [
            ":large_yellow_circle:",
            "— 1.50 s",
            "critical if > 5.00 s",
            "high if > 2.00 s",
            "*medium if > 1.00 s → +10*",
        ],
        id="latency 1.5 s -> medium row bold with +10",
    ),
    pytest.param(
        {Signal.LATENCY_P95: 0.2},
        "p95 latency",
        [":large_green_circle:", "— 200 ms", "critical if > 5.00 s", "medium if > 1.00 s"],
        id="latency 200 ms -> green, no points",
    ),
    pytest.param(
        {Signal.HEALTH: 0},
        "Health check",
        [":red_circle:", "— failing", "*critical if fails → +30*"],
        id="health failing -> +30",
    ),
    pytest.param(
        {Signal.DB_UP: 0},
        "Database",
        [":red_circle:", "— unreachable", "*critical if unreachable → +30*"],
        id="database unreachable -> +30",
    ),
    pytest.param(
        {Signal.USER_SESSIONS: 0.5},
        "User sessions/min",
        [":large_orange_circle:", "— 0.5", "*high if < 1 → +15*"],
        id="sessions 0.5 -> +15",
    ),
]


@pytest.mark.parametrize(("changes", "label", "expected"), SIGNAL_LINES)
def test_signal_section(
    changes: dict[Signal, float | None], label: str, expected: list[str]
) -> None:
    _, blocks = message(assessed(changes))
    section = section_of(blocks, label)
    for part in expected:
        assert part in section, section
    if ":large_green_circle:" in expected:
        assert "→" not in section


def test_unknown_signal_is_shown_as_unknown() -> None:
    a = assess(
        "checkout",
        [Reading(Signal.HEALTH, 1.0), Reading(Signal.DB_UP, None, "timeout <after 5 s> & retry")],
        Thresholds(),
    )
    _, blocks = message(a)
    section = section_of(blocks, "Database")
    assert section == (
        ":grey_question: *Database* — *unknown* (timeout &lt;after 5 s&gt; &amp; retry);"
        " not counted as healthy"
    )
    assert ":large_green_circle:" not in section


def test_unknown_nan_reading_says_why() -> None:
    _, blocks = message(assessed({Signal.ERROR_RATE: float("nan")}))
    assert "*unknown* (query returned NaN)" in section_of(blocks, "Error rate")


@pytest.mark.parametrize(
    ("changes", "note"),
    [
        pytest.param(
            {Signal.HEALTH: None, Signal.DB_UP: 0},
            "If the unknown signals are failing, the decision would be *IMMEDIATE ROLLBACK*.",
            id="worst case differs -> said",
        ),
        pytest.param(
            {Signal.HEALTH: 0, Signal.DB_UP: 0, Signal.ERROR_RATE: None},
            None,
            id="worst case same as decision -> not said",
        ),
        pytest.param({Signal.HEALTH: 0}, None, id="nothing unknown -> not said"),
    ],
)
def test_worst_case_note(changes: dict[Signal, float | None], note: str | None) -> None:
    _, blocks = message(assessed(changes))
    context = [e["text"] for e in blocks[-1]["elements"]]
    worst = [t for t in context if t.startswith("If the unknown signals")]
    assert worst == ([note] if note else [])


def test_context_has_reasons_escaped_and_the_footer() -> None:
    _, blocks = message(assessed({Signal.ERROR_RATE: 0.12, Signal.DB_UP: None}))
    context = blocks[-1]
    assert context["type"] == "context"
    why, *_, footer = [e["text"] for e in context["elements"]]
    assert (
        why == "Why: Error rate: &gt; 10 % (+25 critical); cannot confirm healthy: Database unknown"
    )
    assert footer == "Assessment #7 · requested by <@U0ABC> · 2025-03-01 14:30:05 UTC"


def test_footer_without_requester() -> None:
    _, blocks = message(assessed({}), requested_by=None)
    footer = blocks[-1]["elements"][-1]["text"]
    assert footer == "Assessment #7 · 2025-03-01 14:30:05 UTC"
    assert "<@" not in footer


def test_no_reasons_no_why() -> None:
    _, blocks = message(assessed({}))
    assert not any(e["text"].startswith("Why:") for e in blocks[-1]["elements"])


def test_one_section_per_signal_in_order() -> None:
    _, blocks = message(assessed({}))
    sections = [b["text"]["text"] for b in blocks[3:-1]]
    labels = ["Health check", "Error rate", "p95 latency", "Database", "User sessions/min"]
    assert len(sections) == len(labels)
    for section, label in zip(sections, labels, strict=True):
        assert f"*{label}*" in section


def test_no_signals_configured() -> None:
    a = assess("checkout", [], Thresholds())
    text, blocks = message(a)
    assert text == a.headline
    assert any("No signals are configured" in t for t in texts(blocks))


@pytest.mark.parametrize("length", [1, 63, 140, 200])
def test_header_is_at_most_150_characters(length: int) -> None:
    a = assessed({Signal.HEALTH: 0, Signal.DB_UP: 0}, service="s" * length)
    _, blocks = message(a)
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150
    assert header.startswith("IMMEDIATE ROLLBACK — s")


def test_every_text_fits_slack_limits() -> None:
    _, blocks = message(assessed({Signal.ERROR_RATE: None, Signal.HEALTH: 0}))
    assert len(blocks) <= 50
    assert all(len(t) <= 3000 for t in texts(blocks))
    assert all(b["type"] in {"header", "section", "divider", "context"} for b in blocks)


# --- other messages --------------------------------------------------------------------------


def test_unknown_service_message_lists_known_services() -> None:
    text, blocks = unknown_service_message("billing", ["checkout", "payments", "search"])
    assert text == "Unknown service `billing`. Known services: `checkout`, `payments`, `search`."
    assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": f":x: {text}"}}]


def test_unknown_service_message_escapes_the_name() -> None:
    text, blocks = unknown_service_message("<!channel>", ["checkout"])
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert all("<!channel>" not in t for t in texts(blocks))


def test_unknown_service_message_with_an_empty_catalog() -> None:
    text, _ = unknown_service_message("checkout", [])
    assert text == "Unknown service `checkout`. Known services: (the catalog has none)."


def test_usage_message_shows_the_problem_then_the_usage() -> None:
    text, blocks = usage_message("unknown subcommand `deploy`.")
    assert text == f"unknown subcommand `deploy`.\n\n{USAGE}"
    assert blocks[0]["text"]["text"] == ":x: unknown subcommand `deploy`."
    assert blocks[1]["text"]["text"] == f"```{USAGE}```"


def test_usage_message_for_help() -> None:
    text, blocks = usage_message()
    assert text == USAGE
    assert "rollback-bot" in blocks[0]["text"]["text"]
    assert blocks[1]["text"]["text"] == f"```{USAGE}```"


def test_notice() -> None:
    assert notice("Rolled back.") == (
        "Rolled back.",
        [{"type": "section", "text": {"type": "mrkdwn", "text": "Rolled back."}}],
    )


def test_usage_problem_quoting_user_text_is_escaped() -> None:
    text, bl = usage_message("unknown subcommand `<!channel>`")
    assert "<!channel>" not in text and "<!channel>" not in str(bl)
    assert "&lt;!channel&gt;" in text


def test_escaping_keeps_user_mentions_but_nothing_louder() -> None:
    from bot.notify.blocks import escape_keeping_mentions

    text = "cancelled by <@U0APPROVER1> at the start; <!channel> <http://evil|x> <@W0ENT> & <@>"
    out = escape_keeping_mentions(text)
    assert "<@U0APPROVER1>" in out and "<@W0ENT>" in out
    assert "&lt;!channel&gt;" in out and "&lt;http://evil|x&gt;" in out
    assert "&amp;" in out and "&lt;@&gt;" in out
