"""The health probe is the runbook's `curl -f --max-time 5`: 2xx or it failed; no redirects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bot.adapters.http_probe import check_health


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/ok")
        else:
            self.send_response(200 if self.path == "/ok" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_redirect_is_a_failed_check_not_followed(base_url: str) -> None:
    with httpx.Client() as client:
        result = check_health(client, f"{base_url}/moved", 2)
    assert not result.is_healthy
    assert result.note == "HTTP 302 redirect (not followed)"


@pytest.mark.parametrize(("path", "is_healthy"), [("/ok", True), ("/down", False)])
def test_2xx_is_healthy_anything_else_is_not(base_url: str, path: str, is_healthy: bool) -> None:
    with httpx.Client() as client:
        assert check_health(client, base_url + path, 2).is_healthy is is_healthy
