"""The HTTP side of the Twilio simulator: `TwilioSimulator` decides the answer, this sends it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DROP = 0  # the "status" of an answer that is never sent: the connection just closes
# method, path, lower-cased headers, body → (status, JSON body), or None for a 404
Serve = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, Any]] | None]


class TwilioServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts (20 phones at once) into retries

    def __init__(self, serve: Serve) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.serve = serve


class _Handler(BaseHTTPRequestHandler):
    server: TwilioServer
    disable_nagle_algorithm = True  # see bot/sim/slack_http.py: avoids 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in self.headers.items()}
        answer = self.server.serve(method, urlsplit(self.path).path, headers, body)
        if answer is None:
            self.send_error(404)
            return
        status, response = answer
        if status == DROP:
            self.close_connection = True
            return
        payload = json.dumps(response).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
