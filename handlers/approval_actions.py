"""Approval buttons (Approve, Reject, Run anyway / Cancel) and the assessment's buttons.

Buttons hand their work to the work pool and ack at once (the work is queued before the ack, so
whoever waits for the pool after the ack — the console, tests — sees it). Who pressed it is
checked against the catalog; refusals are answered privately and audited by ``bot.approvals``.
A double click or a retried delivery is one vote (the database keeps one vote per person).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals import blocks as approval_blocks
from bot.approvals import request as approvals
from bot.approvals import start as approval_start
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.preflight import stale_assessment
from bot.rollback import policy
from handlers.commands import submit_claimed
from handlers.delivery import delivery_key
from handlers.errors import tell_on_error
from handlers.ids import Action
from handlers.rollbacks import assessment_reason, start_immediate

log = logging.getLogger(__name__)


def _tell(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


class _HomeReply:
    """Buttons on the App Home tab have no response_url: answer by direct message and show the
    tab again with the new state."""

    def __init__(self, deps: Deps, user: str) -> None:
        self.deps, self.user = deps, user

    def __call__(self, text: str = "", **_: Any) -> None:
        from handlers.home import publish_home

        self.deps.slack.chat_postMessage(channel=self.user, text=text)
        publish_home(self.deps, self.deps.slack, self.user)


def _replier(deps: Deps, body: dict[str, Any], respond: Respond) -> Any:
    if body.get("container", {}).get("type") == "view" or not body.get("response_url"):
        return _HomeReply(deps, body["user"]["id"])
    return respond


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value", ""))


def _rollback_id(body: dict[str, Any]) -> int | None:
    value = _value(body)
    return int(value) if value.isdigit() else None


def register(app: App, deps: Deps) -> None:
    @app.action(Action.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        reply = _replier(deps, body, respond)
        deps.work.submit(
            "approve button",
            _approve,
            deps,
            body,
            reply,
            tell=tell_on_error(reply, "your approval"),
        )
        ack()

    @app.action(Action.REJECT)
    def reject(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        """Reject asks for a reason in a modal; refusals are said before the modal opens."""
        ack()
        respond = _replier(deps, body, respond)
        rollback_id = _rollback_id(body)
        r = deps.repo.get_rollback(rollback_id) if rollback_id is not None else None
        service = deps.catalog.get(r.service) if r else None
        if r is None or r.id is None or service is None:
            _tell(respond, ":x: This rollback request no longer exists.")
            return
        user = body["user"]["id"]
        request = policy.Request(r.status, r.requested_by, r.expires_at, r.required_approvals)
        members = deps.groups.members(policy.approver_groups(service))
        refusal = policy.rejection_refusal(service, user, request, members)
        if refusal is not None:  # let approvals.reject audit and word the refusal
            message_ts = body.get("container", {}).get("message_ts")
            answer = approvals.reject(deps, r.id, user, "", via="button", message_ts=message_ts)
            _tell(respond, answer.text)
            return
        _open(client, body, approval_blocks.reject_modal(r.id, r.service), respond)

    @app.action(Action.PLAN_ROLLBACK)
    def plan_rollback(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        # the stale check reads the cluster: in the pool, so the ack never waits for it
        deps.work.submit(
            "plan rollback button",
            _open_plan_form,
            deps,
            body,
            client,
            respond,
            tell=tell_on_error(respond, "Plan rollback"),
        )
        ack()

    @app.action(Action.RUN_NOW)
    def run_now(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        reply = _replier(deps, body, respond)
        doing = "Roll back now"
        deps.work.submit(
            "roll back now button", _run_now, deps, body, reply, tell=tell_on_error(reply, doing)
        )
        ack()

    @app.action(Action.ASSESS_AGAIN)
    def assess_again(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        reply = _replier(deps, body, respond)
        service = deps.catalog.get(_value(body))
        if service is None:
            _tell(reply, f":x: {_value(body)} is no longer in the catalog.")
            return
        user, channel = body["user"]["id"], body.get("channel", {}).get("id")
        if busy := deps.work.assessments.claim(user, service.name, channel or service.channel):
            _tell(reply, busy)
            return
        submit_claimed(deps, service, delivery_key(body), user, channel, client, reply)

    @app.action(Action.CONFIRM_RUN)
    def confirm_run(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        reply = _replier(deps, body, respond)
        deps.work.submit(
            "confirm button",
            _confirm,
            deps,
            body,
            reply,
            True,
            tell=tell_on_error(reply, "Run anyway"),
        )
        ack()

    @app.action(Action.CONFIRM_CANCEL)
    def confirm_cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        reply = _replier(deps, body, respond)
        deps.work.submit(
            "cancel button", _confirm, deps, body, reply, False, tell=tell_on_error(reply, "Cancel")
        )
        ack()


def _open_plan_form(deps: Deps, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
    service_name, _, assessment = _value(body).partition(":")
    service = deps.catalog.get(service_name)
    if service is None:
        _tell(respond, f":x: {service_name} is no longer in the catalog.")
        return
    assessment_id = int(assessment) if assessment.isdigit() else None
    if _is_stale(deps, service, assessment_id, respond):
        return
    modal = approval_blocks.plan_modal(service_name, assessment_id, service.timezone)
    _open(client, body, modal, respond)


def _approve(deps: Deps, body: dict[str, Any], respond: Respond) -> None:
    rollback_id = _rollback_id(body)
    if rollback_id is None:
        _tell(respond, ":x: This button does not name a rollback.")
        return
    answer = approvals.approve(
        deps,
        rollback_id,
        body["user"]["id"],
        via="button",
        message_ts=body.get("container", {}).get("message_ts"),
    )
    _tell(respond, answer.text)


def _run_now(deps: Deps, body: dict[str, Any], respond: Respond) -> None:
    user = body["user"]["id"]
    service_name, _, assessment = _value(body).partition(":")
    service = deps.catalog.get(service_name)
    if service is None:
        _tell(respond, f":x: {service_name} is no longer in the catalog.")
        return
    if not policy.may_run_immediately(service, user):
        deps.repo.add_audit_event(
            "rollback.refused",
            now=deps.clock(),
            service=service.name,
            actor=user,
            channel_id=body.get("channel", {}).get("id"),
            message_ts=body.get("message", {}).get("ts"),
            detail={"why": "not a responder", "via": "assessment button"},
        )
        _tell(
            respond,
            f":no_entry: Only responders of *{service.name}* may roll back at once:"
            f" {policy.who_may_run(service)}. Use *Plan rollback* to ask for approval.",
        )
        return
    assessment_id = int(assessment) if assessment.isdigit() else None
    if _is_stale(deps, service, assessment_id, respond):
        return
    text = start_immediate(
        deps,
        service,
        user=user,
        reason=_reason_of(deps, assessment_id),
        target_revision=None,
        assessment_id=assessment_id,
        channel_id=body.get("channel", {}).get("id"),
    )
    _tell(respond, text)


def _reason_of(deps: Deps, assessment_id: int | None) -> str:
    """Roll back now says why with the assessment it was pressed on."""
    found = deps.repo.get_assessment(assessment_id) if assessment_id is not None else None
    if found is None or found.status != "done":
        return f"from assessment #{assessment_id}" if assessment_id else "from an assessment"
    return assessment_reason(found)


def _is_stale(deps: Deps, service: Service, assessment_id: int | None, respond: Respond) -> bool:
    """An assessment's buttons act only on the release it assessed; otherwise say so, with a
    button for a fresh assessment."""
    assessment = deps.repo.get_assessment(assessment_id) if assessment_id is not None else None
    assessed = (assessment.result or {}).get("release") if assessment else None
    why = stale_assessment(deps.kube, service, assessed)
    if why is None:
        return False
    text = f":arrows_counterclockwise: Nothing was started: {why}."
    respond(
        text=text,
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            approval_blocks.assess_again_button(service.name),
        ],
        response_type="ephemeral",
        replace_original=False,
    )
    return True


def _confirm(deps: Deps, body: dict[str, Any], respond: Respond, run: bool) -> None:
    rollback_id = _rollback_id(body)
    if rollback_id is None:
        _tell(respond, ":x: This button does not name a rollback.")
        return
    answer = approval_start.confirm(deps, rollback_id, body["user"]["id"], run=run)
    if answer.is_ok and not answer.text.startswith("Rollback #"):
        respond(text=f"{answer.text} (<@{body['user']['id']}>)", replace_original=True)
    else:
        _tell(respond, answer.text)


def _open(client: WebClient, body: dict[str, Any], view: dict[str, Any], respond: Respond) -> None:
    try:
        client.views_open(trigger_id=body["trigger_id"], view=view)
    except SlackApiError as exc:  # e.g. expired_trigger_id when Slack was slow to deliver
        error = exc.response.get("error")
        log.warning("views.open failed: %s", error)
        _tell(respond, f":x: Slack did not open the form (`{error}`); press the button again.")
