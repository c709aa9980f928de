"""The Acknowledge button of a page notice; also hooks up the Twilio webhooks."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.app import Deps
from bot.notify.page_acks import acknowledge_from_slack
from handlers import twilio
from handlers.ids import Action

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    twilio.register_routes(deps)

    @app.action(Action.PAGE_ACKNOWLEDGE)
    def acknowledge_page(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        rollback_id, _, reason = str(body["actions"][0].get("value", "")).partition(":")
        if not rollback_id.isdigit() or not reason:
            text = "This button is not a page I know; nothing was acknowledged."
        else:
            text = acknowledge_from_slack(deps, int(rollback_id), reason, user)
        respond(text=text, response_type="ephemeral", replace_original=False)
