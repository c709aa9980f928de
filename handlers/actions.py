"""Buttons (``block_actions``): ack, read the button, one call into ``bot/``; work that reads the
cluster or Slack runs in the pool so that the ack never waits for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.adapters.slack.posts import open_view
from bot.approvals import submit
from bot.assessment import service as assessment
from bot.deps import Deps
from bot.execution import gates, immediate
from bot.guard import firing
from bot.notify.home import publish_home
from bot.notify.reply import Asker, Reply, tell, tell_on_error
from bot.paging.acks import acknowledge_from_slack
from bot.review import answers
from handlers.answer import respond_with
from handlers.delivery import delivery_key
from handlers.ids import Action


class _HomeReply:
    """Buttons on the App Home tab have no response_url: answer by direct message and show the
    tab again with the new state."""

    def __init__(self, deps: Deps, user: str) -> None:
        self.deps, self.user = deps, user

    def __call__(self, text: str = "", **_: Any) -> None:
        self.deps.slack.chat_postMessage(channel=self.user, text=text)
        publish_home(self.deps, self.user)


def _replier(deps: Deps, body: dict[str, Any], respond: Respond) -> Callable[..., object]:
    if body.get("container", {}).get("type") == "view" or not body.get("response_url"):
        return _HomeReply(deps, body["user"]["id"])
    return respond


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value", ""))


def _rollback_id(body: dict[str, Any]) -> int | None:
    value = _value(body)
    return int(value) if value.isdigit() else None


def _where(body: dict[str, Any]) -> dict[str, str | None]:
    return {
        "channel_id": body.get("channel", {}).get("id"),
        "message_ts": body.get("message", {}).get("ts"),
    }


def _in_pool(
    deps: Deps, body: dict[str, Any], respond: Respond, doing: str, work: Callable[[], Reply]
) -> None:
    """Run ``work`` after the ack and give its reply to the person who pressed the button."""
    reply = _replier(deps, body, respond)
    deps.work.submit(doing, lambda: respond_with(reply, work()), tell=tell_on_error(reply, doing))


def _form_or_reply(
    deps: Deps, body: dict[str, Any], respond: Callable[..., object], opened: Reply | dict[str, Any]
) -> None:
    """Open the form a button asks for, or give the reason it is not opened."""
    if isinstance(opened, Reply):
        respond_with(respond, opened)
    elif error := open_view(deps.slack, body["trigger_id"], opened):
        tell(respond, f":x: Slack did not open the form (`{error}`); press the button again.")


def install(app: App, deps: Deps) -> None:
    _install_approvals(app, deps)
    _install_rollbacks(app, deps)

    @app.action(Action.PAGE_ACKNOWLEDGE)
    def acknowledge_page(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        rollback_id, _, reason = _value(body).partition(":")
        if not rollback_id.isdigit() or not reason:
            tell(respond, "This button is not a page I know; nothing was acknowledged.")
            return
        container = body.get("container") or {}
        text = acknowledge_from_slack(
            deps,
            int(rollback_id),
            reason,
            body["user"]["id"],
            channel_id=container.get("channel_id"),
            message_ts=container.get("message_ts"),
        )
        tell(respond, text)

    @app.action(Action.ROOT_CAUSE_WRITTEN)
    def root_cause_written(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        if (rollback_id := _rollback_id(body)) is None:
            tell(respond, "This button is broken; use `/rollback review <id>`.")
            return
        where = _where(body)
        reply = answers.mark_root_cause_written(
            deps, rollback_id, body["user"]["id"], where["channel_id"], where["message_ts"]
        )
        respond_with(respond, reply)


def _install_approvals(app: App, deps: Deps) -> None:
    """A planned request's buttons: Approve, Reject, Run anyway, Cancel rollback."""

    @app.action(Action.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        user, ts = body["user"]["id"], body.get("container", {}).get("message_ts")
        work = lambda: submit.approve_button(deps, _rollback_id(body), user, ts)  # noqa: E731
        _in_pool(deps, body, respond, "your approval", work)
        ack()

    @app.action(Action.REJECT)
    def reject(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ts = body.get("container", {}).get("message_ts")
        form = submit.reject_form(deps, _rollback_id(body), body["user"]["id"], ts)
        _form_or_reply(deps, body, _replier(deps, body, respond), form)

    app.action(Action.CONFIRM_RUN)(_confirm_press(deps, run=True, what="Run anyway"))
    app.action(Action.CONFIRM_CANCEL)(_confirm_press(deps, run=False, what="Cancel"))


def _confirm_press(
    deps: Deps, *, run: bool, what: str
) -> Callable[[Ack, dict[str, Any], Respond], None]:
    """Run anyway / Cancel, under a start that asked to be confirmed."""

    def press(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        user = body["user"]["id"]
        work = lambda: submit.confirm_button(deps, _rollback_id(body), user, run=run)  # noqa: E731
        _in_pool(deps, body, respond, what, work)
        ack()

    return press


def _install_rollbacks(app: App, deps: Deps) -> None:
    """An assessment's buttons and a running rollback's manual gate."""

    @app.action(Action.PLAN_ROLLBACK)
    def plan_rollback(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        # the stale check reads the cluster: in the pool, so the ack never waits for it
        def open_form() -> None:
            _form_or_reply(deps, body, respond, submit.plan_form(deps, _value(body)))

        deps.work.submit(
            "plan rollback button", open_form, tell=tell_on_error(respond, "Plan rollback")
        )
        ack()

    @app.action(Action.RUN_NOW)
    def run_now(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        user, value, where = body["user"]["id"], _value(body), _where(body)
        work = lambda: immediate.run_now(deps, value, user, where)  # noqa: E731
        _in_pool(deps, body, respond, "Roll back now", work)
        ack()

    @app.action(Action.ASSESS_AGAIN)
    def assess_again(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        reply = _replier(deps, body, respond)
        asker = Asker(body["user"]["id"], _where(body)["channel_id"], delivery_key(body), reply)
        if (refused := assessment.assess_again(deps, _value(body), asker)) is not None:
            respond_with(reply, refused)

    @app.action(Action.GUARD_ROLLBACK_NOW)
    def guard_rollback_now(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        user, value = body["user"]["id"], _value(body)
        work = lambda: firing.answer(deps, value, user, run=True)  # noqa: E731
        _in_pool(deps, body, respond, "Roll back now", work)
        ack()

    @app.action(Action.GUARD_KEEP)
    def guard_keep(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        respond_with(respond, firing.answer(deps, _value(body), body["user"]["id"], run=False))

    @app.action(Action.MANUAL_GATE_CONTINUE)
    def continue_gate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        where = _where(body)
        if (step_id := _rollback_id(body)) is None:  # a step's id, the same digits check
            tell(respond, "This gate no longer exists.")
            return
        reply = gates.continue_gate(
            deps, step_id, body["user"]["id"], where["channel_id"], where["message_ts"]
        )
        respond_with(respond, reply)
