"""Slack's Socket Mode on loopback: ``apps.connections.open`` and the WebSocket it hands out.

One stdlib HTTP server on 127.0.0.1:<random port> plays both halves of Socket Mode closely enough
for slack_sdk's built-in ``SocketModeClient`` (what ``slack_bolt``'s ``SocketModeHandler`` uses):

- ``POST /api/apps.connections.open`` with the app-level token answers
  ``{"ok": true, "url": "ws://127.0.0.1:<port>/link/?ticket=…&app_id=…"}``; point the handler's
  ``web_client`` at ``api_url``. (The Web API methods the bot itself calls stay with
  ``SlackSimulator``; ``new_url()`` gives a URL to hand out from there instead.)
- ``GET /link/?ticket=…`` upgrades to a WebSocket (RFC 6455: masked frames from the client,
  unmasked from the server, ping/pong, close), greets with ``{"type": "hello", …}`` like Slack,
  then delivers envelopes ``{"envelope_id", "type", "accepts_response_payload", "payload"}``.
  The client acks each with ``{"envelope_id", "payload"?}``; ``send_slash`` and
  ``send_interactive`` return that ack, waiting for it with a deadline.

The server pings every connection every ``ping_interval_seconds``, as Slack does (less often). The
SDK reads with a blocking ``recv`` (3 s timeout) under the lock its ``close()`` needs, so frequent
pings are what keeps ``handler.close()`` from stalling for seconds.

This module routes envelopes and keeps the record; the HTTP and WebSocket wire work is in
``socket_mode_server``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from bot.sim.loopback import LoopbackSimulator
from bot.sim.socket_mode_server import SocketModeServer
from bot.sim.websocket import GOING_AWAY, PING, Connection

log = logging.getLogger(__name__)

APP_TOKEN = "xapp-1-A0ROLLBACK-1-simulated"
# Interactive payloads whose ack may carry an answer (response_action, options).
_ANSWERABLE = frozenset({"view_submission", "block_suggestion"})


class SocketModeSimulator(LoopbackSimulator):
    """Socket Mode on 127.0.0.1:<random port>, recording envelopes sent and acks received."""

    def __init__(
        self,
        app_token: str = APP_TOKEN,
        *,
        app_id: str = "A0ROLLBACK",
        team_id: str = "T0TEST",
        ping_interval_seconds: float = 0.05,
    ) -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.team_id = team_id
        self.ping_interval_seconds = ping_interval_seconds
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tickets: set[str] = set()
        self._connections: list[Connection] = []  # open ones, oldest first
        self._opened = 0
        self._envelopes: list[dict[str, Any]] = []
        self._acks: list[dict[str, Any]] = []
        self._other_messages: list[str] = []
        self._urls_issued = 0
        self._server: SocketModeServer | None = None
        self._thread: threading.Thread | None = None
        self._pinger: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SocketModeSimulator:
        if self._server is not None:
            raise RuntimeError("SocketModeSimulator already started")
        self._stopping.clear()
        self._server = SocketModeServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="socket-mode-simulator",
            daemon=True,
        )
        self._thread.start()
        self._pinger = threading.Thread(target=self._ping_all, name="socket-mode-ping", daemon=True)
        self._pinger.start()
        return self

    def stop(self) -> None:
        """Close every WebSocket (1001 going away), stop serving, wait for the sessions to end."""
        self._stopping.set()
        if self._pinger is not None:
            self._pinger.join()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close(GOING_AWAY, "server stopping")
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        deadline = time.monotonic() + 5
        with self._changed:
            while self._connections and self._changed.wait(max(0.0, deadline - time.monotonic())):
                pass
        self._server = self._thread = self._pinger = None

    @property
    def api_url(self) -> str:
        """The ``base_url`` of the WebClient that calls ``apps.connections.open``."""
        return f"{self.url}/api/"

    def new_url(self) -> str:
        """A fresh WebSocket URL, as ``apps.connections.open`` returns it."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
            self._urls_issued += 1
        port = self.url.rsplit(":", 1)[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- what happened ---------------------------------------------------------------------------

    @property
    def urls_issued(self) -> int:
        """WebSocket URLs handed out: ``apps.connections.open`` answers and ``new_url()`` calls."""
        with self._lock:
            return self._urls_issued

    @property
    def connections_opened(self) -> int:
        """WebSocket handshakes completed so far."""
        with self._lock:
            return self._opened

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._envelopes)

    @property
    def acks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._acks)

    @property
    def other_messages(self) -> list[str]:
        """Text frames from the client that were not acks (Slack would ignore them)."""
        with self._lock:
            return list(self._other_messages)

    def wait_connected(self, timeout: float = 5.0, *, opened: int = 1) -> None:
        """Wait until `opened` handshakes have completed and the newest session is open."""
        self._wait(
            lambda: self._opened >= opened and self._newest_open() is not None,
            timeout,
            lambda: (
                f"no open Socket Mode session (handshakes: {self._opened}, wanted {opened};"
                f" URLs issued: {self._urls_issued})"
            ),
        )

    def wait_open_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until exactly `count` sessions are open (a replaced one is closed by the client)."""
        self._wait(
            lambda: len(self._connections) == count,
            timeout,
            lambda: f"{len(self._connections)} open Socket Mode sessions, wanted {count}",
        )

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's ack of an envelope; Bolt sends none when no listener matched or the
        listener raised before calling ``ack()``, so a missing ack is a failed request."""
        self._wait(
            lambda: any(ack.get("envelope_id") == envelope_id for ack in self._acks),
            timeout,
            lambda: f"no ack of envelope {envelope_id}; acks so far: {self._acks}",
        )
        with self._lock:
            return next(ack for ack in self._acks if ack.get("envelope_id") == envelope_id)

    def _wait(
        self, is_done: Callable[[], bool], timeout: float, failure: Callable[[], str]
    ) -> None:
        """Wait (on the lock) until `is_done()`; AssertionError with `failure()` after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not is_done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{failure()} after {timeout:.1f} s")
                self._changed.wait(remaining)

    # -- sending ---------------------------------------------------------------------------------

    def slash_command(
        self,
        text: str,
        *,
        user_id: str = "U0ONCALL1",
        channel_id: str = "C0DEPLOYS",
        response_url: str = "https://hooks.slack.com/commands/T0TEST/1/x",
        command: str = "/rollback",
    ) -> dict[str, str]:
        """The fields of a slash command as Socket Mode carries them: strings, in a JSON object."""
        n = uuid.uuid4().int % 10**8
        return {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "team_domain": "example",
            "channel_id": channel_id,
            "channel_name": "deploys",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{n}.{int(time.time())}.{secrets.token_hex(8)}",  # unique, as Slack's
        }

    def send_slash(self, fields: Mapping[str, str], timeout: float = 5.0) -> dict[str, Any]:
        """Deliver a slash command; returns the client's ack (its ``payload`` is the answer)."""
        return self.send_envelope("slash_commands", dict(fields), True, timeout=timeout)

    def send_interactive(self, payload: Mapping[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Deliver an interactivity payload (block_actions, view_submission, …); returns the ack."""
        answerable = payload.get("type") in _ANSWERABLE
        return self.send_envelope("interactive", dict(payload), answerable, timeout=timeout)

    def send_envelope(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        accepts_response_payload: bool,
        *,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Send one envelope on the newest session and wait for its ack."""
        deadline = time.monotonic() + timeout
        self.wait_connected(timeout)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
            "payload": payload,
        }
        with self._lock:
            connection = self._newest_open()
            self._envelopes.append(envelope)
        if connection is None or not connection.send_json(envelope):
            raise AssertionError("the Socket Mode session closed before the envelope went out")
        return self.wait_ack(envelope_id, max(0.0, deadline - time.monotonic()))

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Tell the newest session to reconnect, like Slack does every few hours."""
        with self._lock:
            connection = self._newest_open()
        if connection is None:
            raise AssertionError("no open Socket Mode session to disconnect")
        connection.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sim"}}
        )

    # -- bookkeeping -----------------------------------------------------------------------------

    def _newest_open(self) -> Connection | None:
        """Caller holds the lock."""
        return next((c for c in reversed(self._connections) if c.is_open), None)

    def _ping_all(self) -> None:
        while not self._stopping.wait(self.ping_interval_seconds):
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                connection.send(PING, b"sim")

    # -- called by the server (socket_mode_server) on its request threads ------------------------

    def answer_connections_open(
        self, params: Mapping[str, str], authorization: str
    ) -> dict[str, Any]:
        """The answer to ``apps.connections.open``: a fresh WebSocket URL for the app token."""
        token = authorization.removeprefix("Bearer ").strip() or params.get("token", "")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token.startswith(("xoxb-", "xoxp-")):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": self.new_url()}

    def is_ticket(self, query: str) -> bool:
        """Whether a WebSocket URL's query carries a ticket this simulator handed out."""
        with self._lock:
            return dict(parse_qsl(query)).get("ticket", "") in self._tickets

    def opened_session(self, connection: Connection) -> None:
        """A handshake completed: the session may now carry envelopes (unless stopping)."""
        with self._changed:
            # stop() sets the flag before it lists the sessions to close, under this lock
            if self._stopping.is_set():
                connection.close(GOING_AWAY, "server stopping")
                return
            self._opened += 1
            self._connections.append(connection)
            self._changed.notify_all()

    def closed_session(self, connection: Connection) -> None:
        """A session ended, by either side."""
        with self._changed:
            connection.is_open = False
            if connection in self._connections:
                self._connections.remove(connection)
            self._changed.notify_all()

    def received(self, text: str) -> None:
        """A text message from the client: an ack, or something Slack would ignore."""
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        with self._changed:
            if isinstance(message, dict) and "envelope_id" in message:
                self._acks.append(message)
            else:
                self._other_messages.append(text)
            self._changed.notify_all()
