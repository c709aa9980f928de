"""Scheduled drills (``drills: {schedule: weekly, day: tue, at: "10:00"}``) as durable due work.

Each service's next occurrence is one due-work item keyed by the service and the time, so
scheduling it again (every start-up, every replica) is harmless, a restart finds it in the
database, and one replica claims it (PostgreSQL: FOR UPDATE SKIP LOCKED). The drill row takes
the same key as its ``schedule_key``: even a repeated item makes one drill. A failed scheduled
drill posts its report and mentions the service's responders; it pages nobody (it is not an
incident).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.catalog.drills import WEEKDAYS, Drills
from bot.catalog.load import Service
from bot.deps import Deps
from bot.drills.gauges import DrillGauges
from bot.drills.run import post_report, run_drill
from bot.rollback.command import zone_name
from bot.rollback.lifecycle import DrillDueKind, drill_key
from storage.drill_models import DrillStatus, DrillTrigger
from storage.models import DueWork

log = logging.getLogger(__name__)


def _clock_time(d: Drills) -> time:
    hours, minutes = d.at.split(":")
    return time(int(hours), int(minutes))


def _first_weekday(year: int, month: int, weekday: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7)


def _candidates(d: Drills, start: date) -> list[date]:
    """Scheduled days from ``start``'s week (or month) on, enough to pass any moment."""
    if d.schedule == "weekly":
        weekday = WEEKDAYS.index(str(d.day or "mon"))
        return [
            start + timedelta(days=n)
            for n in range(15)
            if (start + timedelta(days=n)).weekday() == weekday
        ]
    days = []
    for n in range(3):
        year, month = divmod(start.month - 1 + n, 12)
        year, month = start.year + year, month + 1
        if isinstance(d.day, str):
            days.append(_first_weekday(year, month, WEEKDAYS.index(d.day)))
        else:
            days.append(date(year, month, int(d.day or 1)))
    return days


def next_occurrence(d: Drills, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first scheduled moment strictly after ``after`` (aware, UTC), in the service's zone."""
    if d.schedule is None:
        return None
    local = after.astimezone(tz)
    start = local.date().replace(day=1) if d.schedule == "monthly" else local.date()
    for day in _candidates(d, start):
        at = datetime.combine(day, _clock_time(d), tzinfo=tz).astimezone(UTC)
        if at > after:
            return at
    raise AssertionError(f"no drill after {after} for {d}")  # _candidates always reaches one


def schedule_text(service: Service) -> str:
    """``weekly, tue 10:00 Europe/Berlin``."""
    d = service.drills
    day = str(d.day) if d.day is not None else ("mon" if d.schedule == "weekly" else "1")
    return f"{d.schedule}, {day} {d.at} {zone_name(service.tz)}"


def schedule_next(deps: Deps, service: Service, after: datetime) -> datetime | None:
    """Store the service's next occurrence after ``after`` (once per key); when it is."""
    at = next_occurrence(service.drills, service.tz, after)
    if at is not None:
        payload = {"service": service.name, "at": at.isoformat()}
        deps.due.schedule(DrillDueKind.SCHEDULED, drill_key(service.name, at), at, payload)
    return at


def run_scheduled(deps: Deps, item: DueWork) -> None:
    """One occurrence: the drill (once, by its key), then the next occurrence."""
    service = deps.catalog.get(str(item.payload.get("service", "")))
    at = datetime.fromisoformat(str(item.payload["at"]))
    if (
        service is None
        or next_occurrence(service.drills, service.tz, at - timedelta(seconds=1)) != at
    ):
        log.info("scheduled drill %s: no longer in the catalog's schedule, skipped", item.key)
        if service is not None:
            schedule_next(deps, service, deps.clock())
        return
    drill_id = deps.repo.start_drill(
        service.name,
        deps.clock(),
        trigger=DrillTrigger.SCHEDULED,
        channel_id=service.channel,
        schedule_key=item.key,
    )
    if drill_id is None:  # stored by an earlier attempt that died: finish that one if it did not
        earlier = deps.repo.drill_by_schedule_key(item.key)
        drill_id = earlier.id if earlier and earlier.status == DrillStatus.RUNNING else None
    if drill_id is not None:
        run_drill(
            deps,
            service,
            drill_id,
            None,
            actor=None,
            mention=service.spec.responders,
            schedule=schedule_text(service),
        )
    schedule_next(deps, service, max(at, deps.clock()))


ABANDONED = (
    "the bot stopped during this drill (a restart or a crash), before its checks ended."
    " Nothing was changed; run it again"
)


def end_abandoned(deps: Deps, item: DueWork) -> None:
    """A drill still running 10 minutes after its start: its process died. Say so, once."""
    drill = deps.repo.abandon_drill(int(item.payload["drill"]), deps.clock(), ABANDONED)
    if drill is None:
        return  # it ended
    deps.audit("drill.abandoned", drill.service, drill.requested_by, drill=drill.id)
    service = deps.catalog.get(drill.service)
    if service is not None:
        post_report(deps, service, drill)


def install(deps: Deps) -> None:
    """The drill gauges of /metrics, the scheduled drills' handler and each next occurrence."""
    deps.metrics.registry.register(DrillGauges(deps.repo, deps.catalog))
    deps.due.register(DrillDueKind.SCHEDULED, lambda item: run_scheduled(deps, item))
    deps.due.register(DrillDueKind.STALE, lambda item: end_abandoned(deps, item))
    now = deps.clock()
    for service in deps.catalog.services.values():
        schedule_next(deps, service, now)
