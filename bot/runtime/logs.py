"""Logging set-up with redaction: tokens, secrets and phone numbers never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")
_PHONE = re.compile(r"\+(\d{7,15})\b")
# A Twilio Account SID: "AC" and 32 hex digits (it is in every Twilio API URL).
_ACCOUNT_SID = re.compile(r"\bAC([0-9a-fA-F]{28})([0-9a-fA-F]{4})\b")
# What Bolt's RequestVerification logs for a request it refuses; the rest of the line is the body.
_UNVERIFIED = "Invalid request signature detected"
# Libraries that log routine work at INFO: APScheduler two lines per job run (every 2 s), the
# Twilio client eight lines per API call (with the Account SID in the URL). Shown at DEBUG only.
CHATTY_BELOW_DEBUG = ("apscheduler", "twilio")


def _mask_digits(m: re.Match[str]) -> str:
    digits = m.group(1)
    keep = 4 if len(digits) >= 11 else 2  # short numbers keep less, so the rest stays hidden
    return f"+{digits[:keep]}•••{digits[-keep:]}"


def mask_phone(text: str) -> str:
    """``+15550100001`` → ``+1555•••0001`` (enough to recognise the contact, not to dial)."""
    return _PHONE.sub(_mask_digits, text)


def mask_account_sid(text: str) -> str:
    """``AC`` + 32 hex digits → ``AC•••`` + the last four (tells two accounts apart, no more)."""
    return _ACCOUNT_SID.sub(lambda m: f"AC•••{m.group(2)}", text)


def redact(text: str) -> str:
    return mask_account_sid(mask_phone(_TOKEN.sub(lambda m: f"{m.group(1)}-•••", text)))


class RedactingFilter(logging.Filter):
    """Rewrites the message and the traceback text of a record before any handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed log call: let the handler report it as logging does
        if record.name.startswith("slack_bolt") and message.startswith(_UNVERIFIED):
            # Bolt appends the whole body (up to the size limit; a stale genuine request's live
            # response_url among it): a refused request is named, its body is never logged.
            message = f"{_UNVERIFIED}: request refused (401), its body is not logged"
            record.msg, record.args = message, None
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatter.format uses exc_text when set, so the traceback is printed redacted
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # one INFO line per outgoing HTTP request or migration step is noise, not signal
    for chatty in ("httpx", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # routine library work is a line per job run or API call: shown only when debugging
    for chatty in CHATTY_BELOW_DEBUG:
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
        )
    # waitress warns on every queued request under load; /metrics and latency tell that better
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
