"""``regions:`` and ``waves:`` of a service: where it runs, and in which order a rollback goes.

A region names its own kube context and namespace (and optionally its own deployment name,
Prometheus and SLA); the waves say which regions roll back together, a wave starting only when
the one before it verified. Without ``waves:`` each region is its own wave, in list order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.catalog.yaml_lines import Path_, line_for

REGION_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class RegionSpec(BaseModel):
    """One entry of ``regions:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    context: str | None = None
    namespace: str | None = None
    deployment: str | None = Field(default=None, min_length=1)
    prometheus_url: str | None = None
    sla_minutes: int | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not REGION_NAME.match(v):
            raise ValueError(f"region name {v!r} must be lowercase letters, digits and dashes")
        return v

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("prometheus_url must be an http:// or https:// URL")
        return v


@dataclass(frozen=True)
class Region:
    """A region with the service's values filled in where it gives none."""

    name: str
    context: str | None
    namespace: str
    deployment: str
    prometheus_url: str | None
    sla_minutes: int
    line: int = 1  # where the catalog writes it (check-config's kubeconfig warnings)


def resolve_regions(
    specs: list[RegionSpec] | None,
    *,
    namespace: str,
    deployment: str,
    sla_minutes: int,
    lines: Mapping[Path_, int],
    at: Path_,
) -> tuple[Region, ...]:
    return tuple(
        Region(
            name=r.name,
            context=r.context,
            namespace=r.namespace or namespace,
            deployment=r.deployment or deployment,
            prometheus_url=r.prometheus_url,
            sla_minutes=r.sla_minutes or sla_minutes,
            line=line_for((*at, "regions", i), lines),
        )
        for i, r in enumerate(specs or ())
    )


def resolve_waves(
    regions: tuple[Region, ...], waves: list[list[str]] | None
) -> tuple[tuple[str, ...], ...]:
    """The written waves, else one region per wave in list order."""
    if waves is None:
        return tuple((r.name,) for r in regions)
    return tuple(tuple(w) for w in waves)


def region_problems(
    source: str, name: str, raw: Mapping[str, object], lines: Mapping[Path_, int]
) -> Iterator[str]:
    """``file:line`` errors of one service's regions and waves, from its plain data (so they
    are reported with the service's other mistakes)."""
    at: Path_ = ("services", name)
    regions, waves = raw.get("regions"), raw.get("waves")
    names = [
        str(r["name"])
        for r in (regions if isinstance(regions, list) else [])
        if isinstance(r, dict) and isinstance(r.get("name"), str)
    ]
    for i, region in enumerate(names):
        if region in names[:i]:
            where = line_for((*at, "regions", i), lines)
            yield f"{source}:{where}: services.{name}.regions: {region} is listed twice"
    if waves is not None and not isinstance(regions, list):
        yield f"{source}:{line_for((*at, 'waves'), lines)}: services.{name}.waves: needs regions:"
        return
    if not isinstance(waves, list):
        return
    seen: Counter[str] = Counter()
    for w, wave in enumerate(waves):
        if not isinstance(wave, list):
            continue  # pydantic says it is not a list
        if not wave:
            line = line_for((*at, "waves", w), lines)
            yield f"{source}:{line}: services.{name}.waves: wave {w + 1} is empty"
        for r, region in enumerate(wave):
            line = line_for((*at, "waves", w, r), lines)
            if region not in names:
                known = ", ".join(names) or "none"
                yield (
                    f"{source}:{line}: services.{name}.waves: wave {w + 1} names {region!r},"
                    f" which is not in regions: ({known})"
                )
            elif seen[str(region)]:
                yield f"{source}:{line}: services.{name}.waves: {region} is in two waves"
            seen[str(region)] += 1
    for i, region in enumerate(names):
        if not seen[region]:
            line = line_for((*at, "regions", i), lines)
            yield (
                f"{source}:{line}: services.{name}.regions: {region} is in no wave, so no"
                " rollback would ever reach it (add it to waves:)"
            )


def context_warnings(
    source: str, service: str, regions: tuple[Region, ...], known: frozenset[str]
) -> Iterator[str]:
    """A region whose context the kubeconfig does not have (it may be added before a rollback
    runs, hence a warning)."""
    for r in regions:
        if r.context is not None and r.context not in known:
            listed = ", ".join(sorted(known)) or "none"
            yield (
                f"{source}:{r.line}: warning: services.{service}.regions: {r.name}'s context"
                f" {r.context!r} is not in the kubeconfig (it has: {listed})"
            )
