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
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx

from bot.adapters.twilio import sms_segments
from bot.sim.loopback import LoopbackSimulator
from bot.sim.twilio_callbacks import Callback, inbound_params, post_signed, status_params
from bot.sim.twilio_http import DROP, TwilioServer
from bot.sim.twilio_messages import ERROR_TEXT, MESSAGES_PATH, SimMessage, TwilioCall, failure

log = logging.getLogger(__name__)


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
        self._server: TwilioServer | None = None
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(timeout=10)
        self._sids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TwilioSimulator:
        if self._server is not None:
            raise RuntimeError("TwilioSimulator already started")
        self._server = TwilioServer(self._serve)
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
        sid = message_sid or self._new_sid()
        params = inbound_params(self.account_sid, from_, body, to, sid)
        return post_signed(self._http, self.auth_token, bot_url, params, signature)

    def send_status(
        self, sid: str, status: str, error_code: int | None = None, *, url: str | None = None
    ) -> httpx.Response:
        """POST one status callback for message ``sid`` now (to its StatusCallback or ``url``)."""
        with self._lock:
            message = self._messages[sid]
        target = url or message.status_callback
        if target is None:
            raise ValueError(f"message {sid} has no StatusCallback")
        params = status_params(self.account_sid, message, status, error_code)
        response = post_signed(self._http, self.auth_token, target, params)
        with self._changed:
            self._callbacks.append(Callback(target, params, response.status_code))
            self._changed.notify_all()
        return response

    def _send_callbacks(self) -> None:
        while (item := self._outbox.get()) is not None:
            sid, params = item
            with self._lock:
                message = self._messages[sid]
                message.status = params["MessageStatus"]
                url = message.status_callback
            assert url is not None
            try:
                code = post_signed(self._http, self.auth_token, url, params).status_code
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
        base = MESSAGES_PATH.format(sid=self.account_sid)
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
            return failure(401, 20003, "Authenticate")
        if injected := self._take_injected():
            status, code, text = injected
            default = 20429 if status == 429 else 20500
            return failure(status, code or default, text or "An internal server error has occurred")
        if is_fetch:
            with self._lock:
                found = self._messages.get(path.rsplit("/", 1)[1].removesuffix(".json"))
            if found is None:
                return failure(404, 20404, f"The requested resource {path} was not found")
            return 200, found.to_api(self.account_sid)
        if not is_create:
            return failure(404, 20404, f"The requested resource {path} was not found")
        to, from_, text = params.get("To", ""), params.get("From", ""), params.get("Body", "")
        if not to:
            return failure(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return failure(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not text:
            return failure(400, 21602, "Message body is required.")
        with self._lock:
            code = self._bad_numbers.get(to)
            undeliverable = self._undeliverable.get(to)
        if code is not None:
            return failure(400, code, ERROR_TEXT.get(code, "Invalid 'To' number").format(to=to))
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
            self._outbox.put((message.sid, status_params(self.account_sid, message, "sent", None)))
            self._outbox.put((message.sid, status_params(self.account_sid, message, final, error)))
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
