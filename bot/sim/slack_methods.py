"""The Web API methods the Slack simulator answers, gathered from the modules that hold them."""

from __future__ import annotations

from bot.sim import slack_chat, slack_conversations, slack_files, slack_users, slack_views
from bot.sim.slack_blocks import invalid
from bot.sim.slack_store import Handler, Params, SlackError, SlackWorkspace

_METHODS: dict[str, Handler] = {
    **slack_users.METHODS,
    **slack_chat.METHODS,
    **slack_conversations.METHODS,
    **slack_views.METHODS,
    **slack_files.METHODS,
}


def is_supported(method: str) -> bool:
    return method in _METHODS


def call(workspace: SlackWorkspace, method: str, params: Params) -> Params:
    """Run one Web API method; the answer is what Slack would send with HTTP 200."""
    params = {key: value for key, value in params.items() if value is not None}
    try:
        return {"ok": True, **_METHODS[method](workspace, params)}
    except SlackError as error:
        if error.details:
            return invalid(error.code, error.details)
        return {"ok": False, "error": error.code}
