"""The progress message of a multi-region rollback: one block per region, each with its phase
checklist and its elapsed time against that region's SLA."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.catalog.load import Service
from bot.notify.blocks import duration, phase_lines, section
from bot.notify.limits import Block
from bot.regions.status import (
    STATUS_EMOJI,
    WAITING,
    by_region,
    region_finished,
    region_started,
    region_status,
)
from storage.models import RollbackStep


def region_blocks(
    steps: Sequence[RollbackStep], service: Service | None, now: datetime
) -> list[Block] | None:
    """A section per region, in wave order; None for a single-region rollback."""
    regions = by_region(steps)
    if not regions:
        return None
    return [section(_region_text(name, own, service, now)) for name, own in regions.items()]


def _region_text(name: str, own: list[RollbackStep], service: Service | None, now: datetime) -> str:
    found = service.region_named(name) if service else None
    sla = found.sla_minutes if found else (service.sla_minutes if service else 15)
    status = region_status(own)
    started, finished = region_started(own), region_finished(own)
    if started is None or status == WAITING:
        clock = f"SLA {sla} min"
    else:
        elapsed = ((finished or now) - started).total_seconds()
        verb = "took" if finished else "elapsed"
        clock = f"{verb} {duration(elapsed)} of the {sla} min SLA"
        if elapsed > sla * 60:
            clock = f":warning: *{duration(elapsed)} — past the {sla} min SLA*"
    wave = (own[0].wave or 0) + 1
    head = f"{STATUS_EMOJI[status]} *{name}* — wave {wave}, {status} · {clock}"
    return "\n".join([head, *phase_lines(own, now)])
