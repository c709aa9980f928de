"""A multi-region rollback, wave by wave: the regions of a wave at the same time, each on its
own cluster; the next wave only once every region of this one verified.

Durable through the steps: every step row names its region and wave and is stored before the
first one runs, and the engine persists each step's transitions. A resumed rollback skips the
waves and regions whose steps all finished (never repeated) and goes on where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.prometheus import PrometheusAPI
from bot.catalog.load import Service
from bot.execution.contracts import ProgressSink
from bot.execution.service_state import describe_service_state
from bot.regions.status import ROLLED_BACK, by_region, region_status, waves_of
from bot.rollback.lifecycle import StepOutcome
from storage.models import RollbackStep

log = logging.getLogger(__name__)

DEFAULT_QUERY_TIMEOUT_SECONDS = 5.0  # a region's own Prometheus when PROMETHEUS_URL is unset


class WaveEngine(Protocol):
    """What the wave runner needs of the engine (bot.execution.engine.Engine has it)."""

    kube: KubernetesClient
    progress: ProgressSink

    def run_steps(
        self, rollback_id: int, service: Service, steps: list[RollbackStep]
    ) -> tuple[StepOutcome, str | None]: ...

    def tell_region_started(self, rollback_id: int, region: str) -> None: ...


def run_waves(
    engine: WaveEngine, rollback_id: int, service: Service, steps: list[RollbackStep]
) -> tuple[StepOutcome, str | None]:
    """Run the waves in order; how the rollback ended, and why when it failed (with which
    regions are on which version)."""
    waves = waves_of(steps)
    for number, regions in enumerate(waves):
        todo = {r: s for r, s in regions.items() if region_status(s) != ROLLED_BACK}
        if not todo:
            continue  # finished before a restart: not repeated
        missing = [r for r in todo if service.region_named(r) is None]
        if missing:
            return StepOutcome.FAILED, f"{', '.join(missing)} left the catalog's regions"
        results = _run_wave(engine, rollback_id, service, todo)
        outcomes = {o for o, _ in results.values()}
        if StepOutcome.ABORTED in outcomes:
            return StepOutcome.ABORTED, None
        if StepOutcome.LEASE_LOST in outcomes:
            return StepOutcome.LEASE_LOST, None
        failed = {r: e for r, (o, e) in results.items() if o == StepOutcome.FAILED}
        if failed:
            later = [r for wave in waves[number + 1 :] for r in wave]
            why = "; ".join(f"{r}: {e}" for r, e in failed.items())
            stopped = f" Later waves not started: {', '.join(later)}." if later else ""
            state = regions_state(engine.kube, service, steps)
            engine.progress.note(rollback_id, f":world_map: *Where each region is now*\n{state}")
            return StepOutcome.FAILED, f"wave {number + 1} failed in {why}.{stopped}"
    return StepOutcome.SUCCEEDED, None


def _run_wave(
    engine: WaveEngine,
    rollback_id: int,
    service: Service,
    regions: Mapping[str, list[RollbackStep]],
) -> dict[str, tuple[StepOutcome, str | None]]:
    """The regions of one wave at the same time, each with its own cluster's service; every
    region runs to its end (stopping one half-way would leave it half rolled back)."""

    def run(region: str, steps: list[RollbackStep]) -> tuple[StepOutcome, str | None]:
        engine.tell_region_started(rollback_id, region)  # idempotent: its SLA clock
        try:
            return engine.run_steps(rollback_id, service.in_region(region), steps)
        except Exception:
            log.exception("rollback #%d: region %s raised", rollback_id, region)
            return StepOutcome.FAILED, "internal error; the bot's log has the details"

    with ThreadPoolExecutor(len(regions), thread_name_prefix=f"wave-{rollback_id}") as pool:
        futures = {r: pool.submit(run, r, s) for r, s in regions.items()}
        return {r: f.result() for r, f in futures.items()}


def service_state(kube: KubernetesClient, service: Service, steps: Iterable[RollbackStep]) -> str:
    """Which release runs where now: one line per region for a multi-region service."""
    if service.regions:
        return regions_state(kube, service, steps)
    return describe_service_state(kube, service)


def regions_state(kube: KubernetesClient, service: Service, steps: Iterable[RollbackStep]) -> str:
    """One line per region of the service: how far this rollback got there and which release
    runs there now (read from each region's cluster, all at once)."""
    statuses = {r: region_status(s) for r, s in by_region(steps).items()}
    names = [r.name for r in service.regions]
    with ThreadPoolExecutor(max(1, len(names)), thread_name_prefix="region-state") as pool:
        states = list(pool.map(lambda n: describe_service_state(kube, service.in_region(n)), names))
    return "\n".join(
        f"• *{n}* ({statuses.get(n, 'not part of this rollback')}): {state}"
        for n, state in zip(names, states, strict=True)
    )


def region_prometheus(
    base: PrometheusAPI | None, http: HttpClient, service: Service
) -> PrometheusAPI | None:
    """The Prometheus of the region ``service`` stands for, when it names one; else the app's."""
    url = service.region.prometheus_url if service.region else None
    if url is None:
        return base
    timeout = base.timeout_seconds if base else DEFAULT_QUERY_TIMEOUT_SECONDS
    return PrometheusAPI(url, http.shared, timeout)
