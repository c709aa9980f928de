"""Multi-region rollbacks in words: which regions, in which waves, and what a partial one leaves."""

from __future__ import annotations

from collections.abc import Iterable

from bot.catalog.load import Service
from bot.regions.status import by_region
from bot.rollback.plan import Plan
from storage.models import RollbackStep


def stored_service(service: Service, steps: Iterable[RollbackStep]) -> Service:
    """``service`` narrowed to the regions a stored rollback covers (its steps say which)."""
    regions = tuple(by_region(steps))
    return service.only_regions(regions) if regions and service.regions else service


def waves_text(waves: Iterable[Iterable[str]]) -> str:
    """``eu-west-1 → us-east-1 + ap-south-1`` (a wave's regions run together)."""
    return " → ".join(" + ".join(w) for w in waves)


def regions_line(service: Service, regions: list[str], waves: Iterable[Iterable[str]]) -> str:
    """What a request, start or approval says about the regions ('' for a single cluster). A
    partial rollback says plainly which regions are left as they are."""
    if not regions:
        return ""
    left = [r.name for r in service.regions if r.name not in regions]
    line = f"{len(regions)} region{'s' if len(regions) != 1 else ''}, wave by wave: "
    line += waves_text(waves)
    if left:
        line = (
            f"*Partial rollback*: only {', '.join(regions)} ({line});"
            f" {', '.join(left)} {'is' if len(left) == 1 else 'are'} NOT rolled back"
        )
    return line


def plan_regions_line(service: Service, plan: Plan) -> str:
    waves: dict[int, list[str]] = {}
    for s in plan.steps:
        if s.region is not None and s.region not in waves.get(s.wave or 0, []):
            waves.setdefault(s.wave or 0, []).append(s.region)
    return regions_line(service, plan.regions, [waves[w] for w in sorted(waves)])


def steps_regions_line(service: Service, steps: Iterable[RollbackStep]) -> str:
    own = by_region(steps)
    waves: dict[int, list[str]] = {}
    for region, s in own.items():
        waves.setdefault(s[0].wave or 0, []).append(region)
    return regions_line(service, list(own), [waves[w] for w in sorted(waves)])
