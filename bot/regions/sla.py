"""Each region of a multi-region rollback has its own SLA, its clock starting with the region's
first step: the check is durable due work per region, and a breach is said per region."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.catalog.load import Catalog, Service
from bot.regions.status import region_finished, region_started
from bot.rollback.lifecycle import DueKind, region_sla_key, region_sla_prefix
from bot.runtime.due import DueWorkRunner
from storage.models import Rollback
from storage.repository import Repository


class RegionSla:
    """The engine's listener for ``region_started``: schedules that region's SLA check."""

    def __init__(
        self,
        repo: Repository,
        catalog: Catalog,
        due: DueWorkRunner,
        clock: Callable[[], datetime],
    ) -> None:
        self.repo, self.catalog, self.due, self.clock = repo, catalog, due, clock

    def rollback_started(self, rollback: Rollback) -> None:
        """Nothing yet: each region's clock starts with that region (``region_started``)."""

    def rollback_finished(self, rollback: Rollback) -> None:
        """The regions' checks still waiting have nothing left to check."""
        if rollback.id is not None:
            self.repo.cancel_work_with_prefix(region_sla_prefix(rollback.id), self.clock())

    def region_started(self, rollback: Rollback, region: str) -> None:
        """Idempotent (the key is the region's): told again on a resume, it schedules nothing."""
        service = self.catalog.get(rollback.service)
        found = service.region_named(region) if service else None
        if found is None or rollback.id is None:
            return
        own = [s for s in self.repo.list_steps(rollback.id) if s.region == region]
        deadline = (region_started(own) or self.clock()) + timedelta(minutes=found.sla_minutes)
        payload = {"rollback_id": rollback.id, "region": region}
        self.due.schedule(DueKind.SLA_CHECK, region_sla_key(rollback.id, region), deadline, payload)


def breached_region(
    repo: Repository, rollback: Rollback, service: Service, region: str
) -> Service | None:
    """The service as it is in ``region`` when that region is still rolling back at its SLA
    check; None when it finished in time (or left the catalog)."""
    assert rollback.id is not None
    own = [s for s in repo.list_steps(rollback.id) if s.region == region]
    if region_finished(own) is not None or service.region_named(region) is None:
        return None
    return service.in_region(region)
