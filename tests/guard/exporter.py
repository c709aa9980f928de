"""A live scrape target the test controls: ``/metrics`` in the Prometheus text format, values set
by the test (``exporter.set('guard_error_rate', 0.2, service='checkout')``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar


class Exporter:
    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version: ClassVar[str] = "HTTP/1.1"

            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>`` for a scrape config."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def set(self, name: str, value: float | None, **labels: str) -> None:
        """A gauge value; None removes the series (the signal disappears)."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines = []
        for (name, labels), value in items:
            shown = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{shown}}} {value}")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Exporter:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def scrape_config(target: str, interval_seconds: int = 1) -> str:
    """A prometheus.yml that scrapes ``target`` every ``interval_seconds``."""
    return (
        "global:\n"
        f"  scrape_interval: {interval_seconds}s\n"
        f"  evaluation_interval: {interval_seconds}s\n"
        "scrape_configs:\n"
        "  - job_name: guard-test\n"
        f"    scrape_interval: {interval_seconds}s\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
