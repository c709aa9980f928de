"""Giving a workflow's ``Reply`` to Slack: through ``ack`` (slash commands answer in the ack) or
through ``respond`` (buttons, and everything said after the ack)."""

from __future__ import annotations

from slack_bolt import Ack

from bot.notify.reply import Reply, Respond


def ack_with(ack: Ack, reply: Reply) -> None:
    ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
    if reply.then is not None:
        reply.then()


def respond_with(respond: Respond, reply: Reply) -> None:
    assert reply.then is None  # a Reply with follow-up work is given through ack_with
    if reply.replace_original:
        respond(text=reply.text, blocks=reply.blocks, replace_original=True)
    else:
        respond(
            text=reply.text,
            blocks=reply.blocks,
            response_type="ephemeral",
            replace_original=False,
        )
