"""The HTTP adapter: the health probe is the runbook's `curl -f --max-time 5` (2xx or it failed;
no redirects), and no answer at all is the bot's HttpError, never an httpx exception."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.adapters.http import HttpClient, HttpError
from tests.conftest import closed_port_url


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
    with HttpClient() as client:
        result = client.check_health(f"{base_url}/moved", 2)
    assert not result.is_healthy
    assert result.note == "HTTP 302 redirect (not followed)"


@pytest.mark.parametrize(("path", "is_healthy"), [("/ok", True), ("/down", False)])
def test_2xx_is_healthy_anything_else_is_not(base_url: str, path: str, is_healthy: bool) -> None:
    with HttpClient() as client:
        assert client.check_health(base_url + path, 2).is_healthy is is_healthy


def test_a_refused_connection_is_an_http_error_naming_no_url() -> None:
    url = closed_port_url() + "/rollback?token=s3cr3t"
    with HttpClient() as client:
        with pytest.raises(HttpError) as caught:
            client.request("POST", url, timeout=2, json={"to": 1})
        assert client.check_health(url, 2).note == "unreachable (ConnectError)"
    assert not caught.value.is_timeout
    assert str(caught.value) == "ConnectError"  # the kind only: the URL may carry credentials


def test_an_answer_carries_status_and_body(base_url: str) -> None:
    with HttpClient() as client:
        answer = client.get(f"{base_url}/down", timeout=2)
    assert (answer.status, answer.is_success, answer.is_redirect) == (503, False, False)
