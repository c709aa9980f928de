"""The review document of a multi-region rollback: how each region went, against its own SLA,
and each region's own timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.catalog.load import Service
from bot.notify.blocks import plural
from bot.regions.status import by_region, region_finished, region_started, region_status
from bot.review.text import duration, plain, table, took, when
from storage.models import RollbackStep


def region_sections(steps: Sequence[RollbackStep], service: Service | None) -> list[str]:
    """``## Timeline by region`` (nothing for a single-region rollback)."""
    regions = by_region(steps)
    if not regions:
        return []
    rows = []
    for name, own in regions.items():
        found = service.region_named(name) if service else None
        sla = found.sla_minutes if found else (service.sla_minutes if service else 15)
        start, end = region_started(own), region_finished(own)
        seconds = took(start, end) if start else None
        rows.append(
            [
                name,
                (own[0].wave or 0) + 1,
                region_status(own),
                when(start),
                when(end),
                duration(seconds) if seconds is not None else "—",
                _verdict(seconds, sla),
            ]
        )
    if service is not None:
        left = [r.name for r in service.regions if r.name not in regions]
        rows += [[name, "—", "not part of this rollback", "—", "—", "—", "—"] for name in left]
    parts = [
        "## Timeline by region",
        table(["Region", "Wave", "Status", "Started", "Finished", "Took", "SLA"], rows),
    ]
    for name, own in regions.items():
        parts.append(f"### {name}\n" + _region_timeline(own))
    return ["\n".join(parts)]


def _verdict(seconds: float | None, sla_minutes: int) -> str:
    if seconds is None:
        return f"not finished ({plural(sla_minutes, 'minute')})"
    margin = sla_minutes * 60 - seconds
    if margin >= 0:
        return f"within {plural(sla_minutes, 'minute')}, {duration(margin)} to spare"
    return f"**breached** {plural(sla_minutes, 'minute')} by {duration(-margin)}"


def _region_timeline(own: list[RollbackStep]) -> str:
    rows: list[tuple[datetime, str]] = []
    for s in own:
        if s.started_at:
            rows.append((s.started_at, f"{s.phase}: {s.name} started (attempt {s.attempt})"))
        if s.finished_at:
            error = f": {plain(s.error)}" if s.error else ""
            rows.append((s.finished_at, f"{s.phase}: {s.name} {s.status}{error}"))
    if not rows:
        return "_Not started._"
    rows.sort(key=lambda row: row[0])
    origin = rows[0][0]
    return table(
        ["Time", "T+", "Event"],
        [[when(at), duration((at - origin).total_seconds()), text] for at, text in rows],
    )
