"""``POST /alertmanager``: Alertmanager's webhook (version 4), authenticated by
``Authorization: Bearer $ALERTMANAGER_TOKEN`` (Alertmanager's ``http_config.authorization``).

- token unset → 404 with a body saying the webhook is not configured: the route is off, and a
  client error, so Alertmanager does not retry a configuration mistake forever;
- no or wrong token → 401, nothing read or stored; a body over ``MAX_BODY`` → 413;
- not JSON, not version "4" or not shaped like the webhook → 400 with a short reason;
- the database unreachable → 503, so Alertmanager retries later;
- else 200 with ``{"accepted": n, "duplicate": n, "unknown_service": [...]}``.

The log names alerts and fingerprints only: never the token, never label values beyond the
service label (alerts may carry anything, phone numbers included).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bot.deps import Deps, Route
from bot.guard.alerts import Alert, receive
from bot.runtime.wsgi import json_reply, reply
from storage.errors import DatabaseNotMigrated, StorageError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

# Alertmanager sends a whole group in one request; the HTTP server refuses more than 1 MiB
# anyway (bot.runtime.server), this says so here too. A receiver's max_alerts keeps it smaller.
MAX_BODY = 1024 * 1024
NOT_CONFIGURED = b"not found: the Alertmanager webhook is not configured (set ALERTMANAGER_TOKEN)\n"


class BadPayload(ValueError):
    """The body is not an Alertmanager webhook (version 4); the message says why, briefly."""


class AlertmanagerWebhook:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        token = deps.settings.alertmanager_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def __call__(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        if self._token is None:
            return reply(start, "404 Not Found", "text/plain; charset=utf-8", NOT_CONFIGURED)
        if not self._is_authorized(environ):
            log.warning("refused an Alertmanager webhook: missing or wrong bearer token (401)")
            return json_reply(start, "401 Unauthorized", {"error": "missing or wrong bearer token"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return json_reply(
                start, "413 Content Too Large", {"error": f"body over {MAX_BODY} bytes"}
            )
        try:
            alerts = parse(environ["wsgi.input"].read(length))
        except BadPayload as exc:
            log.warning("refused an Alertmanager webhook: %s (400)", exc)
            return json_reply(start, "400 Bad Request", {"error": "bad request", "why": str(exc)})
        try:
            received = receive(self.deps, alerts)
        except DatabaseNotMigrated as exc:
            log.exception("Alertmanager webhook not handled: %s", exc)
            return json_reply(start, "503 Service Unavailable", {"error": str(exc)})
        except StorageError:
            log.exception("Alertmanager webhook not handled: the database is unreachable")
            return json_reply(start, "503 Service Unavailable", {"error": "database unreachable"})
        log.info("Alertmanager webhook: %s", received.as_json())
        return json_reply(start, "200 OK", received.as_json())

    def _is_authorized(self, environ: WSGIEnvironment) -> bool:
        assert self._token is not None
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
        # compare_digest: the time taken says nothing about how much of the token matched
        is_match = hmac.compare_digest(given.strip().encode(), self._token)
        return scheme.lower() == "bearer" and is_match


def parse(body: bytes) -> list[Alert]:
    """The alerts of a webhook body; :class:`BadPayload` says what is wrong."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadPayload(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(payload, dict):
        raise BadPayload("not a JSON object")
    version = payload.get("version")
    if version != "4":
        raise BadPayload(f'version {version!r}: only the webhook version "4" is understood')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload('"alerts" is not a list')
    return [_alert(n, item) for n, item in enumerate(alerts)]


def _alert(n: int, item: Any) -> Alert:
    if not isinstance(item, dict):
        raise BadPayload(f"alerts[{n}] is not an object")
    labels = _strings(n, "labels", item.get("labels"))
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise BadPayload(f'alerts[{n}].status is {status!r}, not "firing" or "resolved"')
    starts_at, ends_at = item.get("startsAt"), item.get("endsAt", "")
    if not isinstance(starts_at, str) or not starts_at or not isinstance(ends_at, str):
        raise BadPayload(f"alerts[{n}]: startsAt/endsAt are not times")
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        # Alertmanager always sends one; other senders get the hash of the labels, as stable
        text = json.dumps(sorted(labels.items()))
        fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Alert(
        status=status,
        labels=labels,
        fingerprint=fingerprint,
        starts_at=starts_at,
        ends_at=ends_at,
        annotations=_strings(n, "annotations", item.get("annotations") or {}),
    )


def _strings(n: int, name: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadPayload(f"alerts[{n}].{name} is not an object of strings")
    return {str(k): v for k, v in value.items()}


def install(deps: Deps) -> None:
    deps.routes.append(Route("POST", "/alertmanager", AlertmanagerWebhook(deps)))
