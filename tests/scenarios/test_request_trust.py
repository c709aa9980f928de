"""Only what Slack signed is acted on, and answers go only to Slack.

A request that fails signature verification — for any reason, including a timestamp that is not
an integer — is answered 401 and causes no outbound call: not to the ``response_url`` it carries
(an attacker's choice), not to the Slack API. A signed request whose ``response_url`` is not a
Slack hooks URL gets no POST there either; the bot logs a warning instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_bolt import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.adapters.slack.respond import is_response_url_trusted
from bot.runtime.request_trust import is_signed_by_slack
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import signed_headers
from tests.conftest import Harness, catalog_yaml, service_yaml

FORM = "application/x-www-form-urlencoded"


class Listener:
    """A loopback server standing for the attacker's ``response_url``: records every request."""

    def __init__(self) -> None:
        received: list[tuple[str, str, bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(("POST", self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def harness(make_harness: Any, prometheus: PrometheusSimulator) -> Harness:
    text = catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout")))
    h: Harness = make_harness(text, prometheus_url=prometheus.url)
    return h


def _slash_to(h: Harness, response_url: str, text: str = "assess checkout") -> str:
    h.requester.response_url = response_url
    return h.requester.slash_body(text, user_id="U0ONCALL1", channel_id="C0DEPLOYS")


# What can be sent as a header value; the unit test below adds what cannot.
MALFORMED_TIMESTAMPS = ["", "abc", "1700000000.5", "1e9", "-", "+1700000000", "0x10", "None"]


@pytest.mark.parametrize("timestamp", MALFORMED_TIMESTAMPS)
def test_a_malformed_timestamp_is_401_and_nothing_goes_out(
    harness: Harness, attacker: Listener, slack: SlackSimulator, timestamp: str
) -> None:
    body = _slash_to(harness, f"{attacker.url}/internal/admin?delete=all")
    calls_before = len(slack.calls)
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    resp = harness.requester.http.post(
        harness.requester.events_url, content=body.encode(), headers=headers
    )
    assert resp.status_code == 401
    harness.wait_idle()
    assert attacker.received == []
    assert len(slack.calls) == calls_before  # no chat.postMessage to a user either


@pytest.mark.parametrize("timestamp", MALFORMED_TIMESTAMPS)
def test_bolts_error_handler_never_trusts_an_unverified_body(
    harness: Harness, attacker: Listener, slack: SlackSimulator, timestamp: str
) -> None:
    """Behind the check at the door: the Bolt app itself, given a request whose verification
    raises, answers 401 and neither responds nor messages the user the body names."""
    body = _slash_to(harness, f"{attacker.url}/internal/admin?delete=all")
    calls_before = len(slack.calls)
    headers: dict[str, str | Sequence[str]] = {
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": "v0=" + "0" * 64,
    }
    resp = harness.bot.bolt.dispatch(BoltRequest(body=body, headers=headers))
    assert resp.status == 401
    harness.wait_idle()
    assert attacker.received == []
    assert len(slack.calls) == calls_before


def test_a_float_timestamp_signed_with_the_right_secret_is_still_refused(
    harness: Harness, attacker: Listener
) -> None:
    """Slack's timestamps are integers: a correctly computed HMAC over a float one is no excuse."""
    body = _slash_to(harness, f"{attacker.url}/x")
    ts = f"{int(time.time())}.5"
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(harness.secret).generate_signature(
            timestamp=ts, body=body
        )
        or "",
    }
    resp = harness.requester.http.post(
        harness.requester.events_url, content=body.encode(), headers=headers
    )
    assert resp.status_code == 401
    harness.wait_idle()
    assert attacker.received == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature headers at all
        {b"X-Slack-Request-Timestamp": b"1700000000"},  # stale, no signature
        {b"X-Slack-Signature": b"v0=abc"},
        {b"X-Slack-Signature": "v0=é".encode("latin-1"), b"X-Slack-Request-Timestamp": b"1"},
    ],
)
def test_missing_or_bad_signatures_are_401_and_nothing_goes_out(
    harness: Harness, attacker: Listener, headers: dict[bytes, bytes]
) -> None:
    body = _slash_to(harness, f"{attacker.url}/x")
    resp = harness.requester.http.post(
        harness.requester.events_url,
        content=body.encode(),
        headers={b"Content-Type": FORM.encode(), **headers},
    )
    assert resp.status_code == 401
    harness.wait_idle()
    assert attacker.received == []


def test_a_signed_request_does_not_post_to_a_foreign_response_url(
    harness: Harness,
    attacker: Listener,
    slack: SlackSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The assessment fails (its probe pool is gone), so the bot answers through respond().
    harness.bot.deps.reader.pool.shutdown(wait=True)
    caplog.set_level(logging.WARNING)
    harness.requester.response_url = f"{attacker.url}/hook"
    resp = harness.slash("assess checkout")
    assert resp.status_code == 200
    harness.wait_idle()
    assert attacker.received == []
    assert slack.calls_to("response_url") == []
    warned = [r for r in caplog.records if "response_url" in r.getMessage()]
    assert warned and all(r.levelno == logging.WARNING for r in warned)
    assert f"127.0.0.1:{attacker.url.rsplit(':', 1)[1]}" in warned[0].getMessage()


def test_the_same_request_with_the_simulated_slack_url_is_answered(
    harness: Harness, slack: SlackSimulator
) -> None:
    """The control: the configured SLACK_API_URL host is trusted (tests and the console)."""
    harness.bot.deps.reader.pool.shutdown(wait=True)
    harness.requester.response_url = slack.response_url("cmd")
    assert harness.slash("assess checkout").status_code == 200
    harness.wait_idle()
    assert len(slack.calls_to("response_url")) == 1


def test_an_error_in_a_signed_request_is_still_answered(
    harness: Harness, slack: SlackSimulator
) -> None:
    """The error handler still tells the person when the request was signed."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    harness.bot.bolt.use(lambda next: broken())  # a middleware that fails after verification
    harness.requester.response_url = slack.response_url("cmd")
    resp = harness.slash("help")
    assert resp.status_code == 200
    (answer,) = [str(c.params["text"]) for c in slack.calls_to("response_url")]
    assert "internal error (RuntimeError)" in answer


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://hooks.slack.com/commands/T0/1/x", True),
        ("https://hooks.slack.com:443/actions/T0/1/x", True),
        ("https://hooks.slack-gov.com/commands/T0/1/x", True),
        ("http://hooks.slack.com/commands/T0/1/x", False),  # not TLS
        ("https://hooks.slack.com:8443/x", False),
        ("https://hooks.slack.com.evil.example/x", False),
        ("https://evil.example/?hooks.slack.com", False),
        ("https://user@hooks.slack.com/x", False),
        ("https://slack.com/api/chat.postMessage", False),  # not a hooks URL
        ("http://127.0.0.1:9/response/x", False),
        ("https://[::1/x", False),  # unparsable
        ("", False),
        ("http://127.0.0.1:4000/response/cmd", True),  # the configured SLACK_API_URL's host
        ("http://127.0.0.1:4001/response/cmd", False),
    ],
)
def test_which_response_urls_are_trusted(url: str, trusted: bool) -> None:
    assert is_response_url_trusted(url, "http://127.0.0.1:4000/api/") is trusted


def test_with_the_default_slack_api_url_only_hooks_are_trusted() -> None:
    assert is_response_url_trusted("https://hooks.slack.com/x", "https://slack.com/api/")
    assert not is_response_url_trusted("https://slack.com/x", "https://slack.com/api/")


def test_signature_check_never_raises() -> None:
    secret, body, now = "s3cret", b"a=1", 1_700_000_000.0
    good = signed_headers(secret, body.decode(), FORM, int(now))
    ts, sig = good["X-Slack-Request-Timestamp"], good["X-Slack-Signature"]
    assert is_signed_by_slack(secret, body, ts, sig, now)
    assert not is_signed_by_slack(secret, body, ts, sig, now + 301)  # outside the 5-minute window
    assert not is_signed_by_slack(secret, b"a=2", ts, sig, now)
    for bad_ts in (None, *MALFORMED_TIMESTAMPS, " ", "１２３", "²", "9" * 400):
        assert not is_signed_by_slack(secret, body, bad_ts, sig, now)
    for bad_sig in (None, "", "v0=é", sig.upper(), sig[:-1]):
        assert not is_signed_by_slack(secret, body, ts, bad_sig, now)
