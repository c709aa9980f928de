"""The Twilio simulator against the official ``twilio`` client (through our adapter and raw)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.adapters.twilio import SmsError, TwilioSMS, WebhookValidator, sms_segments, twiml_reply
from bot.sim.twilio_api import TwilioSimulator

FROM = "+15550009999"


@pytest.fixture
def sim() -> Iterator[TwilioSimulator]:
    with TwilioSimulator() as simulator:
        yield simulator


class _Receiver:
    """A webhook endpoint that records what it got (the bot's place in these tests)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                signature = self.headers.get("X-Twilio-Signature", "")
                receiver.received.append((self.path, dict(parse_qsl(body)), signature))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_the_official_client_creates_and_fetches_a_message(sim: TwilioSimulator) -> None:
    client = Client(sim.account_sid, sim.auth_token, environment={})
    client.api.base_url = sim.url
    message = client.messages.create(to="+15550100001", from_=FROM, body="hello")
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.to, message.num_segments) == ("queued", "+15550100001", "1")
    fetched = client.messages(message.sid).fetch()
    assert fetched.body == "hello"
    [call] = [c for c in sim.calls if c.method == "POST"]
    assert call.params == {"To": "+15550100001", "From": FROM, "Body": "hello"}


def test_wrong_credentials_get_twilios_401(sim: TwilioSimulator) -> None:
    client = Client(sim.account_sid, "wrong-token", environment={})
    client.api.base_url = sim.url
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+15550100001", from_=FROM, body="x")
    assert (caught.value.status, caught.value.code) == (401, 20003)


def test_bad_numbers_are_refused_with_their_error_code(sim: TwilioSimulator) -> None:
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    for code in (21211, 21614, 21610, 21608, 21408, 21612):
        sim.set_bad_number("+15550100002", code)
        with pytest.raises(SmsError) as caught:
            sms.send_sms("+15550100002", "x")
        assert caught.value.code == code and caught.value.is_bad_number
        assert not caught.value.is_retryable
    assert "+15550100002" not in caught.value.summary
    assert not sim.messages
    sms.close()


def test_injected_5xx_and_no_connection_are_retryable(sim: TwilioSimulator) -> None:
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    sim.inject(503, times=2)
    for _ in range(2):
        with pytest.raises(SmsError) as caught:
            sms.send_sms("+15550100001", "x")
        assert caught.value.status == 503 and caught.value.is_retryable
    assert sms.send_sms("+15550100001", "x").startswith("SM")
    down = TwilioSMS(sim.account_sid, sim.auth_token, FROM, "http://127.0.0.1:9")
    with pytest.raises(SmsError) as caught:
        down.send_sms("+15550100001", "x")
    assert caught.value.status is None and caught.value.is_retryable
    assert not caught.value.is_maybe_sent, "refused connection: the request never left"
    sms.close()
    down.close()


def test_configuration_errors_are_neither_retryable_nor_a_bad_number(
    sim: TwilioSimulator,
) -> None:
    wrong = TwilioSMS(sim.account_sid, "wrong-token", FROM, sim.url)
    with pytest.raises(SmsError) as caught:
        wrong.send_sms("+15550100001", "x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert caught.value.is_misconfigured and not caught.value.is_retryable
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    sim.inject(400, code=21606, message=f"The From phone number {FROM} is not valid")
    with pytest.raises(SmsError) as caught:
        sms.send_sms("+15550100001", "x")
    assert caught.value.code == 21606 and caught.value.is_misconfigured
    assert not caught.value.is_bad_number and FROM not in caught.value.summary
    sim.set_bad_number("+15550100002", 21211)
    with pytest.raises(SmsError) as caught:
        sms.send_sms("+15550100002", "x")
    assert not caught.value.is_misconfigured
    wrong.close()
    sms.close()


def test_a_lost_answer_may_have_sent_the_message(sim: TwilioSimulator) -> None:
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    sim.drop_answers(1)
    with pytest.raises(SmsError) as caught:
        sms.send_sms("+15550100001", "x")
    assert caught.value.is_maybe_sent and not caught.value.is_retryable
    assert not caught.value.is_misconfigured
    [accepted] = sim.messages  # Twilio took it although the sender never heard back
    assert accepted.to == "+15550100001"
    assert sms.send_sms("+15550100001", "y").startswith("SM")
    sms.close()


def test_status_callbacks_are_signed_like_twilios(
    sim: TwilioSimulator, receiver: _Receiver
) -> None:
    sim.set_undeliverable("+15550100002", "failed", 30005)
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    ok = sms.send_sms("+15550100001", "a", f"{receiver.url}/twilio/status?page=1")
    bad = sms.send_sms("+15550100002", "b", f"{receiver.url}/twilio/status?page=2")
    sim.wait_until(lambda s: len(s.callbacks) == 4)
    validator = WebhookValidator(sim.auth_token, receiver.url)
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for path, params, signature in receiver.received:
        route, _, query = path.partition("?")
        url = validator.url_for(route, query, seen_url="")
        assert validator.is_valid(url, params, signature), path
        assert not validator.is_valid(url, {**params, "MessageStatus": "x"}, signature)
        seen.setdefault(params["MessageSid"], []).append(
            (params["MessageStatus"], params.get("ErrorCode"))
        )
    assert seen == {
        ok: [("sent", None), ("delivered", None)],
        bad: [("sent", None), ("failed", "30005")],
    }
    assert {m.sid: m.status for m in sim.messages} == {ok: "delivered", bad: "failed"}
    sms.close()


def test_inbound_sms_is_signed_and_a_delay_applies_to_every_call(
    sim: TwilioSimulator, receiver: _Receiver
) -> None:
    sim.send_inbound(f"{receiver.url}/twilio/sms", "+15550100001", "ACK 4821")
    [(path, params, signature)] = receiver.received
    assert path == "/twilio/sms" and params["Body"] == "ACK 4821"
    assert RequestValidator(sim.auth_token).validate(
        f"{receiver.url}/twilio/sms", params, signature
    )
    sim.delay_seconds = 0.1
    sms = TwilioSMS(sim.account_sid, sim.auth_token, FROM, sim.url)
    started = time.monotonic()
    sms.send_sms("+15550100001", "x")
    assert time.monotonic() - started >= 0.1
    sms.close()


def test_segments_and_twiml() -> None:
    assert sms_segments("x" * 160) == 1 and sms_segments("x" * 161) == 2
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # extension: 2 units
    assert sms_segments("é" * 160) == 1 and sms_segments("✓" * 71) == 2  # UCS-2 beyond GSM
    assert twiml_reply("a < b").endswith("<Response><Message>a &lt; b</Message></Response>")
    assert twiml_reply(None).endswith("<Response />")
