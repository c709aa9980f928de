"""Buttons: every action id the app registers has a listener; a button whose value names
nothing gets a clear private answer; buttons on the App Home tab answer by direct message."""

from __future__ import annotations

import json

import pytest

from handlers.ids import Action
from tests.conftest import Harness
from tests.handlers.conftest import RESPONDER, first_answer, press

# What each button says when its value names nothing (Slack sends what the button was built
# with, but a message can outlive the rollback, the service or the code that built it).
BAD_VALUE_ANSWERS = {
    Action.APPROVE: ":x: This button does not name a rollback.",
    Action.REJECT: ":x: This rollback request no longer exists.",
    Action.CONFIRM_RUN: ":x: This button does not name a rollback.",
    Action.CONFIRM_CANCEL: ":x: This button does not name a rollback.",
    Action.PLAN_ROLLBACK: ":x: garbage is no longer in the catalog.",
    Action.RUN_NOW: ":x: garbage is no longer in the catalog.",
    Action.ASSESS_AGAIN: ":x: garbage is no longer in the catalog.",
    Action.PAGE_ACKNOWLEDGE: "This button is not a page I know; nothing was acknowledged.",
    Action.ROOT_CAUSE_WRITTEN: "This button is broken; use `/rollback review <id>`.",
    Action.MANUAL_GATE_CONTINUE: "This gate no longer exists.",
    Action.GUARD_ROLLBACK_NOW: "This guard question no longer exists.",
    Action.GUARD_KEEP: "This guard question no longer exists.",
    Action.CUSTOMER_PUBLISH: ":x: This customer update no longer exists; nothing was done.",
    Action.CUSTOMER_EDIT: ":x: This customer update no longer exists; nothing was done.",
}


def test_every_action_id_is_in_the_table() -> None:
    assert set(BAD_VALUE_ANSWERS) == set(Action)


def test_an_action_nobody_listens_for_is_unhandled(h: Harness) -> None:
    """Bolt answers 404 when no listener matches: the 200s below mean a listener ran."""
    assert press(h, "no_such_button", "x").status_code == 404


@pytest.mark.parametrize("action", list(Action))
def test_a_button_with_a_bad_value_gets_a_clear_private_answer(h: Harness, action: Action) -> None:
    resp = press(h, action, "garbage")
    assert resp.status_code == 200 and resp.text == ""  # acked, nothing shown in the ack
    told = first_answer(h)
    assert told["text"] == BAD_VALUE_ANSWERS[action]
    assert told["response_type"] == "ephemeral" and told["replace_original"] is False
    h.wait_idle()
    assert h.bot.deps.repo.list_rollbacks() == []
    assert h.slack.calls_to("views.open") == []


def test_a_missing_value_is_a_bad_value_too(h: Harness) -> None:
    assert press(h, Action.APPROVE, "").status_code == 200
    assert first_answer(h)["text"] == ":x: This button does not name a rollback."


def test_an_unknown_rollback_id_is_said(h: Harness) -> None:
    assert press(h, Action.REJECT, "42", user=RESPONDER).status_code == 200
    assert first_answer(h)["text"] == ":x: This rollback request no longer exists."


# --- the App Home reply path: no response_url, so a direct message and the tab again --------


@pytest.mark.parametrize("action", [Action.ASSESS_AGAIN, Action.APPROVE, Action.RUN_NOW])
def test_a_home_tab_button_answers_by_direct_message_and_shows_the_tab_again(
    h: Harness, action: Action
) -> None:
    h.slack.add_user(RESPONDER, "oncall")  # a direct message needs a known user
    assert press(h, action, "garbage", on_home=True).status_code == 200
    dm = h.slack.wait_for("chat.postMessage", lambda c: c.params.get("channel") == RESPONDER)
    assert dm.params["text"] == BAD_VALUE_ANSWERS[action]
    published = h.slack.wait_for("views.publish")
    assert published.params["user_id"] == RESPONDER
    h.wait_idle()
    assert h.slack.calls_to("response_url") == []
    view = h.slack.home_view(RESPONDER)
    assert view is not None and view["type"] == "home"
    assert "Nothing waits for you." in json.dumps(view)


def test_a_channel_button_never_answers_through_the_home_tab(h: Harness) -> None:
    assert press(h, Action.ASSESS_AGAIN, "garbage").status_code == 200
    first_answer(h)
    h.wait_idle()
    assert h.slack.calls_to("views.publish") == []
    assert h.slack.calls_to("chat.postMessage") == []


def test_assess_again_on_a_known_service_posts_a_fresh_assessment(h: Harness) -> None:
    assert press(h, Action.ASSESS_AGAIN, "checkout").status_code == 200
    posted = h.slack.wait_for("chat.postMessage", lambda c: "checkout" in c.params["text"])
    assert posted.params["channel"] == "C0DEPLOYS"
    h.wait_idle()
    assert h.bot.deps.repo.list_rollbacks() == []
