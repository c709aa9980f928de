"""The HTTP side of the Kubernetes simulator: a threading server on 127.0.0.1 and its handler.

An `Answer` goes out as JSON (or text/plain for a str body); an iterator body is a watch,
streamed one JSON event per chunk; warnings go out as `Warning: 299 - "…"` headers.
"""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "KubeHttpServer"]

log = logging.getLogger(__name__)

JSON = Any


@dataclass(frozen=True)
class Answer:
    status: int
    body: JSON  # a str goes out as text/plain, anything else as JSON
    headers: dict[str, str]
    warnings: tuple[str, ...] = ()  # each goes out as a `Warning: 299 - "…"` header


class KubeHttpServer(ThreadingHTTPServer):
    """127.0.0.1:<random port>; `serve(method, path, content type, body, user agent)` answers
    each request."""

    daemon_threads = True

    def __init__(self, serve: Callable[[str, str, str, bytes, str], Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.serve = serve


class _Handler(BaseHTTPRequestHandler):
    server: KubeHttpServer
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive answer by ~40 ms.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "KubeSimulator/1.0"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        user_agent = self.headers.get("User-Agent") or ""
        answer = self.server.serve(self.command, self.path, content_type, body, user_agent)
        if isinstance(answer.body, Iterator):
            self._stream(answer.body)
            return
        if isinstance(answer.body, str):
            payload, media_type = answer.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, media_type = json.dumps(answer.body).encode(), "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", media_type)
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in answer.headers.items():
            self.send_header(key, value)
        for warning in answer.warnings:
            self.send_header("Warning", '299 - "{}"'.format(warning.replace('"', '\\"')))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, events: Iterator[JSON | None]) -> None:
        """A watch: one JSON event per chunk until the events end or the client leaves."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                if event is None:
                    if self._client_left():
                        self.close_connection = True
                        return
                    continue
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            # a watch that ended (its timeoutSeconds) leaves the connection open for the next
            # request, as the API server does: closing it without saying so made the client's
            # next request on it fail ("connection lost") whenever it was reused too soon
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away mid-write

    def _client_left(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            left: bool = self.connection.recv(1, socket.MSG_PEEK) == b""
            return left
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
