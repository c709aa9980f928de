"""A local Twilio Messages API that the official ``twilio`` client can talk to.

Point the client at it with ``client.api.base_url = sim.url`` (``TWILIO_API_URL``). It answers
``POST /2010-04-01/Accounts/{sid}/Messages.json`` (basic auth, form body, Twilio's JSON shapes for
messages and errors) and ``GET …/Messages/{sid}.json``. Every request is recorded. Numbers can be
made invalid (an error code at create) or undeliverable (accepted, then a failed status
callback); error answers (5xx, or any status with a Twilio error code such as 21606), a lost
answer (the message is accepted but the connection drops before the reply) and a delay can be
injected. Accepted messages with a ``StatusCallback``
get Twilio's callbacks (``sent``, then ``delivered``/``undelivered``/``failed``), form-encoded and
signed with ``X-Twilio-Signature`` like Twilio signs them. ``send_inbound`` plays a person
replying by SMS to the bot's ``/twilio/sms`` webhook.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from bot.adapters.twilio import sign_webhook, sms_segments
from bot.sim.loopback import LoopbackSimulator

log = logging.getLogger(__name__)

_MESSAGES = "/2010-04-01/Accounts/{sid}/Messages"
DROP = 0  # the "status" of an answer that is never sent: the connection just closes
_ERROR_TEXT = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by {to}",
    21608: "The number {to} is unverified. Trial accounts cannot send messages to unverified"
    " numbers",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' number",
    21614: "'To' number {to} is not a valid mobile number",
}


@dataclass(frozen=True)
class TwilioCall:
    """One API request the simulator answered."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    response: dict[str, Any]


@dataclass
class SimMessage:
    """A message Twilio accepted, with its latest status."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    status: str = "queued"
    error_code: int | None = None
    segments: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_api(self, account_sid: str) -> dict[str, Any]:
        stamp = format_datetime(self.created_at, usegmt=True)
        uri = f"{_MESSAGES.format(sid=account_sid)}/{self.sid}.json"
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(self.segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


@dataclass(frozen=True)
class Callback:
    """A status callback the simulator delivered, and how the bot answered it."""

    url: str
    params: dict[str, str]
    status_code: int


class TwilioSimulator(LoopbackSimulator):
    """Twilio's Messages API on 127.0.0.1:<random port>."""

    def __init__(
        self,
        account_sid: str = "AC" + "5" * 32,
        auth_token: str = "twilio-sim-auth-token",
        *,
        is_sending_callbacks: bool = True,
    ) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.is_sending_callbacks = is_sending_callbacks
        self.delay_seconds = 0.0  # added to every API call (fan-out benchmarks use 0.1)
        self._bad_numbers: dict[str, int] = {}
        self._undeliverable: dict[str, tuple[str, int]] = {}
        self._injected: list[tuple[int, int, int | None, str | None]] = []  # status, times, …
        self._answers_to_drop = 0
        self._messages: dict[str, SimMessage] = {}
        self._calls: list[TwilioCall] = []
        self._callbacks: list[Callback] = []
        self._subscribers: list[Callable[[SimMessage], None]] = []
        # reentrant: wait_until's condition reads the accessors while holding the lock
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._outbox: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(timeout=10)
        self._sids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TwilioSimulator:
        if self._server is not None:
            raise RuntimeError("TwilioSimulator already started")
        self._server = _Server(self)
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="twilio-simulator",
            daemon=True,
        )
        sender = threading.Thread(target=self._send_callbacks, name="twilio-callbacks", daemon=True)
        self._threads = [serve, sender]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._outbox.put(None)
            self._server.shutdown()
            self._server.server_close()
            for thread in self._threads:
                thread.join(timeout=5)
        self._http.close()
        self._server, self._threads = None, []

    # -- set-up and failure injection --------------------------------------------------------------

    def set_bad_number(self, phone: str, code: int = 21211) -> None:
        """Refuse messages to ``phone`` at create with Twilio error ``code`` (HTTP 400)."""
        with self._lock:
            self._bad_numbers[phone] = code

    def set_undeliverable(self, phone: str, status: str = "undelivered", code: int = 30003) -> None:
        """Accept messages to ``phone``, then report ``status`` with ``ErrorCode`` ``code``."""
        with self._lock:
            self._undeliverable[phone] = (status, code)

    def inject(
        self, status: int = 500, times: int = 1, *, code: int | None = None, message: str = ""
    ) -> None:
        """Answer the next ``times`` API calls with HTTP ``status`` and Twilio's error body
        (``code``, by default 20429 for a 429 and 20500 otherwise)."""
        with self._lock:
            self._injected.append((status, times, code, message or None))

    def drop_answers(self, times: int = 1) -> None:
        """Accept the next ``times`` messages, then close the connection without answering."""
        with self._lock:
            self._answers_to_drop += times

    def subscribe(self, callback: Callable[[SimMessage], None]) -> None:
        """Call ``callback`` with every accepted message (the console shows them as SMS)."""
        with self._lock:
            self._subscribers.append(callback)

    # -- what happened -----------------------------------------------------------------------------

    @property
    def calls(self) -> list[TwilioCall]:
        with self._lock:
            return list(self._calls)

    @property
    def messages(self) -> list[SimMessage]:
        """Accepted messages, oldest first."""
        with self._lock:
            return list(self._messages.values())

    @property
    def callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks)

    def wait_until(
        self, condition: Callable[[TwilioSimulator], bool], timeout: float = 5.0
    ) -> None:
        """Wait for ``condition(sim)`` to hold (checked on every recorded change)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"Twilio simulator: condition not met in {timeout}s")
                self._changed.wait(remaining)

    # -- talking to the bot ------------------------------------------------------------------------

    def send_inbound(
        self,
        bot_url: str,
        from_: str,
        body: str,
        *,
        to: str = "+15550009999",
        message_sid: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST an incoming SMS to ``bot_url`` (e.g. ``…/twilio/sms``), signed like Twilio."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": from_,
            "MessageSid": message_sid or self._new_sid(),
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "To": to,
        }
        return self._post_signed(bot_url, params, signature)

    def send_status(
        self, sid: str, status: str, error_code: int | None = None, *, url: str | None = None
    ) -> httpx.Response:
        """POST one status callback for message ``sid`` now (to its StatusCallback or ``url``)."""
        with self._lock:
            message = self._messages[sid]
        target = url or message.status_callback
        if target is None:
            raise ValueError(f"message {sid} has no StatusCallback")
        params = self._status_params(message, status, error_code)
        response = self._post_signed(target, params)
        with self._changed:
            self._callbacks.append(Callback(target, params, response.status_code))
            self._changed.notify_all()
        return response

    def _post_signed(
        self, url: str, params: Mapping[str, str], signature: str | None = None
    ) -> httpx.Response:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature or sign_webhook(self.auth_token, url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        return self._http.post(url, content=urlencode(params).encode(), headers=headers)

    def _status_params(
        self, message: SimMessage, status: str, error_code: int | None
    ) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    def _send_callbacks(self) -> None:
        while (item := self._outbox.get()) is not None:
            sid, params = item
            with self._lock:
                message = self._messages[sid]
                message.status = params["MessageStatus"]
                url = message.status_callback
            assert url is not None
            try:
                code = self._post_signed(url, params).status_code
            except httpx.HTTPError as exc:
                log.warning("status callback to %s failed: %s", url, exc)
                code = 0
            with self._changed:
                self._callbacks.append(Callback(url, params, code))
                self._changed.notify_all()

    # -- the API -----------------------------------------------------------------------------------

    def _new_sid(self) -> str:
        return f"SM{next(self._sids):08x}{secrets.token_hex(12)}"

    def _serve(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]] | None:
        base = _MESSAGES.format(sid=self.account_sid)
        is_create = method == "POST" and path == f"{base}.json"
        is_fetch = method == "GET" and path.startswith(f"{base}/") and path.endswith(".json")
        if not (is_create or is_fetch) and "/Messages" not in path:
            return None
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)  # simulated network latency, not a test waiting
        status, answer = self._answer(is_create, is_fetch, path, headers, params)
        with self._changed:
            self._calls.append(TwilioCall(method, path, params, status, answer))
            self._changed.notify_all()
        return status, answer

    def _answer(
        self,
        is_create: bool,
        is_fetch: bool,
        path: str,
        headers: Mapping[str, str],
        params: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        if not self._is_authorized(headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate")
        if injected := self._take_injected():
            status, code, text = injected
            default = 20429 if status == 429 else 20500
            return _error(status, code or default, text or "An internal server error has occurred")
        if is_fetch:
            with self._lock:
                found = self._messages.get(path.rsplit("/", 1)[1].removesuffix(".json"))
            if found is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            return 200, found.to_api(self.account_sid)
        if not is_create:
            return _error(404, 20404, f"The requested resource {path} was not found")
        to, from_, text = params.get("To", ""), params.get("From", ""), params.get("Body", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not text:
            return _error(400, 21602, "Message body is required.")
        with self._lock:
            code = self._bad_numbers.get(to)
            undeliverable = self._undeliverable.get(to)
        if code is not None:
            return _error(400, code, _ERROR_TEXT.get(code, "Invalid 'To' number").format(to=to))
        message = SimMessage(
            self._new_sid(),
            to,
            from_,
            text,
            params.get("StatusCallback"),
            segments=sms_segments(text),
        )
        with self._lock:
            self._messages[message.sid] = message
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(message)
            except Exception:
                log.exception("TwilioSimulator subscriber failed")
        if message.status_callback and self.is_sending_callbacks:
            final, error = undeliverable or ("delivered", None)
            self._outbox.put((message.sid, self._status_params(message, "sent", None)))
            self._outbox.put((message.sid, self._status_params(message, final, error)))
        with self._lock:
            if self._answers_to_drop > 0:
                self._answers_to_drop -= 1
                return DROP, {}
        return 201, message.to_api(self.account_sid)

    def _is_authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    def _take_injected(self) -> tuple[int, int | None, str | None] | None:
        with self._lock:
            if not self._injected:
                return None
            status, remaining, code, text = self._injected[0]
            if remaining <= 1:
                self._injected.pop(0)
            else:
                self._injected[0] = (status, remaining - 1, code, text)
            return status, code, text


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts (20 phones at once) into retries

    def __init__(self, simulator: TwilioSimulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    disable_nagle_algorithm = True  # see bot/sim/slack_api.py: avoids 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in self.headers.items()}
        answer = self.server.simulator._serve(method, urlsplit(self.path).path, headers, body)
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
