"""Read a service's signals concurrently and score them: the I/O half of ``/rollback assess``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any, TypeVar

from bot.adapters.http import HttpClient
from bot.adapters.prometheus import PrometheusAPI, QueryResult, Worst, worst_value
from bot.adapters.prometheus_batch import batch_query, split
from bot.catalog.load import Service
from bot.rollback.assess import Assessment, Reading, Signal, assess
from storage.repository import Repository

# Which way is "worse" when a query returns several series.
WORST: dict[Signal, Worst] = {
    Signal.ERROR_RATE: "max",
    Signal.LATENCY_P95: "max",
    Signal.USER_SESSIONS: "min",
    Signal.DB_UP: "min",
}
T = TypeVar("T")
# Margin over the per-query timeout before a reading is given up as unknown (queued in the pool).
DEADLINE_MARGIN_SECONDS = 2.0


class SignalReader:
    """Queries all signals of a service and its health URL at the same time, each with a timeout."""

    def __init__(
        self,
        prometheus: PrometheusAPI | None,
        http: HttpClient,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.prometheus = prometheus
        self.http = http
        self.pool = pool

    def read(self, service: Service) -> list[Reading]:
        """The health URL and the PromQL signals, at the same time; the signals in ONE query
        (each still unknown on its own, with its own note, when it has no data or fails)."""
        deadline = service.health_timeout_seconds + DEADLINE_MARGIN_SECONDS
        if self.prometheus is not None:
            deadline = max(deadline, self.prometheus.timeout_seconds + DEADLINE_MARGIN_SECONDS)
        health = self.pool.submit(self._health, service) if service.spec.health_url else None
        queries = list(service.signals.items())
        readings: list[Reading] | None = None
        if self.prometheus is not None and len(queries) > 1:
            batch = self.pool.submit(self._batch, self.prometheus, queries)
            readings = _wait(batch, deadline, [signal for signal, _ in queries])
        if readings is None:  # Prometheus rejected the batch: a bad query blinds only itself
            pending = [(s, self.pool.submit(self._query, s, promql)) for s, promql in queries]
            readings = [r for signal, f in pending for r in _wait(f, deadline, [signal])]
        if health is None:
            return readings
        return [*_wait(health, deadline, [Signal.HEALTH]), *readings]

    @staticmethod
    def _batch(
        prometheus: PrometheusAPI, queries: list[tuple[Signal, str]]
    ) -> list[Reading] | None:
        """Every signal's reading from one batched query; None when Prometheus rejected it."""
        result = prometheus.vector(batch_query(queries))
        if result.is_rejected:
            return None
        if result.note:  # Prometheus down, slow or garbled: no query would fare better
            return [Reading(signal, None, result.note) for signal, _ in queries]
        tagged = split(result.samples, len(queries))
        return [
            _reading(signal, worst_value([s.value for s in samples], WORST[signal]))
            for (signal, _), samples in zip(queries, tagged, strict=True)
        ]

    def _health(self, service: Service) -> list[Reading]:
        url = service.spec.health_url or ""
        result = self.http.check_health(url, service.health_timeout_seconds)
        return [Reading(Signal.HEALTH, 1.0 if result.is_healthy else 0.0, result.note)]

    def _query(self, signal: Signal, promql: str) -> list[Reading]:
        if self.prometheus is None:
            result = QueryResult(None, "PROMETHEUS_URL is not set")
        else:
            result = self.prometheus.query(promql, WORST[signal])
        return [_reading(signal, result)]


def _reading(signal: Signal, result: QueryResult) -> Reading:
    return Reading(signal, result.value, result.note)


def _wait(future: Future[T], deadline: float, signals: list[Signal]) -> T | list[Reading]:
    """What ``future`` gives within ``deadline`` seconds, else ``signals`` unknown (a reading
    queued in the pool, or a server trickling its answer, must not hold the assessment)."""
    try:
        return future.result(timeout=deadline)
    except FutureTimeout:
        future.cancel()
        return [Reading(signal, None, f"no result within {deadline:g} s") for signal in signals]


def assess_service(reader: SignalReader, service: Service) -> Assessment:
    return assess(service.name, reader.read(service), service.thresholds)


def store_assessment(
    repo: Repository,
    service: Service,
    assessment_id: int,
    result: Assessment,
    now: datetime,
    release: Mapping[str, Any] | None = None,
    regions: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Store the decision, the readings and every trigger (the review's trigger analysis);
    ``regions``: each region's decision (the stored one is the worst region's)."""
    inputs = {
        r.signal.value: {"value": r.value, "note": r.note, "query": service.signals.get(r.signal)}
        for r in result.results
    }
    summary = {
        "reasons": list(result.reasons),
        "worst_case": result.worst_case.value if result.worst_case else None,
        "triggers": {
            r.signal.value: [
                {
                    "level": t.level,
                    "points": t.points,
                    "condition": t.condition,
                    "fired": t.is_fired,
                }
                for t in r.triggers
            ]
            for r in result.results
        },
        "thresholds": service.thresholds.__dict__,
        "release": dict(release) if release else None,  # what ran when it was assessed
        "regions": [dict(r) for r in regions],
    }
    repo.complete_assessment(
        assessment_id,
        decision=result.decision.value,
        critical=result.scores["critical"],
        high=result.scores["high"],
        medium=result.scores["medium"],
        total=result.total,
        inputs=inputs,
        result=summary,
        now=now,
    )
