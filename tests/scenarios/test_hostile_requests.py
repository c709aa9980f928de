"""Odd and hostile requests get a 4xx (or a quiet 200), never a 500 with a traceback."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.review.publish import review_path
from tests.conftest import Harness, catalog_yaml, service_yaml


@pytest.fixture
def h(make_harness: Any) -> Harness:
    harness: Harness = make_harness(
        catalog_yaml(service_yaml("checkout", None)),
        prometheus_url=None,
        public_url="https://bot.example.com",
    )
    return harness


def signed(h: Harness, payload: Any) -> httpx.Response:
    return h.requester.post_form(urlencode({"payload": json.dumps(payload)}))


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "user": {"id": "U0ONCALL1"}, "actions": []},
        {"type": "block_actions", "actions": [{"action_id": "approval_approve"}]},  # no user
        {"type": "view_submission", "view": {"callback_id": "plan_rollback_modal"}},  # no user
        {"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "reject"}},
        ["not", "an", "object"],
        "a string",
    ],
)
def test_signed_payloads_of_the_wrong_shape_are_not_a_server_error(
    h: Harness, payload: Any
) -> None:
    resp = signed(h, payload)
    assert resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text


def test_a_payload_that_is_not_json_is_refused(h: Harness) -> None:
    resp = h.requester.post_form(urlencode({"payload": "{not json"}))
    assert 400 <= resp.status_code < 500


def test_an_unsigned_array_body_is_401(h: Harness) -> None:
    resp = httpx.post(
        f"{h.server.url}/slack/events",
        content=b"[1,2]",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 401


@pytest.mark.parametrize("path", ["/reviews/%B2", "/reviews/9223372036854775808", "/reviews/²"])
def test_odd_review_paths_are_404(h: Harness, path: str) -> None:
    assert httpx.get(f"{h.server.url}{path}").status_code == 404


def test_twilio_status_with_a_huge_number_is_not_a_server_error(h: Harness) -> None:
    resp = httpx.post(f"{h.server.url}/twilio/status?page={'9' * 30}", data={"MessageSid": "SM1"})
    assert 400 <= resp.status_code < 500


def test_a_utf16_body_is_not_a_server_error(h: Harness) -> None:
    body = urlencode({"command": "/rollback", "text": "help"}).encode("utf-16")
    resp = httpx.post(
        f"{h.server.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-16"},
    )
    assert 400 <= resp.status_code < 500


def test_the_review_page_forbids_scripts_and_sniffing(h: Harness) -> None:
    h.slash("run checkout --immediate x")  # no kube: refused, but a path exists for any id
    resp = httpx.get(f"{h.server.url}{review_path(h.bot.deps, 1)}")
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    assert "default-src 'none'" in resp.headers.get("Content-Security-Policy", "")
