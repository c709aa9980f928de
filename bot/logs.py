"""Logging set-up with redaction: tokens, secrets and phone numbers never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")
_PHONE = re.compile(r"\+(\d{7,15})\b")


def _mask_digits(m: re.Match[str]) -> str:
    digits = m.group(1)
    keep = 4 if len(digits) >= 11 else 2  # short numbers keep less, so the rest stays hidden
    return f"+{digits[:keep]}•••{digits[-keep:]}"


def mask_phone(text: str) -> str:
    """``+15550100001`` → ``+1555•••0001`` (enough to recognise the contact, not to dial)."""
    return _PHONE.sub(_mask_digits, text)


def redact(text: str) -> str:
    return mask_phone(_TOKEN.sub(lambda m: f"{m.group(1)}-•••", text))


class RedactingFilter(logging.Filter):
    """Rewrites the message and the traceback text of a record before any handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed log call: let the handler report it as logging does
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
    # waitress warns on every queued request under load; /metrics and latency tell that better
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
