"""The drill gauges of /metrics, read from the database at scrape time (every replica exports
the same truth; the alert rules RollbackDrillOverdue and RollbackNotReady aggregate with max by).
The first scheduled occurrence lets RollbackDrillOverdue cover a service never drilled
successfully: it has had a schedule since then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.catalog.load import Catalog
from storage.repository import Repository

log = logging.getLogger(__name__)


class DrillGauges(Collector):
    def __init__(self, repo: Repository, catalog: Catalog) -> None:
        self.repo, self.catalog = repo, catalog
        # each schedule's first occurrence never moves once stored (due work is kept), so it
        # is read again only while a scheduled service has none yet: not a scan every scrape
        self._first: dict[str, datetime] = {}

    def collect(self) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "rollback_bot_drill_last_success_timestamp_seconds",
            "Unix time the last successful readiness drill of a service finished.",
            labels=["service"],
        )
        failed = GaugeMetricFamily(
            "rollback_bot_drill_checks_failed",
            "Checks of a service's last readiness drill that were not ✓ (0: ready).",
            labels=["service"],
        )
        schedule = GaugeMetricFamily(
            "rollback_bot_drill_schedule_seconds",
            "The longest gap between two scheduled drills of a service (weekly, monthly).",
            labels=["service"],
        )
        since = GaugeMetricFamily(
            "rollback_bot_drill_scheduled_since_timestamp_seconds",
            "Unix time of the first scheduled drill occurrence of a service with a schedule.",
            labels=["service"],
        )
        try:
            scheduled = [n for n, s in self.catalog.services.items() if s.drills.period_days]
            if any(name not in self._first for name in scheduled):
                self._first = self.repo.first_drill_occurrences()
            first = self._first
            passed = self.repo.latest_drills(is_passed=True)
            latest = self.repo.latest_drills()
        except Exception:  # a scrape must not fail because the database is away
            log.exception("cannot read the drills for /metrics")
            return
        for name, service in sorted(self.catalog.services.items()):
            if (p := passed.get(name)) is not None and p.finished_at is not None:
                success.add_metric([name], p.finished_at.timestamp())
            if (last := latest.get(name)) is not None:
                failed.add_metric([name], float(last.failed_checks or (last.status != "passed")))
            if service.drills.period_days:
                schedule.add_metric([name], service.drills.period_days * 86400.0)
                if (at := first.get(name)) is not None:
                    since.add_metric([name], at.timestamp())
        yield success
        yield failed
        yield schedule
        yield since
