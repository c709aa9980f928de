"""The HTTP side of the Slack simulator: decoding request bodies and writing answers.

`SlackSimulator` decides what to answer; this module only speaks HTTP for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

# slack_sdk JSON-encodes these into form bodies; Slack accepts them either way.
_JSON_FIELDS = frozenset(
    {
        "attachments",
        "blocks",
        "changes",
        "channel_ids",
        "document_content",
        "files",
        "metadata",
        "user_ids",
        "users",
        "view",
    }
)


@dataclass(frozen=True)
class Answer:
    status: int
    response: dict[str, Any]
    headers: dict[str, str]
    # Non-API URLs answer with plain text, like Slack's upload and response_url endpoints.
    text: str | None = None


# path, query, lower-cased headers, body → the answer, or None for a 404
Serve = Callable[[str, str, dict[str, str], bytes], Answer | None]


def parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Merge the query string with a form or JSON body, decoding JSON-valued form fields."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if body and "json" in content_type:
        decoded = json.loads(body)
        if not isinstance(decoded, dict):
            raise ValueError("a JSON body must be an object")
        params.update(decoded)
    elif body and "form-urlencoded" in content_type:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key, value in params.items():
        if key in _JSON_FIELDS and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            # Undecodable values stay as sent; the method rejects them like Slack would.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


class SlackServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 drops connections when many clients connect at once
    # (fan-out), and a dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 128

    def __init__(self, serve: Serve) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.serve = serve


class _Handler(BaseHTTPRequestHandler):
    server: SlackServer
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive answer by ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in self.headers.items()}
        answer = self.server.serve(url.path, url.query, headers, body)
        if answer is None:
            self.send_error(404)
            return
        if answer.text is not None:
            payload, content_type = answer.text.encode(), "text/plain; charset=utf-8"
        else:
            payload = json.dumps(answer.response).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
