"""How far a multi-region rollback got in each region, read from its stored steps (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.rollback.lifecycle import StepStatus
from bot.rollback.phases import NOT_SELECTED
from storage.models import RollbackStep

WAITING = "waiting"
RUNNING = "running"
ROLLED_BACK = "rolled back"
FAILED = "failed"
NOT_RUN = "not run"  # skipped: the rollback was aborted or failed before this region
STOPPED = "stopped part-way"  # aborted after some of its steps ran
ABORTED_PREFIX = "aborted while running"  # the error the engine gives an interrupted step
STATUS_EMOJI = {
    WAITING: ":white_circle:",
    RUNNING: ":large_blue_circle:",
    ROLLED_BACK: ":white_check_mark:",
    FAILED: ":x:",
    NOT_RUN: ":heavy_minus_sign:",
    STOPPED: ":octagonal_sign:",
}


def by_region(steps: Iterable[RollbackStep]) -> dict[str, list[RollbackStep]]:
    """The steps of each region, regions in plan (wave) order, steps in plan order."""
    found: dict[str, list[RollbackStep]] = {}
    for s in sorted(steps, key=lambda s: s.position):
        if s.region is not None:
            found.setdefault(s.region, []).append(s)
    return found


def waves_of(steps: Iterable[RollbackStep]) -> list[dict[str, list[RollbackStep]]]:
    """The waves in order, each its regions' steps."""
    waves: dict[int, dict[str, list[RollbackStep]]] = {}
    for region, own in by_region(steps).items():
        waves.setdefault(own[0].wave or 0, {})[region] = own
    return [waves[w] for w in sorted(waves)]


def _own(steps: list[RollbackStep]) -> list[RollbackStep]:
    """The steps a region runs: a partial rollback's (``--phases``) unselected ones never do."""
    return [s for s in steps if s.error != NOT_SELECTED]


def region_status(steps: list[RollbackStep]) -> str:
    """One of the statuses above (a step skipped with an error was cut by an abort)."""
    steps = _own(steps)
    statuses = {s.status for s in steps}
    is_cut = any(s.status == StepStatus.SKIPPED and s.error for s in steps)
    has_run = bool(statuses & {StepStatus.SUCCEEDED, StepStatus.RUNNING})
    failed = [s for s in steps if s.status == StepStatus.FAILED]
    if any(not (s.error or "").startswith(ABORTED_PREFIX) for s in failed):
        return FAILED
    if failed:  # the step an abort interrupted
        return STOPPED
    if is_cut:
        return STOPPED if has_run else NOT_RUN
    if statuses <= {StepStatus.SUCCEEDED, StepStatus.SKIPPED}:
        return ROLLED_BACK
    return RUNNING if has_run else WAITING


def region_started(steps: list[RollbackStep]) -> datetime | None:
    """When the region's first step started (its SLA clock), None before."""
    return min((s.started_at for s in steps if s.started_at is not None), default=None)


def region_finished(steps: list[RollbackStep]) -> datetime | None:
    """When the region's last step ended, None while any step is still to run."""
    steps = _own(steps)
    if any(s.finished_at is None for s in steps):
        return None
    return max((s.finished_at for s in steps if s.finished_at is not None), default=None)
