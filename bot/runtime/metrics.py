"""Prometheus metrics of the bot, in a registry per app so that tests and apps never collide.

Rollback counters and durations are counted by an engine listener (``watch_rollbacks``). Running
rollbacks are read from the database at scrape time, so every replica exports the same truth
(alert rules aggregate with ``max by``) and a rollback resumed elsewhere after a crash still counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bot.rollback.lifecycle import IN_ENGINE, RollbackKind, RollbackStatus
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.catalog.load import Catalog
    from bot.execution.engine import Engine
    from storage.repository import Repository

# Rehearsals run in staging and are never counted among a service's rollbacks.
PRODUCTION_KINDS = tuple(k for k in RollbackKind if k != RollbackKind.REHEARSAL)

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# how a rollback that ran can end (a waiting request's endings never started it)
OUTCOMES = (RollbackStatus.SUCCEEDED, RollbackStatus.FAILED, RollbackStatus.ABORTED)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._add_request_metrics()
        self._add_rollback_metrics()
        self._add_guard_metrics()

    def _add_request_metrics(self) -> None:
        """Slack requests, assessments and work after ack()."""
        self.assessments = self._counter(
            "rollback_bot_assessments_total",
            "Assessments completed, by service and decision.",
            ["service", "decision"],
        )
        self.assessment_seconds = self._histogram(
            "rollback_bot_assessment_duration_seconds",
            "Wall time to read every signal of a service and score it.",
            ["service"],
            (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.slack_requests = self._counter(
            "rollback_bot_slack_requests_total",
            "Requests from Slack by outcome (handled, duplicate).",
            ["outcome"],
        )
        self.background_failures = self._counter(
            "rollback_bot_background_failures_total",
            "Work after ack() that raised; each is logged with its traceback.",
            [],
        )

    def _add_rollback_metrics(self) -> None:
        """Rollbacks and pages (alert rules in deploy/prometheus/rollback-alerts.yml use these
        names)."""
        self.rollbacks_started = self._counter(
            "rollback_bot_rollbacks_started_total",
            "Rollbacks that started running, by service, strategy and kind.",
            ["service", "strategy", "kind"],
        )
        self.rollbacks_finished = self._counter(
            "rollback_bot_rollbacks_finished_total",
            "Rollbacks that ended, by service, strategy and outcome (succeeded/failed/aborted).",
            ["service", "strategy", "outcome"],
        )
        self.rollback_seconds = self._histogram(
            "rollback_bot_rollback_duration_seconds",
            "Start to end of a rollback.",
            ["service", "strategy"],
            (10, 30, 60, 120, 300, 600, 900, 1800, 3600),
        )
        self.phase_seconds = self._histogram(
            "rollback_bot_phase_duration_seconds",
            "Duration of one phase of a rollback plan.",
            ["service", "phase"],
            (1, 5, 15, 30, 60, 120, 300, 600),
        )
        self.approval_wait_seconds = self._histogram(
            "rollback_bot_approval_wait_seconds",
            "Request to final approval of a planned rollback.",
            ["service"],
            (30, 60, 120, 300, 600, 900, 1800, 3600),
        )
        self.pages_sent = self._counter(
            "rollback_bot_pages_sent_total",
            "SMS pages handed to Twilio, by service and outcome (sent/failed).",
            ["service", "outcome"],
        )
        self.pages_acknowledged = self._counter(
            "rollback_bot_pages_acknowledged_total",
            "Pages acknowledged, by service and channel (sms/slack).",
            ["service", "via"],
        )

    def _add_guard_metrics(self) -> None:
        """The automatic guard (the alert rule RollbackGuardBlind watches these)."""
        self.guard_evaluations = self._counter(
            "rollback_bot_guard_evaluations_total",
            "Evaluations of a guarded release (every trigger read and judged once).",
            [],
        )
        self.guard_triggers = self._counter(
            "rollback_bot_guard_triggers_total",
            "Guard triggers that fired (held for their duration), by service and trigger.",
            ["service", "trigger"],
        )
        self.guarded_releases = Gauge(
            "rollback_bot_guarded_releases",
            "Releases the guard watches now.",
            registry=self.registry,
        )
        self.guard_blind = Gauge(
            "rollback_bot_guard_blind",
            "1 while the guard of a service cannot read any trigger (3 evaluations in a row).",
            ["service"],
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(
        self, name: str, documentation: str, labels: list[str], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def watch_rollbacks(self, repo: Repository, catalog: Catalog, engine: Engine) -> None:
        """Count rollbacks from the engine and export running ones from the database.

        Every catalog service starts with zeroed series: ``increase()`` only sees a first
        failure if the counter existed (at 0) before it.
        """
        for service in catalog.services.values():
            strategy = service.spec.strategy
            for kind in PRODUCTION_KINDS:
                self.rollbacks_started.labels(service.name, strategy, kind)
            for outcome in OUTCOMES:
                self.rollbacks_finished.labels(service.name, strategy, outcome)
        engine.listeners.append(RollbackMetrics(self, repo))
        self.registry.register(RunningRollbacks(repo, catalog))


class RollbackMetrics:
    """Engine listener: starts, outcomes, durations, phase durations and approval waits."""

    def __init__(self, metrics: Metrics, repo: Repository) -> None:
        self.metrics, self.repo = metrics, repo

    def rollback_started(self, rollback: Rollback) -> None:
        m = self.metrics
        m.rollbacks_started.labels(rollback.service, rollback.strategy, rollback.kind).inc()
        if rollback.kind == RollbackKind.PLANNED and rollback.approved_at is not None:
            wait = (rollback.approved_at - rollback.created_at).total_seconds()
            m.approval_wait_seconds.labels(rollback.service).observe(max(0.0, wait))

    def rollback_finished(self, rollback: Rollback) -> None:
        assert rollback.id is not None
        m, service = self.metrics, rollback.service
        m.rollbacks_finished.labels(service, rollback.strategy, rollback.status).inc()
        began = rollback.started_at or rollback.created_at
        if rollback.finished_at is not None:
            took = (rollback.finished_at - began).total_seconds()
            m.rollback_seconds.labels(service, rollback.strategy).observe(max(0.0, took))
        phases: dict[str, list[float]] = {}
        for step in self.repo.list_steps(rollback.id):
            if step.started_at is None or step.finished_at is None:
                continue
            span = phases.setdefault(step.phase, [step.started_at.timestamp(), 0.0])
            span[0] = min(span[0], step.started_at.timestamp())
            span[1] = max(span[1], step.finished_at.timestamp())
        for phase, (start, end) in phases.items():
            m.phase_seconds.labels(service, phase).observe(max(0.0, end - start))


class RunningRollbacks(Collector):
    """Scrape-time gauges of the rollbacks running now (RollbackTakingTooLong uses them)."""

    def __init__(self, repo: Repository, catalog: Catalog) -> None:
        self.repo, self.catalog = repo, catalog

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "rollback_bot_rollbacks_running",
            "Rollbacks running (or aborting) now, by service.",
            labels=["service"],
        )
        started = GaugeMetricFamily(
            "rollback_bot_rollback_started_timestamp_seconds",
            "Unix time a running rollback started, by rollback id.",
            labels=["rollback_id", "service", "strategy"],
        )
        sla = GaugeMetricFamily(
            "rollback_bot_rollback_sla_seconds",
            "The SLA of a running rollback's service (seed 001 levels), by rollback id.",
            labels=["rollback_id", "service"],
        )
        try:
            rows = self.repo.list_rollbacks(statuses=IN_ENGINE, limit=1000)
        except Exception:  # a scrape must not fail because the database is away
            log.exception("cannot read running rollbacks for /metrics")
            return
        counts = dict.fromkeys(self.catalog.services, 0)
        for r in rows:
            if r.kind == RollbackKind.REHEARSAL:  # staging: no production alert may see it
                continue
            counts[r.service] = counts.get(r.service, 0) + 1
            began = (r.started_at or r.created_at).timestamp()
            started.add_metric([str(r.id), r.service, r.strategy], began)
            service = self.catalog.get(r.service)
            sla.add_metric([str(r.id), r.service], (service.sla_minutes if service else 15) * 60)
        for name, count in sorted(counts.items()):
            running.add_metric([name], count)
        yield running
        yield started
        yield sla
