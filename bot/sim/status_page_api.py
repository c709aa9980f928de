"""A status page on loopback: ``POST /hooks/status`` takes a customer update the way the README
documents the webhook, strictly (bearer token, JSON content type, every field, a known status,
the Idempotency-Key header equal to ``update_id``), records every request, and can be told to
fail (an HTTP status, or no answer until released). The tests and ``console --demo`` run it."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from bot.sim.loopback import LoopbackSimulator

PATH = "/hooks/status"
FIELDS = {"incident_id", "title", "status", "message", "service", "update_id", "sent_at"}
STATUSES = {"investigating", "identified", "monitoring", "resolved"}


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: dict[str, Any] | None
    answered: int


class StatusPageSimulator(LoopbackSimulator):
    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[Received] = []
        self._failures: deque[int] = deque()  # statuses to answer next (0: hang, no answer)
        self._lock = threading.Lock()
        self.release = threading.Event()  # a hanging request is let go when set
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def hook_url(self) -> str:
        """What a catalog's ``status_page.url`` names."""
        return f"{LoopbackSimulator.url.__get__(self)}{PATH}"

    def fail(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` valid requests with ``status`` (0: never answer)."""
        with self._lock:
            self._failures.extend([status] * times)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The bodies taken (2xx), one per idempotency key, as a status page shows them."""
        seen: dict[str, dict[str, Any]] = {}
        with self._lock:
            for r in self.received:
                if 200 <= r.answered < 300 and r.body is not None:
                    seen.setdefault(r.headers.get("idempotency-key", ""), r.body)
        return list(seen.values())

    def _answer(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any] | None]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, None
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 415, None
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, None
        if not isinstance(body, dict) or set(body) != FIELDS or body["status"] not in STATUSES:
            return 422, body if isinstance(body, dict) else None
        if not headers.get("idempotency-key") or headers["idempotency-key"] != body["update_id"]:
            return 400, body
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        return (failure if failure is not None else 201), body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet output
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = (404, None) if self.path != PATH else page._answer(headers, raw)
                with page._lock:
                    page.received.append(Received(headers, body, status))
                if status == 0:
                    page.release.wait(10)
                    return
                answer = json.dumps({"ok": 200 <= status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="status-page-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
