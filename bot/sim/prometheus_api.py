"""A tiny Prometheus HTTP API simulator for the local demo and the benchmarks.

It answers ``GET`` and ``POST`` (form-encoded) ``/api/v1/query`` in exactly the JSON shape of the
real Prometheus instant-query API, from values configured per query string:

- a configured number → one sample with an empty label set (the queries the bot issues are all
  aggregations, which Prometheus answers with ``"metric": {}``);
- no configured value → an empty result list, like a query that selects no series;
- ``float("nan")`` → the value ``"NaN"`` (``"+Inf"`` / ``"-Inf"`` likewise);
- a query configured as an error → HTTP 400 with ``errorType`` ``bad_data``;
- a batch of queries (``label_replace((q0), "rb_key", "0", "", "") or …``, see
  ``bot.adapters.prometheus_batch``) → the samples of its parts, each tagged with its
  ``rb_key``, as Prometheus answers it; one configured as an error rejects the whole batch.
  It counts as one query (``queries`` records the batch as sent).

It also serves demo service health endpoints: ``GET /health/<name>`` answers with the configured
status code (default 200) and a small JSON body.

The integration tests do not use this module: they run the real Prometheus (see
``tests/prometheus_server.py``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from bot.adapters.prometheus_batch import KEY_LABEL, batch_query
from bot.sim.loopback import LoopbackSimulator

__all__ = ["PrometheusSimulator", "format_sample_value"]

_QUERY_PATH = "/api/v1/query"
# a batch of queries (bot.adapters.prometheus_batch): answered from the values of its parts
_TAGGED = re.compile(rf'label_replace\(\((.*?)\), "{KEY_LABEL}", "([^"]*)", "", ""\)')
_HEALTH_PREFIX = "/health/"
_MAX_BODY_BYTES = 1 << 20


def format_sample_value(value: float) -> str:
    """Format a sample value the way Prometheus does (Go ``strconv.FormatFloat(v, 'f', -1, 64)``).

    Shortest round-tripping digits in plain (non-exponent) notation: ``1.0`` → ``"1"``,
    ``1e-05`` → ``"0.00001"``, NaN → ``"NaN"``, infinities → ``"+Inf"`` / ``"-Inf"``.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(float(value))).normalize(), "f")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    """Request handler; ``simulator`` is bound by a per-instance subclass in ``start()``."""

    simulator: ClassVar[PrometheusSimulator]
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive answer by ~40 ms.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "PrometheusSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test and demo output quiet."""

    def do_GET(self) -> None:
        self._dispatch(body=b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY_BYTES:
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("bad_data", "body too big"))
            return
        self._dispatch(body=self.rfile.read(length))

    def _dispatch(self, body: bytes) -> None:
        sim = self.simulator
        sim._wait_delay()
        parts = urlsplit(self.path)
        if parts.path == _QUERY_PATH:
            params = parse_qs(parts.query, keep_blank_values=True)
            if self.command == "POST":
                content_type = self.headers.get("Content-Type", "")
                if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
                    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                    for key, values in form.items():
                        params.setdefault(key, []).extend(values)
            status, payload = sim._answer_query(params)
            self._send_json(status, payload)
        elif parts.path.startswith(_HEALTH_PREFIX) and self.command == "GET":
            name = unquote(parts.path[len(_HEALTH_PREFIX) :])
            status_code = sim._health_status(name)
            healthy = 200 <= status_code < 400
            self._send_json(
                status_code, {"service": name, "status": "ok" if healthy else "unhealthy"}
            )
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error("not_found", f"no route {parts.path}"))

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _error(error_type: str, message: str) -> dict[str, str]:
    return {"status": "error", "errorType": error_type, "error": message}


class PrometheusSimulator(LoopbackSimulator):
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) speaking the Prometheus query API.

    Thread-safe: the configuration can be changed while requests are being served.
    """

    def __init__(
        self,
        values: Mapping[str, float] | None = None,
        health: Mapping[str, int] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        if delay_seconds < 0:
            raise ValueError("delay_seconds must be >= 0")
        self._lock = threading.Lock()
        self._values: dict[str, float] = dict(values or {})
        self._errors: dict[str, str] = {}
        self._health: dict[str, int] = {}
        for name, status in (health or {}).items():
            self.set_health(name, status)
        self._delay = float(delay_seconds)
        self._query_delays: dict[str, float] = {}
        self._query_count = 0
        self._queries: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PrometheusSimulator:
        """Bind 127.0.0.1:0 and serve in a background daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("PrometheusSimulator is already started")
        handler = type("_BoundHandler", (_Handler,), {"simulator": self})
        server = _Server(("127.0.0.1", 0), handler)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="prometheus-simulator",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def health_url(self, name: str) -> str:
        """URL of the demo health endpoint of service ``name``."""
        return f"{self.url}{_HEALTH_PREFIX}{name}"

    # -- configuration -----------------------------------------------------------------------

    def set_value(self, query: str, value: float | None) -> None:
        """Answer ``query`` with ``value``; ``None`` removes it (→ no series). Clears any error."""
        with self._lock:
            self._errors.pop(query, None)
            if value is None:
                self._values.pop(query, None)
            else:
                self._values[query] = float(value)

    def set_error(self, query: str, message: str) -> None:
        """Answer ``query`` with HTTP 400 ``bad_data`` and ``message`` (until ``set_value``)."""
        with self._lock:
            self._errors[query] = message

    def set_health(self, name: str, status: int) -> None:
        """Make ``GET /health/<name>`` answer with HTTP ``status``."""
        if not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status}")
        with self._lock:
            self._health[name] = status

    def set_delay(self, seconds: float) -> None:
        """Delay every request (query and health) by ``seconds`` before answering."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._delay = float(seconds)

    def set_query_delay(self, query: str, seconds: float) -> None:
        """Delay the answer to one query by ``seconds`` (a slow query among fast ones; a
        batch containing it waits as long: Prometheus evaluates its parts one by one)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._query_delays[query] = float(seconds)

    # -- recording ---------------------------------------------------------------------------

    @property
    def query_count(self) -> int:
        """Number of ``/api/v1/query`` requests received so far."""
        with self._lock:
            return self._query_count

    @property
    def queries(self) -> list[str]:
        """The query strings received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._queries)

    # -- request side (called from handler threads) ----------------------------------------------

    def _wait_delay(self) -> None:
        with self._lock:
            delay = self._delay
        if delay > 0:
            threading.Event().wait(delay)

    def _health_status(self, name: str) -> int:
        with self._lock:
            return self._health.get(name, 200)

    def _answer_query(self, params: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        query_values = params.get("query") or [""]
        query = query_values[0]
        with self._lock:
            self._query_count += 1
            self._queries.append(query)
        if not query.strip():
            return HTTPStatus.BAD_REQUEST, _error(
                "bad_data",
                'invalid parameter "query": 1:1: parse error: no expression found in input',
            )
        eval_time = _eval_time(params.get("time"))
        if eval_time is None:
            return HTTPStatus.BAD_REQUEST, _error(
                "bad_data", f'invalid parameter "time": cannot parse {params["time"][0]!r}'
            )
        parts = _TAGGED.findall(query)
        if not parts or batch_query([(key, q) for q, key in parts]) != query:
            parts = [(query, None)]
        result: list[dict[str, Any]] = []
        for promql, key in parts:
            with self._lock:
                error, value = self._errors.get(promql), self._values.get(promql)
                delay = self._query_delays.get(promql, 0.0)
            if delay > 0:
                threading.Event().wait(delay)
            if error is not None:  # Prometheus rejects the whole expression
                return HTTPStatus.BAD_REQUEST, _error("bad_data", error)
            if value is not None:
                metric = {} if key is None else {KEY_LABEL: key}
                result.append({"metric": metric, "value": [eval_time, format_sample_value(value)]})
        return HTTPStatus.OK, {
            "status": "success",
            "data": {"resultType": "vector", "result": result},
        }


def _eval_time(raw: list[str] | None) -> float | None:
    """The evaluation timestamp: the ``time`` parameter (unix seconds) or now, in ms precision."""
    if not raw or not raw[0]:
        return round(time.time(), 3)
    try:
        parsed = float(raw[0])
    except ValueError:
        return None
    if not math.isfinite(parsed):
        return None
    return round(parsed, 3)
