"""The Continue button of a manual gate, pressed through signed HTTP: approvers named through a
user group may press it like approvers named one by one; anyone else is refused and audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.notify.blocks import MANUAL_GATE_ACTION
from bot.sim.slack_api import SlackCall, SlackSimulator
from tests.conftest import Harness

CATALOG = """defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
services:
  search:
    deployment: search-api
    responders: [U0ONCALL1]
    approvers: [U0APPROVER1, {usergroup: S0SRE}]
    phases:
      application: [{kind: manual_gate, prompt: Hold until the cache is warm}]
"""


def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


@pytest.fixture
def harness(make_harness: Any, slack: SlackSimulator) -> Harness:
    for user in ("U0ONCALL1", "U0APPROVER1", "U0SRE1", "U0STRANGER"):
        slack.add_user(user, user.lower())
    slack.add_usergroup("S0SRE", ["U0SRE1"])
    h: Harness = make_harness(CATALOG, prometheus_url=None)
    return h


def gate_button(slack: SlackSimulator) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The thread message with the Continue button, and the button."""
    for message in slack.messages("C0DEPLOYS"):
        for block in message.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("action_id") == MANUAL_GATE_ACTION:
                    return message, element
    return None


def answer_to(slack: SlackSimulator, needle: str) -> SlackCall:
    return slack.wait_for("response_url", lambda c: needle in str(c.params.get("text")), timeout=10)


def test_a_user_group_approver_may_continue_and_a_stranger_may_not(
    harness: Harness, slack: SlackSimulator
) -> None:
    assert "started" in harness.slash("run search --immediate cache cold").json()["text"]
    message, button = until(lambda: gate_button(slack), "the gate's Continue button")

    refused = harness.requester.click(message, button, user_id="U0STRANGER", channel_id="C0DEPLOYS")
    assert refused.status_code == 200
    answer = answer_to(slack, ":no_entry:").params
    assert answer["response_type"] == "ephemeral"
    assert "<!subteam^S0SRE>" in answer["text"]  # the refusal names the group approvers too
    repo = harness.bot.deps.repo
    (event,) = repo.list_audit_events(kind="gate.refused")
    assert event.actor == "U0STRANGER"
    rollback = repo.get_rollback(1)
    assert rollback is not None and rollback.status == "running"  # still waiting at the gate

    pressed = harness.requester.click(message, button, user_id="U0SRE1", channel_id="C0DEPLOYS")
    assert pressed.status_code == 200
    answer_to(slack, "Continued by <@U0SRE1>")
    harness.wait_rollbacks()

    rollback = repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    (event,) = repo.list_audit_events(kind="gate.continued")
    assert event.actor == "U0SRE1"
    (gate,) = repo.list_steps(1)
    assert gate.detail.get("continued_by") == "U0SRE1"
