"""The WSGI application: Slack events through Bolt, plus health and metrics (CONTRACT.md routes)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.app import BotApp
from bot.metrics import CONTENT_TYPE
from storage.db import is_database_reachable

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment


class WebApp:
    """Routes by path; ``/slack/events`` goes to Bolt, which verifies the signature (401 if bad)."""

    def __init__(self, bot: BotApp) -> None:
        self.bot = bot
        self.slack = SlackRequestHandler(bot.bolt, path="/slack/events")

    def __call__(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events":
            return self.slack(environ, start)
        if path == "/healthz" and method in ("GET", "HEAD"):
            return self._healthz(start)
        if path == "/metrics" and method in ("GET", "HEAD"):
            return _reply(start, "200 OK", CONTENT_TYPE, self.bot.deps.metrics.exposition())
        for route in self.bot.deps.routes:  # features' routes: /twilio/*, /reviews/{id}
            if path.startswith(route.prefix) and method == route.method:
                return route.handler(environ, start)
        return _reply(start, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    def _healthz(self, start: StartResponse) -> Iterable[bytes]:
        if is_database_reachable(self.bot.deps.repo.engine):
            return _json(start, "200 OK", {"status": "ok"})
        return _json(start, "503 Service Unavailable", {"status": "database unreachable"})


def _json(start: StartResponse, status: str, body: dict[str, str]) -> Iterable[bytes]:
    return _reply(start, status, "application/json", json.dumps(body).encode())


def _reply(start: StartResponse, status: str, content_type: str, body: bytes) -> Iterable[bytes]:
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
