"""The console shows Slack messages (mrkdwn + Block Kit) as plain terminal text."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.console import buttons_of, mrkdwn_to_text, render_message
from bot.notify.blocks import assessment_message
from bot.rollback.assess import Reading, Signal, Thresholds, assess

MRKDWN = [
    pytest.param(":rotating_light: now", "🚨 now", id="emoji"),
    pytest.param(":eyes: :x: :grey_question:", "👀 ❌ ❔", id="several emoji"),
    pytest.param(":unknown_emoji:", ":unknown_emoji:", id="unknown emoji kept"),
    pytest.param("requested by <@U0ABC123>", "requested by @U0ABC123", id="user mention"),
    pytest.param("the result is in <#C0DEPLOYS>", "the result is in #C0DEPLOYS", id="channel"),
    pytest.param("see <#C0DEPLOYS|deploys> now", "see #deploys now", id="channel with name"),
    pytest.param(
        "see <https://grafana.example/d/1|the dashboard>",
        "see the dashboard (https://grafana.example/d/1)",
        id="link with label",
    ),
    pytest.param("*IMMEDIATE ROLLBACK*", "IMMEDIATE ROLLBACK", id="bold"),
    pytest.param("_critical score ≥ 50_", "critical score ≥ 50", id="italic"),
    pytest.param("critical *55* · high *15*", "critical 55 · high 15", id="bold numbers"),
    pytest.param("```/rollback help```", "/rollback help", id="code fence"),
    pytest.param("user_sessions_per_min", "user_sessions_per_min", id="snake_case kept"),
    pytest.param("2*3*4", "2*3*4", id="stars inside a word kept"),
    pytest.param("a &amp; b &lt;x&gt;", "a & b <x>", id="entities decoded"),
    pytest.param("&lt;@U0ABC&gt;", "<@U0ABC>", id="escaped mention stays literal"),
    pytest.param("&amp;lt;", "&lt;", id="&amp; decoded last"),
    pytest.param("plain text", "plain text", id="plain text unchanged"),
]


@pytest.mark.parametrize(("mrkdwn", "text"), MRKDWN)
def test_mrkdwn_to_text(mrkdwn: str, text: str) -> None:
    assert mrkdwn_to_text(mrkdwn) == text


def _button(text: str, action_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        **extra,
    }


MESSAGE: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Monitor — checkout"}},
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*bold* first\nsecond"},
        "fields": [{"type": "mrkdwn", "text": "_field_"}],
    },
    {"type": "divider"},
    {
        "type": "section",
        "block_id": "ask",
        "text": {"type": "mrkdwn", "text": "Approve rollback #42?"},
        "accessory": _button("Open", "open"),
    },
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            _button("Approve", "approve", value="42", style="primary"),
            {"type": "static_select", "action_id": "pick"},
            _button("Reject", "reject", value="42", style="danger"),
        ],
    },
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "requested by <@U0ABC>"}]},
]


def test_render_message_layout() -> None:
    assert render_message("fallback", MESSAGE).splitlines() == [
        "MONITOR — CHECKOUT",
        "═" * len("Monitor — checkout"),
        "bold first",
        "second",
        "field",
        "─" * 40,
        "Approve rollback #42?",
        "[1] Open",
        "[2] Approve   [3] Reject",
        "  · requested by @U0ABC",
    ]


@pytest.mark.parametrize(
    "blocks",
    [pytest.param(None, id="no blocks"), pytest.param([], id="empty blocks")],
)
def test_render_without_blocks_uses_the_text(blocks: list[dict[str, Any]] | None) -> None:
    assert render_message("*done* for <@U1>", blocks) == "done for @U1"


def test_long_lines_are_wrapped_to_width() -> None:
    words = " ".join(["rollback"] * 40)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 100}},
        {"type": "section", "text": {"type": "mrkdwn", "text": words}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": words}]},
    ]
    lines = render_message("", blocks, width=50).splitlines()
    assert lines[1] == "═" * 50  # the underline stops at the width
    body = lines[2:]
    assert len(body) > 2
    assert all(len(line) <= 50 for line in body)
    assert " ".join(w for line in body for w in line.replace("·", " ").split()) == " ".join(
        [words, words]
    )


def test_buttons_of_lists_buttons_in_display_order() -> None:
    found = buttons_of(MESSAGE)
    assert [(b["action_id"], b["block_id"]) for b in found] == [
        ("open", "ask"),
        ("approve", "decide"),
        ("reject", "decide"),
    ]
    assert found[1]["value"] == "42"
    assert found[2]["style"] == "danger"


def test_buttons_of_does_not_change_the_blocks() -> None:
    before = copy.deepcopy(MESSAGE)
    buttons_of(MESSAGE)
    render_message("", MESSAGE)
    assert before == MESSAGE


def test_buttons_of_without_buttons() -> None:
    assert buttons_of([{"type": "divider"}, {"type": "section", "text": {"text": "x"}}]) == []
    assert buttons_of([]) == []


def test_button_without_block_id() -> None:
    (found,) = buttons_of([{"type": "actions", "elements": [_button("Go", "go")]}])
    assert found["block_id"] == ""


def test_renders_an_assessment() -> None:
    a = assess(
        "checkout",
        [
            Reading(Signal.HEALTH, 1.0),
            Reading(Signal.ERROR_RATE, 0.12),
            Reading(Signal.DB_UP, None, "pg_up has no series"),
        ],
        Thresholds(),
    )
    text, blocks = assessment_message(
        a, assessment_id=7, requested_by="U0ABC", at=datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    )
    shown = render_message(text, blocks)
    first = shown.splitlines()[0]
    assert first == "MONITOR — CHECKOUT"
    assert "❔ Database — unknown (pg_up has no series); not counted as healthy" in shown
    assert "🔴 Error rate — 12 %" in shown
    assert "critical if > 10 % → +25 · high if > 5 %" in shown
    assert "If the unknown signals are failing, the decision would be IMMEDIATE ROLLBACK." in shown
    assert "Assessment #7 · requested by @U0ABC · 2025-03-01 14:30:00 UTC" in shown
    for leftover in ("*", "<@", "&gt;", "&lt;", "&amp;", ":red_circle:"):
        assert leftover not in shown
