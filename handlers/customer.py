"""Customer updates' buttons (Publish, Edit) and the Edit form: ack, read, one call into
``bot.customer``. Publishing talks to the status page, so it runs in the pool after the ack."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.adapters.slack.posts import open_view, tell_privately
from bot.customer import edit, publish
from bot.deps import Deps
from bot.notify.reply import Reply, tell, tell_on_error
from handlers.answer import respond_with
from handlers.ids import Action, View


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value", ""))


def _selected(view: dict[str, Any], block_id: str) -> str:
    """A select's chosen value (the console types it as text instead)."""
    value = view.get("state", {}).get("values", {}).get(block_id, {}).get("value", {})
    return str((value.get("selected_option") or {}).get("value") or value.get("value") or "")


def _typed(view: dict[str, Any], block_id: str) -> str:
    value = view.get("state", {}).get("values", {}).get(block_id, {}).get("value", {})
    return str(value.get("value") or "")


def install(app: App, deps: Deps) -> None:
    @app.action(Action.CUSTOMER_PUBLISH)
    def publish_pressed(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        user, value = body["user"]["id"], _value(body)
        where = {
            "channel_id": body.get("channel", {}).get("id"),
            "message_ts": body.get("message", {}).get("ts"),
        }
        deps.work.submit(
            "Publish",
            lambda: respond_with(respond, publish.publish_press(deps, value, user, where)),
            tell=tell_on_error(respond, "Publish"),
        )
        ack()

    @app.action(Action.CUSTOMER_EDIT)
    def edit_pressed(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        form = edit.edit_form(deps, _value(body), body["user"]["id"])
        if isinstance(form, Reply):
            respond_with(respond, form)
        elif error := open_view(deps.slack, body["trigger_id"], form):
            tell(respond, f":x: Slack did not open the form (`{error}`); press Edit again.")

    @app.view(View.CUSTOMER_EDIT)
    def edit_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        metadata = str(view.get("private_metadata", ""))
        outcome = edit.submit_edit(
            deps, metadata, user, _typed(view, "message"), _selected(view, "status")
        )
        if isinstance(outcome, dict):
            ack(response_action="errors", errors=outcome)
            return
        ack()

        def show() -> None:  # Slack calls after the ack: the draft updated, the editor told
            text, where = edit.show_edit(deps, outcome, user)
            tell_privately(deps.slack, where, user, text)

        deps.work.submit("Edit", show)
