"""Socket Mode: the Bolt app served over Slack's WebSocket instead of HTTP requests."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError


class SocketModeRefused(Exception):
    """Slack would not open a Socket Mode connection (a wrong app token, Slack unreachable)."""


class SocketModeConnection:
    """An open Socket Mode connection (its threads serve the Bolt app until ``close()``)."""

    def __init__(self, handler: SocketModeHandler) -> None:
        self._handler = handler

    def close(self) -> None:
        self._handler.close()  # type: ignore[no-untyped-call]  # slack_bolt: unannotated


def connect_socket_mode(bolt: App, app_token: str) -> SocketModeConnection:
    """Open the connection (``apps.connections.open``); the handler's threads then serve.
    Returns the handler, to ``close()`` at shutdown."""
    handler = SocketModeHandler(bolt, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt: unannotated
    except SlackApiError as exc:
        raise SocketModeRefused(str(exc.response.get("error"))) from None
    except OSError as exc:  # Slack unreachable (URLError)
        raise SocketModeRefused(str(exc)) from None
    return SocketModeConnection(handler)
