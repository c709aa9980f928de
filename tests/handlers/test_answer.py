"""Giving a ``Reply`` to Slack: ``ack_with`` (a command's ack) and ``respond_with`` (buttons and
everything after the ack). ``ack`` and ``respond`` are plain callables here: our own seams."""

from __future__ import annotations

from typing import Any

import pytest

from bot.notify.reply import Reply
from handlers.answer import ack_with, respond_with
from tests.handlers.conftest import Said

BLOCKS: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]


def test_ack_with_answers_privately_with_text_and_blocks() -> None:
    ack = Said()
    ack_with(ack, Reply("hi", BLOCKS))  # type: ignore[arg-type]  # Bolt's Ack is a callable
    assert ack.calls == [{"text": "hi", "blocks": BLOCKS, "response_type": "ephemeral"}]


def test_ack_with_runs_then_after_the_ack() -> None:
    order: list[str] = []

    def ack(**kwargs: Any) -> None:
        order.append(f"ack:{kwargs['text']}")

    ack_with(ack, Reply("queued", then=lambda: order.append("then")))  # type: ignore[arg-type]
    assert order == ["ack:queued", "then"]


def test_ack_with_a_failing_then_has_acked_already() -> None:
    ack = Said()

    def then() -> None:
        raise RuntimeError("the queue is full")

    with pytest.raises(RuntimeError):
        ack_with(ack, Reply("queued", then=then))  # type: ignore[arg-type]
    assert ack.texts == ["queued"]  # Slack got its answer before the work was queued


def test_respond_with_leaves_the_original_message_by_default() -> None:
    respond = Said()
    respond_with(respond, Reply("only you see this", BLOCKS))
    assert respond.calls == [
        {
            "text": "only you see this",
            "blocks": BLOCKS,
            "response_type": "ephemeral",
            "replace_original": False,
        }
    ]


def test_respond_with_replace_original_edits_the_message_the_button_was_on() -> None:
    respond = Said()
    respond_with(respond, Reply(":white_check_mark: Continued", replace_original=True))
    # no response_type: the edited message keeps the visibility it had
    assert respond.calls == [
        {"text": ":white_check_mark: Continued", "blocks": None, "replace_original": True}
    ]


def test_respond_with_refuses_a_reply_with_follow_up_work() -> None:
    """Work to queue after an answer belongs to an ack; ``respond`` comes after it already."""
    with pytest.raises(AssertionError):
        respond_with(Said(), Reply("queued", then=lambda: None))
