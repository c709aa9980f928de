"""Read a service's signals concurrently and score them: the I/O half of ``/rollback assess``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

from bot.adapters.http import HttpClient
from bot.adapters.prometheus import PrometheusAPI, QueryResult, Worst
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
        """The health URL first, then each PromQL signal: all at the same time, each its own
        request, so a slow or failing query blinds only its own signal. (Not one batched
        query, as the guard makes: Prometheus evaluates a batch's parts one after another, so
        one heavy query would time out all four during the incident being assessed.)"""
        pending: list[tuple[Signal, Future[Reading]]] = []
        if service.spec.health_url:
            pending.append((Signal.HEALTH, self.pool.submit(self._health, service)))
        for signal, promql in service.signals.items():
            pending.append((signal, self.pool.submit(self._query, signal, promql)))
        deadline = service.health_timeout_seconds + DEADLINE_MARGIN_SECONDS
        if self.prometheus is not None:
            deadline = max(deadline, self.prometheus.timeout_seconds + DEADLINE_MARGIN_SECONDS)
        readings = []
        for signal, future in pending:
            try:
                readings.append(future.result(timeout=deadline))
            except FutureTimeout:
                future.cancel()  # queued in the pool, or a server trickling its answer
                readings.append(Reading(signal, None, f"no result within {deadline:g} s"))
        return readings

    def _health(self, service: Service) -> Reading:
        url = service.spec.health_url or ""
        result = self.http.check_health(url, service.health_timeout_seconds)
        return Reading(Signal.HEALTH, 1.0 if result.is_healthy else 0.0, result.note)

    def _query(self, signal: Signal, promql: str) -> Reading:
        if self.prometheus is None:
            result = QueryResult(None, "PROMETHEUS_URL is not set")
        else:
            result = self.prometheus.query(promql, WORST[signal])
        return Reading(signal, result.value, result.note)


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
