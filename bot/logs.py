"""Logging set-up with redaction: tokens, secrets and phone numbers never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]+")
_PHONE = re.compile(r"\+(\d{4})\d{3,9}(\d{4})\b")


def mask_phone(number: str) -> str:
    """``+15550100001`` → ``+1555•••0001`` (keeps enough to recognise, not to dial)."""
    return _PHONE.sub(lambda m: f"+{m.group(1)}•••{m.group(2)}", number)


def redact(text: str) -> str:
    return mask_phone(_TOKEN.sub(lambda m: f"{m.group(1)}-•••", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
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
