"""The WSGI application: Slack events through Bolt, plus health and metrics (CONTRACT.md routes)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.app import BotApp
from bot.runtime.metrics import CONTENT_TYPE
from bot.runtime.request_trust import is_signed_by_slack, malformed
from bot.runtime.wsgi import json_reply, reply
from storage.errors import DatabaseNotMigrated, StorageError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)
UNAUTHORIZED = b'{"error": "invalid request"}'


class WebApp:
    """Routes by path; ``/slack/events`` goes to Bolt only once Slack's signature is verified.

    Bolt checks the signature too, but its check raises on a malformed timestamp and hands the
    unverified body to the error handler; here anything that is not a well-formed, fresh, signed
    request is answered 401 before Bolt sees it, so it can cause no outbound call at all.
    """

    def __init__(self, bot: BotApp, clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.slack = SlackRequestHandler(bot.bolt, path="/slack/events")
        secret = bot.deps.settings.slack_signing_secret
        assert secret is not None  # build_app refuses to build without it
        self._secret = secret.get_secret_value()
        self._clock = clock
        self._health_said = "ok"  # what /healthz last answered (logged when it changes)

    def __call__(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events":
            if method == "POST":
                body = self._body(environ)
                if body is None or not self._is_signed(environ, body):
                    return reply(start, "401 Unauthorized", "application/json", UNAUTHORIZED)
                if (why := malformed(body, str(environ.get("CONTENT_TYPE") or ""))) is not None:
                    log.warning("refused a signed Slack request: %s (400)", why)
                    answer = json.dumps({"error": "malformed request", "why": why}).encode()
                    return reply(start, "400 Bad Request", "application/json", answer)
            return self.slack(environ, start)
        if path == "/healthz" and method in ("GET", "HEAD"):
            return self._healthz(start)
        if path == "/metrics" and method in ("GET", "HEAD"):
            return reply(start, "200 OK", CONTENT_TYPE, self.bot.deps.metrics.exposition())
        for route in self.bot.deps.routes:  # features' routes: /twilio/*, /reviews/{token}
            if path.startswith(route.prefix) and method == route.method:
                return route.handler(environ, start)
        return reply(start, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    @staticmethod
    def _body(environ: WSGIEnvironment) -> bytes | None:
        """Read the body once, and put it back for Bolt to read; None when its length is
        malformed. Never raises."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            log.warning("refused a Slack request: malformed Content-Length")
            return None
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def _is_signed(self, environ: WSGIEnvironment, body: bytes) -> bool:
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if is_signed_by_slack(self._secret, body, timestamp, signature, self._clock()):
            return True
        log.warning("refused a request to /slack/events: not signed by Slack (401)")
        return False

    def _healthz(self, start: StartResponse) -> Iterable[bytes]:
        """200 when the database answers and has this release's schema; 503 saying what to do.
        The answer names no database (anyone who reaches the port reads it): which one and why
        go to the log, once each time the answer changes (a probe comes every few seconds)."""
        try:
            self.bot.deps.repo.check_schema()
        except DatabaseNotMigrated as exc:
            self._tell_health("database not migrated", str(exc))
            body = {"status": "database not migrated", "why": "run `rollback-bot migrate`"}
            return json_reply(start, "503 Service Unavailable", body)
        except StorageError as exc:
            self._tell_health("database unreachable", str(exc))
            return json_reply(start, "503 Service Unavailable", {"status": "database unreachable"})
        self._tell_health("ok", "")
        return json_reply(start, "200 OK", {"status": "ok"})

    def _tell_health(self, status: str, why: str) -> None:
        if status == self._health_said:
            return
        self._health_said = status
        if why:
            log.warning("/healthz answers 503 (%s): %s", status, why)
        else:
            log.info("/healthz answers 200 again")
