"""Slack's size limits: every Block Kit builder stays inside them, whatever it is given.

Each builder gets oversized input (a 3,900-character reason, a 5,000-character error, a long
service name, many votes) and its output must pass the Slack simulator's own check
(bot/sim/slack_blocks.py, Slack's documented limits written out independently), with the cut
marked by "…" and a pointer to where the whole text can be read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.approvals import blocks as ab
from bot.notify import limits
from bot.notify.blocks import (
    FREE_TEXT_CHARS,
    assessment_message,
    button,
    context,
    header,
    manual_gate_message,
    notice,
    progress_message,
    section,
    unknown_service_message,
    usage_message,
)
from bot.paging.messages import Contact, page_notice
from bot.rollback.assess import Reading, Signal, Thresholds, assess
from bot.sim.slack_blocks import block_errors, view_errors
from storage.models import Approval, Assessment, Rollback, RollbackStep

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
LONG_REASON = "the error rate doubled & <!channel> users complain " * 78  # 3,900 characters
LONG_ERROR = "HTTP 503 from http://checkout/health: upstream connect error; " * 80
LONG_NAME = "checkout-" + "x" * 300
THREAD = "_(the whole text is in the thread)_"


def assert_slack_takes(text: str, blocks: list[dict[str, Any]]) -> None:
    assert block_errors(blocks) == [], json.dumps(blocks, ensure_ascii=False)[:500]
    assert len(text) <= 40_000


def all_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            return [node["text"]]
        return [t for v in node.values() for t in all_texts(v)]
    if isinstance(node, list):
        return [t for item in node for t in all_texts(item)]
    return []


def rollback(status: str = "failed", **fields: Any) -> Rollback:
    values: dict[str, Any] = {
        "id": 4,
        "service": "checkout",
        "status": status,
        "kind": "immediate",
        "strategy": "undo",
        "requested_by": "U0ONCALL1",
        "reason": LONG_REASON,
        "channel_id": "C0DEPLOYS",
        "created_at": T0,
        "started_at": T0 if status not in ab.STATUS_LINES or status in ("running",) else None,
        "required_approvals": 2,
        "expires_at": T0 + timedelta(hours=1),
    }
    values.update(fields)
    return Rollback(**values)


def steps(error: str | None = LONG_ERROR) -> list[RollbackStep]:
    return [
        RollbackStep(
            rollback_id=4,
            phase="application",
            position=i,
            name=f"Step {i} " + "y" * 200,
            kind="http_check",
            status="failed" if i == 59 else "succeeded",
            error=error if i == 59 else None,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=5),
        )
        for i in range(60)
    ]


# --- the limits module ------------------------------------------------------------------------


def test_clip_marks_the_cut_and_points_to_the_whole_text() -> None:
    text = "a" * 5000
    cut = limits.clip(text, 3000, limits.link("https://bot.example/reviews/4-x"))
    assert len(cut) <= 3000
    assert cut.endswith("… <https://bot.example/reviews/4-x|full text>")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("&amp;" * 1000, id="escapes"),
        pytest.param("<@U0ONCALL1> " * 400, id="mentions"),
        pytest.param("see <https://example.com/a|a link> " * 200, id="links"),
    ],
)
def test_clip_never_splits_an_escape_a_mention_or_a_link(text: str) -> None:
    for limit in range(2990, 3001):
        cut = limits.clip(text, limit).removesuffix("…")
        assert cut.count("<") == cut.count(">"), cut[-40:]
        assert not cut.rstrip().endswith(("&", "&a", "&am", "&amp")), cut[-10:]


def test_clip_closes_a_code_block_it_cut_open() -> None:
    cut = limits.clip("```" + "x" * 5000 + "```", 3000)
    assert cut.count("```") == 2 and len(cut) <= 3000


def test_more_than_fifty_blocks_keep_forty_nine_and_say_how_many_are_left_out() -> None:
    fitted = limits.fit_blocks(
        [section(f"line {i}") for i in range(80)], more=limits.link("https://x/y")
    )
    assert len(fitted) == 50
    note = fitted[-1]["elements"][0]["text"]
    assert note == "_31 more blocks not shown… <https://x/y|full text>_"
    assert block_errors(fitted) == []


def test_primitives_cut_to_their_own_limits() -> None:
    assert len(header("h" * 400)["text"]["text"]) == 150
    assert len(button("b" * 100, "a", "v" * 3000)["text"]["text"]) == 75
    cut = section("s" * 9000)["text"]["text"]
    assert 2990 <= len(cut) <= 3000 and cut.endswith("…")
    ctx = context(*["c" * 4000] * 12)
    assert len(ctx["elements"]) == 10
    assert all(len(e["text"]) <= 3000 for e in ctx["elements"])
    assert block_errors([header("h" * 400), section("s" * 9000), ctx]) == []


# --- every builder, oversized -----------------------------------------------------------------


def test_progress_message_with_a_3900_character_reason_and_a_long_error() -> None:
    text, blocks = progress_message(
        rollback("failed", service=LONG_NAME, started_at=T0, finished_at=T0),
        steps(),
        sla_minutes=15,
        now=T0,
        more=THREAD,
    )
    assert_slack_takes(text, blocks)
    facts = blocks[1]["text"]["text"]
    assert f"… {THREAD}" in facts  # the reason is cut, and says where the rest is
    assert len(facts) < 2 * FREE_TEXT_CHARS
    failure = next(t for t in all_texts(blocks) if "failed:" in t)
    assert f"… {THREAD}" in failure
    assert "<!channel>" not in json.dumps(blocks, ensure_ascii=False)  # cut or not, still escaped


def test_request_message_with_a_3900_character_reason_and_many_long_votes() -> None:
    r = rollback("pending_approval", kind="planned", service=LONG_NAME)
    votes = [
        Approval(
            rollback_id=4,
            user_id=f"U0APPROVER{i}",
            decision="reject",
            reason=LONG_REASON,
            via="button",
            created_at=T0,
        )
        for i in range(5)
    ]
    text, blocks = ab.request_message(
        r,
        approvals=votes,
        assessment=Assessment(service="checkout", decision="MONITOR", created_at=T0, id=3),
        plan_summary="• step\n" * 2000,
        approvers="<@U0APPROVER1>",
        two_person_rule=True,
        note="n" * 5000,
    )
    assert_slack_takes(text, blocks)
    assert ab.REASON_IN_THREAD in blocks[1]["text"]["text"]
    assert ab.reason_is_cut(LONG_REASON)


def test_assessment_message_with_long_notes_passes() -> None:
    readings = [Reading(s, None) for s in Signal]
    a = assess(LONG_NAME, readings, Thresholds())
    a = type(a)(**{**a.__dict__, "reasons": (LONG_ERROR,) * 20})
    text, blocks = assessment_message(a, assessment_id=1, requested_by="U0ABC", at=T0)
    assert_slack_takes(text, blocks)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: usage_message(LONG_REASON * 3), id="usage"),
        pytest.param(
            lambda: unknown_service_message(LONG_NAME * 20, [f"svc{i}" * 30 for i in range(200)]),
            id="unknown service",
        ),
        pytest.param(lambda: notice(LONG_ERROR * 10), id="notice"),
        pytest.param(lambda: ("", manual_gate_message(LONG_REASON * 3, 1)), id="manual gate"),
        pytest.param(
            lambda: ab.confirm_start_message(rollback("approved"), LONG_ERROR * 10),
            id="confirm start",
        ),
        pytest.param(
            lambda: ("", [ab.assessment_buttons(LONG_NAME * 10, 1, offer_run_now=True)]),
            id="assessment buttons",
        ),
        pytest.param(lambda: ("", [ab.assess_again_button(LONG_NAME * 10)]), id="assess again"),
        pytest.param(
            lambda: page_notice(
                rollback_id=4,
                service=LONG_NAME,
                reason="critical",
                summary=LONG_REASON,
                level=1,
                levels=3,
                paged=[Contact(f"Person {i} " * 20, "+15550100001") for i in range(40)],
                failed=[(Contact("x" * 300, "+15550100002"), LONG_ERROR)],
                next_level="Senior SRE " * 50,
                is_sms_enabled=True,
            ),
            id="page notice",
        ),
    ],
)
def test_every_builder_stays_inside_slacks_limits(build: Any) -> None:
    text, blocks = build()
    assert_slack_takes(text, blocks)


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda: ab.plan_modal(LONG_NAME, 1, "Europe/Berlin"), id="plan"),
        pytest.param(lambda: ab.reject_modal(4, LONG_NAME * 20), id="reject"),
    ],
)
def test_modals_stay_inside_slacks_limits(view: Any) -> None:
    assert view_errors(view()) == []


# --- every status reads true (issue #12, item 5) ------------------------------------------------


def test_a_cancelled_request_says_who_cancelled_it_and_that_it_never_ran() -> None:
    r = rollback(
        "cancelled",
        kind="planned",
        reason="bad deploy",
        error="cancelled by <@U0APPROVER1>: wrong target",
        finished_at=T0 + timedelta(minutes=3),
    )
    text, blocks = progress_message(r, [], sla_minutes=15, now=T0 + timedelta(hours=1))
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "— CANCELLED" in text
    assert "Elapsed" not in shown and "SLA" not in shown and "started by" not in shown
    assert "requested by <@U0ONCALL1>" in shown
    assert "Cancelled by <@U0APPROVER1>: wrong target — it never ran" in shown
    assert "Cancelled: cancelled" not in shown


@pytest.mark.parametrize(
    ("status", "title"),
    [
        ("pending_approval", "WAITING FOR APPROVAL"),
        ("approved", "APPROVED, NOT STARTED YET"),
        ("scheduled", "SCHEDULED"),
        ("rejected", "REJECTED"),
        ("expired", "EXPIRED"),
    ],
)
def test_a_request_that_never_ran_shows_no_sla_clock(status: str, title: str) -> None:
    r = rollback(status, kind="planned", reason="x", error=None)
    text, blocks = progress_message(
        r, [], sla_minutes=15, now=T0 + timedelta(minutes=30), state_note="Waiting for X."
    )
    shown = json.dumps(blocks, ensure_ascii=False)
    assert f"— {title}" in text and "PENDING_APPROVAL" not in text
    assert "Elapsed" not in shown and "started by" not in shown


def test_a_finished_rollback_says_how_long_it_took_not_elapsed() -> None:
    r = rollback("succeeded", reason="x", started_at=T0, finished_at=T0 + timedelta(minutes=2))
    _, blocks = progress_message(r, [], sla_minutes=15, now=T0 + timedelta(hours=2))
    assert blocks[-1]["elements"][0]["text"].endswith("Took 2m 00s (SLA 15 min)")
