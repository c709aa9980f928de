"""The requests the Twilio simulator makes to the bot: status callbacks and incoming SMS,
form-encoded and signed with ``X-Twilio-Signature`` as Twilio signs them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from bot.adapters.twilio import sign_webhook
from bot.sim.twilio_messages import SimMessage


@dataclass(frozen=True)
class Callback:
    """A status callback the simulator delivered, and how the bot answered it."""

    url: str
    params: dict[str, str]
    status_code: int


def post_signed(
    http: httpx.Client,
    auth_token: str,
    url: str,
    params: Mapping[str, str],
    signature: str | None = None,
) -> httpx.Response:
    """POST ``params`` as a form, signed for ``url`` (or with ``signature``, to forge one)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature or sign_webhook(auth_token, url, params),
        "User-Agent": "TwilioProxy/1.1",
    }
    return http.post(url, content=urlencode(params).encode(), headers=headers)


def inbound_params(
    account_sid: str, from_: str, body: str, to: str, message_sid: str
) -> dict[str, str]:
    """The form Twilio posts to a number's SMS webhook when someone texts it."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": from_,
        "MessageSid": message_sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "To": to,
    }


def status_params(
    account_sid: str, message: SimMessage, status: str, error_code: int | None
) -> dict[str, str]:
    """The form of one status callback for ``message``."""
    params = {
        "AccountSid": account_sid,
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
