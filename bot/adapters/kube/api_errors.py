"""API and connection failures as KubeError in words, and the wait a 429 asks for."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from bot.adapters.kube.values import KubeError

MAX_RETRY_AFTER_SECONDS = 30.0


# metav1.StatusReason for answers that carry no Status body (proxies, injected faults)
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


# ── errors in words ───────────────────────────────────────────────────────────────────────────


def error_from_api(exc: ApiException, not_found: str | None = None) -> KubeError:
    """An ApiException as KubeError: the Status message when there is one, never the repr."""
    status: int | None = exc.status or None
    if status is None:  # the SDK's own failures (TLS set-up, undecodable answer) carry status 0
        return KubeError(None, "ClientError", _one_line(str(exc.reason or "request failed")))
    body = _status_body(exc.body)
    reason = str(body.get("reason") or _STATUS_REASONS.get(status) or _phrase(status))
    if status == 404 and not_found:
        return KubeError(404, reason, not_found)
    message = body.get("message") or _plain_text(exc.body)
    if not message:
        message = f"the Kubernetes API answered HTTP {status} {_phrase(status)}"
    return KubeError(status, reason, _one_line(str(message)))


def _status_body(body: str | None) -> dict[str, Any]:
    try:
        data = json.loads(body or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _plain_text(body: str | None) -> str:
    """A short non-JSON answer is worth quoting; HTML error pages are not."""
    text = (body or "").strip()
    if not text or text.startswith(("<", "{", "[")) or len(text) > 300:
        return ""
    return text


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unreachable(exc: urllib3.exceptions.HTTPError) -> KubeError:
    """A connection-level failure in words: the server's address only, never the URL."""
    pool = getattr(exc, "pool", None)
    host = f"{pool.host}:{pool.port}" if pool is not None else "the configured server"
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # most specific first: NewConnectionError is a ConnectTimeoutError in urllib3 2
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        why = "host name not resolved"
    elif isinstance(cause, urllib3.exceptions.NewConnectionError):
        why = "connection refused or host unreachable"
    elif isinstance(cause, urllib3.exceptions.TimeoutError):
        why = "timed out"
    elif isinstance(cause, urllib3.exceptions.SSLError):
        why = "TLS handshake failed"
    else:
        why = "connection lost"
    return KubeError(None, "Unreachable", f"Kubernetes API at {host} unreachable: {why}")


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except ValueError:
        return None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else first["msg"]
    return _one_line(str(exc).split("\n", 1)[0])
