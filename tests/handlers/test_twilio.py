"""Twilio webhooks: refused (403) unless Twilio signed them, a body over MAX_BODY refused
unread, and a repeated SMS (the same MessageSid) answered once."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from bot.sim.twilio_callbacks import post_signed
from handlers.twilio import MAX_BODY
from tests import twilio_fixtures
from tests.twilio_fixtures import PRIMARY, PagingHarness

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)
EMPTY_TWIML = "<Response />"


@pytest.fixture
def h(make_paging: Any) -> PagingHarness:
    harness: PagingHarness = make_paging()
    return harness


def sms_params(body: str, sid: str = "SM" + "a" * 32) -> dict[str, str]:
    return {"MessageSid": sid, "From": PRIMARY, "To": "+15550009999", "Body": body}


@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/status"])
def test_an_unsigned_webhook_is_forbidden(h: PagingHarness, path: str) -> None:
    resp = h.http.post(f"{h.url}{path}", data=sms_params("ACK 1234"))
    assert resp.status_code == 403
    assert resp.text.startswith("forbidden: the X-Twilio-Signature does not match")
    assert h.bot.deps.repo.list_audit_events() == []


@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/status"])
def test_a_forged_signature_is_forbidden(h: PagingHarness, path: str) -> None:
    resp = post_signed(h.http, h.twilio.auth_token, f"{h.url}{path}", sms_params("x"), "Zm9yZ2Vk")
    assert resp.status_code == 403


def test_a_webhook_signed_with_another_token_is_forbidden(h: PagingHarness) -> None:
    resp = post_signed(h.http, "not-the-token", f"{h.url}/twilio/sms", sms_params("ACK 1"))
    assert resp.status_code == 403


def test_without_an_auth_token_every_webhook_is_forbidden(make_paging: Any) -> None:
    off: PagingHarness = make_paging(is_sms_enabled=False)
    resp = off.twilio.send_inbound(f"{off.url}/twilio/sms", PRIMARY, "ACK 1")
    assert resp.status_code == 403


def test_an_oversize_body_is_forbidden_even_when_signed(h: PagingHarness) -> None:
    params = sms_params("A" * MAX_BODY)
    resp = post_signed(h.http, h.twilio.auth_token, f"{h.url}/twilio/sms", params)
    assert resp.status_code == 403


def test_a_body_just_under_the_limit_is_read(h: PagingHarness) -> None:
    room = MAX_BODY - len(urlencode(sms_params("")))  # the body is exactly MAX_BODY bytes
    resp = post_signed(h.http, h.twilio.auth_token, f"{h.url}/twilio/sms", sms_params("A" * room))
    assert resp.status_code == 200 and resp.headers["content-type"] == "text/xml"


def test_a_repeated_sms_is_answered_once(h: PagingHarness) -> None:
    sid = "SM" + "d" * 32
    first = h.reply(PRIMARY, "hello", message_sid=sid)
    assert first.status_code == 200 and first.headers["content-type"] == "text/xml"
    assert "<Message>" in first.text  # the reply to a stranger's text says what to send
    again = h.reply(PRIMARY, "hello", message_sid=sid)
    assert again.status_code == 200 and again.text.endswith(EMPTY_TWIML)
    other = h.reply(PRIMARY, "hello")  # another message: answered again
    assert "<Message>" in other.text


def test_a_signed_status_callback_is_taken(h: PagingHarness) -> None:
    params = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered"}
    url = f"{h.url}/twilio/status?page=7"
    resp = post_signed(h.http, h.twilio.auth_token, url, params)
    assert (resp.status_code, resp.content) == (204, b"")
