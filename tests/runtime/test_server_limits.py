"""The HTTP server refuses request bodies no Slack or Twilio request comes near (1 MiB)."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bot.runtime.server import MAX_REQUEST_BODY_BYTES
from bot.sim.slack_client import signed_headers
from tests.conftest import Harness, catalog_yaml, service_yaml

FORM = "application/x-www-form-urlencoded"


def padded_slash_body(h: Harness, size: int) -> str:
    """A signed-able ``/rollback help`` form body of exactly ``size`` bytes (padding field)."""
    body = h.requester.slash_body("help", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    body += "&" + urlencode({"padding": ""})
    return body + "x" * (size - len(body))


def post_events(h: Harness, body: str) -> httpx.Response:
    headers = signed_headers(h.secret, body, FORM)
    return h.requester.http.post(h.requester.events_url, content=body.encode(), headers=headers)


def test_an_oversized_body_is_refused_before_it_is_read(make_harness: Any) -> None:
    """Only the headers are sent: the 413 comes without waiting for (or buffering) the body."""
    h: Harness = make_harness(catalog_yaml(service_yaml("checkout", None)), prometheus_url=None)
    url = urlsplit(h.requester.events_url)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {FORM}\r\n"
        f"Content-Length: {2 * MAX_REQUEST_BODY_BYTES}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(head.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large"), answer[:200]


def test_a_signed_body_over_the_limit_is_refused_and_a_normal_one_still_works(
    make_harness: Any,
) -> None:
    h: Harness = make_harness(catalog_yaml(service_yaml("checkout", None)), prometheus_url=None)

    too_big = post_events(h, padded_slash_body(h, MAX_REQUEST_BODY_BYTES + 1))
    assert too_big.status_code == 413

    near_limit = post_events(h, padded_slash_body(h, MAX_REQUEST_BODY_BYTES - 1024))
    assert near_limit.status_code == 200
    assert "/rollback help" in near_limit.json()["text"]

    normal = h.slash("help")
    assert normal.status_code == 200
    assert "/rollback help" in normal.json()["text"]
    assert h.slack.calls_to("chat.postMessage") == []  # the refused request did nothing
