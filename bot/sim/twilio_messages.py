"""What the Twilio simulator keeps: accepted messages, recorded API calls, and Twilio's error
bodies, in the JSON shapes of the Messages API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

MESSAGES_PATH = "/2010-04-01/Accounts/{sid}/Messages"
ERROR_TEXT = {
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
        uri = f"{MESSAGES_PATH.format(sid=account_sid)}/{self.sid}.json"
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


def failure(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    """Twilio's error answer: HTTP status and its JSON body."""
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
