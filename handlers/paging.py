"""The Acknowledge button of a page notice (for the rollback's owners only: see
``page_acks.may_acknowledge``); also hooks up the Twilio webhooks and the acknowledgement's due
work."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.deps import Deps
from bot.paging import acks as page_acks
from bot.paging.acks import acknowledge_from_slack
from handlers import twilio
from handlers.ids import Action

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    twilio.register_routes(deps)
    page_acks.install(deps)

    @app.action(Action.PAGE_ACKNOWLEDGE)
    def acknowledge_page(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        rollback_id, _, reason = str(body["actions"][0].get("value", "")).partition(":")
        if not rollback_id.isdigit() or not reason:
            text = "This button is not a page I know; nothing was acknowledged."
        else:
            container = body.get("container") or {}
            text = acknowledge_from_slack(
                deps,
                int(rollback_id),
                reason,
                user,
                channel_id=container.get("channel_id"),
                message_ts=container.get("message_ts"),
            )
        respond(text=text, response_type="ephemeral", replace_original=False)
