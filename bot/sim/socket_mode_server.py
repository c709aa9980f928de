"""The wire side of the Socket Mode simulator: ``/api/apps.connections.open`` over HTTP, and the
WebSocket session behind ``/link/`` (handshake, hello, frames in and out).

What the envelopes carry and who waits for which ack is `SocketModeSimulator`'s business; it is
reached through `SessionHost`, so this module does not import it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from bot.sim.websocket import (
    CLOSE,
    CONTINUATION,
    GOING_AWAY,
    PING,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    Connection,
    accept_key,
    read_frame,
)

log = logging.getLogger(__name__)


class SessionHost(Protocol):
    """What the server asks of the simulator: the API answer, tickets, and session events."""

    app_id: str

    def answer_connections_open(
        self, params: Mapping[str, str], authorization: str
    ) -> dict[str, Any]: ...

    def is_ticket(self, query: str) -> bool: ...

    def opened_session(self, connection: Connection) -> None: ...

    def closed_session(self, connection: Connection) -> None: ...

    def received(self, text: str) -> None: ...


class SocketModeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, simulator: SessionHost) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: SocketModeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # envelopes and acks are small frames; don't let Nagle hold them

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/link":
            self._websocket(url.query)
        else:
            self._api(url.path, url.query, b"")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._api(url.path, url.query, body)

    def _api(self, path: str, query: str, body: bytes) -> None:
        if not path.startswith("/api/"):
            self._reply(404, {"ok": False, "error": "not_found"})
            return
        params = dict(parse_qsl(query))
        if body:  # slack_sdk posts a form
            params.update(parse_qsl(body.decode("utf-8", "replace")))
        if path.removeprefix("/api/") != "apps.connections.open":
            self._reply(200, {"ok": False, "error": "unknown_method"})
            return
        answer = self.server.simulator.answer_connections_open(
            params, self.headers.get("Authorization", "")
        )
        self._reply(200, answer)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _websocket(self, query: str) -> None:
        simulator = self.server.simulator
        key = self.headers.get("Sec-WebSocket-Key", "")
        is_upgrade = (
            self.headers.get("Upgrade", "").lower() == "websocket"
            and self.headers.get("Sec-WebSocket-Version") == "13"
            and key
        )
        if not is_upgrade:
            self._reply(400, {"ok": False, "error": "expected_websocket_upgrade"})
            return
        if not simulator.is_ticket(query):
            self._reply(401, {"ok": False, "error": "invalid_ticket"})
            return
        accept = accept_key(key)
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True  # when the session ends, so does this TCP connection
        connection = Connection(self.connection, self.wfile)
        # hello goes out before the session is registered, so no envelope can overtake it
        connection.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "applink-sim", "approximate_connection_time": 18060},
                "connection_info": {"app_id": simulator.app_id},
            }
        )
        simulator.opened_session(connection)
        try:
            self._session(connection)
        finally:
            simulator.closed_session(connection)

    def _session(self, connection: Connection) -> None:
        text: list[bytes] = []
        while connection.is_open:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            is_final, opcode, is_masked, data = frame
            if not is_masked:  # RFC 6455 5.1: a server must close on an unmasked client frame
                connection.close(PROTOCOL_ERROR, "client frames must be masked")
                return
            if opcode == PING:
                connection.send(PONG, data)
            elif opcode == CLOSE:
                connection.close(GOING_AWAY if len(data) < 2 else int.from_bytes(data[:2]))
                return
            elif opcode in (TEXT, CONTINUATION):
                text.append(data)
                if is_final:
                    self.server.simulator.received(b"".join(text).decode("utf-8", "replace"))
                    text = []
            # pongs answer our pings; binary frames mean nothing in Socket Mode

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
