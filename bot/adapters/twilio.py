"""Twilio: sending SMS, validating webhooks, answering with TwiML. The only importer of ``twilio``.

The official client is pointed at ``TWILIO_API_URL`` by replacing ``client.api.base_url`` (the
simulator in tests and the demo, a proxy in production). Errors become :class:`SmsError`, which
says whether the contact is unreachable (move on to the next one), Twilio is unavailable (retry
later), the request can never work (configuration: say so loudly) or the outcome is unknown
(the request went out but no answer came back: Twilio may have the message, never resend).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from urllib3.exceptions import ConnectTimeoutError

from bot.runtime.logs import mask_phone
from bot.settings import Settings

log = logging.getLogger(__name__)

# Invalid To (21211), not SMS-capable (21614), unsubscribed/STOP (21610), unverified number on a
# trial account (21608), region not enabled (21408), unreachable To/From pair (21612).
BAD_NUMBER_CODES = frozenset({21211, 21614, 21610, 21608, 21408, 21612})
TOO_MANY_REQUESTS_CODE = 20429
SEND_TIMEOUT_SECONDS = 10.0
# Fan-out sends a ladder level's messages concurrently; one keep-alive connection per sender.
POOL_SIZE = 32


class SmsError(Exception):
    """Twilio did not accept a message. ``code`` is Twilio's error code when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        is_maybe_sent: bool = False,
    ):
        super().__init__(message)
        self.code, self.status, self.is_maybe_sent = code, status, is_maybe_sent

    @property
    def is_bad_number(self) -> bool:
        """The number cannot receive this SMS: page the next contact instead."""
        return self.code in BAD_NUMBER_CODES

    @property
    def is_retryable(self) -> bool:
        """Twilio is down or busy (5xx, 429, no connection): the same request may work later.

        False when the request may have been taken (``is_maybe_sent``): sending it again could
        text the person twice.
        """
        if self.is_maybe_sent:
            return False
        return (
            self.status is None or self.status >= 500 or self.status == 429
        ) or self.code == TOO_MANY_REQUESTS_CODE

    @property
    def is_misconfigured(self) -> bool:
        """Twilio refused the request itself (bad credentials 20003, bad From 21606, …): no
        message to anyone will go out until the configuration is fixed."""
        return not (self.is_retryable or self.is_bad_number or self.is_maybe_sent)

    @property
    def summary(self) -> str:
        """``Twilio 21211: <message>`` with phone numbers masked, for Slack and logs."""
        label = f"Twilio {self.code}" if self.code else "Twilio"
        return f"{label}: {mask_phone(str(self))}"


class TwilioSMS:
    """Sends SMS through the official client; thread-safe (one pooled HTTP session)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_url: str = "https://api.twilio.com",
        *,
        timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.from_number = from_number
        self._http = TwilioHttpClient(timeout=timeout)
        session = self._http.session
        assert session is not None  # pool_connections=True (the default) creates it
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # environment={}: Settings is the only reader of os.environ (no TWILIO_EDGE surprises)
        self._client = Client(account_sid, auth_token, http_client=self._http, environment={})
        self._client.api.base_url = api_url.rstrip("/")

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> str:
        """Hand one SMS to Twilio and return its SID; raise :class:`SmsError` if refused."""
        extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
        try:
            message = self._client.messages.create(
                to=to, from_=self.from_number, body=body, **extra
            )
        except TwilioRestException as exc:
            code = exc.code if isinstance(exc.code, int) and exc.code >= 10000 else None
            text = str(exc.msg).removeprefix("Unable to create record: ")
            raise SmsError(text, code=code, status=exc.status) from None
        except requests.RequestException as exc:
            name = type(exc).__name__
            if _is_maybe_sent(exc):
                raise SmsError(f"no answer from Twilio ({name})", is_maybe_sent=True) from None
            raise SmsError(f"cannot reach Twilio ({name})") from None
        log.info("SMS %s handed to Twilio for %s", message.sid, mask_phone(to))
        return str(message.sid)

    def close(self) -> None:
        if self._http.session is not None:
            self._http.session.close()


def _is_maybe_sent(exc: requests.RequestException) -> bool:
    """Whether the request may have reached Twilio: only a failure to connect proves it did not
    (a read timeout or a dropped connection can come after Twilio created the message)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        # NewConnectionError (refused, DNS) is a ConnectTimeoutError in urllib3 2
        return not isinstance(reason, ConnectTimeoutError)
    return isinstance(exc, requests.Timeout | requests.exceptions.ChunkedEncodingError)


def sms_sender(settings: Settings) -> TwilioSMS | None:
    """The sender configured by TWILIO_*, or None when SMS is disabled."""
    if not settings.is_sms_enabled:
        return None
    assert settings.twilio_account_sid and settings.twilio_auth_token
    assert settings.twilio_from_number
    return TwilioSMS(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_from_number,
        settings.twilio_api_url,
    )


class WebhookValidator:
    """Checks ``X-Twilio-Signature`` of a webhook against the URL Twilio requested.

    Behind a proxy the URL this process sees is not the one Twilio signed, so the URL is rebuilt
    from PUBLIC_URL (the address Twilio was given) plus the request's path and query string.
    """

    def __init__(self, auth_token: str, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token)
        self.public_url = public_url.rstrip("/") if public_url else None

    def url_for(self, path: str, query: str, seen_url: str) -> str:
        if self.public_url is None:
            return seen_url
        return self.public_url + path + (f"?{query}" if query else "")

    def is_valid(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        return bool(signature) and bool(self._validator.validate(url, dict(params), signature))


def sign_webhook(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send (for simulators)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def twiml_reply(text: str | None) -> str:
    """A TwiML answer to an inbound SMS: one reply message, or none."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response.to_xml(xml_declaration=True))


# GSM 03.38: the basic set costs one unit, the extension set two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` costs: 160/153 GSM-7 units, else 70/67 UCS-2 units."""
    if is_gsm7(text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)
