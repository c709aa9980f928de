"""Forms: field errors come back in the ack, under the input they are about; a valid form is
acked empty (the modal closes) and the outcome is told privately."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.approvals import blocks as ab
from tests.conftest import Harness
from tests.handlers.conftest import APPROVER, CHANNEL, RESPONDER

PLAN_FORM = ab.plan_modal("checkout", None)
REJECT_FORM = ab.reject_modal(1, "checkout")


def submit(h: Harness, view: dict[str, Any], user: str = APPROVER, **values: str) -> httpx.Response:
    return h.requester.submit_view(view, values, user_id=user)


def errors(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 200
    body = resp.json()
    assert body["response_action"] == "errors"
    return dict(body["errors"])


def pending_request(h: Harness) -> int:
    r = h.bot.deps.repo.create_rollback(
        service="checkout",
        kind="planned",
        strategy="undo",
        requested_by=RESPONDER,
        status="pending_approval",
        now=datetime.now(UTC),
        reason="errors after v3",
        channel_id=CHANNEL,
    )
    assert r.id is not None
    return r.id


def test_the_forms_have_the_inputs_the_handler_reads() -> None:
    def inputs(view: dict[str, Any]) -> set[str]:
        return {b["block_id"] for b in view["blocks"] if b["type"] == "input"}

    assert inputs(PLAN_FORM) == {"reason", "target", "window", "phases"}
    assert inputs(REJECT_FORM) == {"reason"}


# --- Reject -----------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_the_reject_form_without_a_reason_asks_for_one(h: Harness, reason: str) -> None:
    rollback_id = pending_request(h)
    assert errors(submit(h, REJECT_FORM, reason=reason)) == {
        "reason": "Say why, for the requester."
    }
    r = h.bot.deps.repo.get_rollback(rollback_id)
    assert r is not None and r.status == "pending_approval"


def test_a_reject_form_that_lost_its_rollback_id_says_so(h: Harness) -> None:
    view = {**REJECT_FORM, "private_metadata": "not-a-number"}
    assert errors(submit(h, view, reason="freeze")) == {"reason": "This form lost its rollback id."}


def test_a_reject_form_with_a_reason_rejects_and_tells_the_rejecter(h: Harness) -> None:
    rollback_id = pending_request(h)
    resp = submit(h, REJECT_FORM, reason="change freeze")
    assert resp.status_code == 200 and resp.text == ""  # the modal closes
    told = h.slack.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == APPROVER)
    assert told.params["channel"] == CHANNEL
    assert "rejected" in told.params["text"]
    h.wait_idle()
    r = h.bot.deps.repo.get_rollback(rollback_id)
    assert r is not None and r.status == "rejected"


# --- Plan rollback ----------------------------------------------------------------------------


def test_plan_form_errors_are_under_their_own_inputs(h: Harness) -> None:
    found = errors(submit(h, PLAN_FORM, RESPONDER, reason="", target="no way", window="soon"))
    assert set(found) == {"reason", "target", "window"}
    assert found["reason"] == "Say why the service should be rolled back."
    assert "not a revision" in found["target"] and "`" not in found["target"]
    assert "`" not in found["window"]
    assert h.bot.deps.repo.list_rollbacks() == []


def test_only_the_wrong_field_gets_an_error(h: Harness) -> None:
    found = errors(submit(h, PLAN_FORM, RESPONDER, reason="slow", target="", window="25:99"))
    assert set(found) == {"window"}


def test_a_plan_form_for_a_service_that_left_the_catalog(h: Harness) -> None:
    view = {**PLAN_FORM, "private_metadata": "gone:3"}
    found = errors(submit(h, view, RESPONDER, reason="slow", target="", window=""))
    assert found == {"reason": "gone left the catalog."}


def test_a_valid_plan_form_closes_and_the_outcome_is_told_privately(h: Harness) -> None:
    resp = submit(h, PLAN_FORM, RESPONDER, reason="p95 over 5 s", target="", window="")
    assert resp.status_code == 200 and resp.text == ""
    told = h.slack.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == RESPONDER)
    assert told.params["channel"] == CHANNEL
    # no cluster here: the request is refused, and the refusal is what the requester hears
    assert told.params["text"].startswith(":no_entry: No rollback request for *checkout*")
    assert h.bot.deps.repo.list_rollbacks() == []
