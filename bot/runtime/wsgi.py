"""Answers of the bot's own WSGI routes (health, metrics, webhooks): a body with its length."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import StartResponse


def reply(start: StartResponse, status: str, content_type: str, body: bytes) -> Iterable[bytes]:
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def json_reply(start: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    return reply(start, status, "application/json", json.dumps(body).encode())
