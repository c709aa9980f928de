"""``rollback.yaml`` → :class:`Catalog`. Errors carry ``file:line``; unknown keys are errors.

The YAML is composed into nodes first so each value keeps its line; pydantic validates the plain
data and its error locations are mapped back to those lines.

The models live in :mod:`bot.catalog.spec` (defaults, services and their sections) with the field
formats and validators in :mod:`bot.catalog.fields`; the YAML line mapping and the error messages
live in :mod:`bot.catalog.yaml_lines`. This module resolves the spec into the runtime
:class:`Service` and :class:`Catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from bot.catalog.consistency import (
    approvals_an_approver_cannot_get,
    contradictory_thresholds,
    impossible_approvals,
)
from bot.catalog.drills import drill_problems
from bot.catalog.guard import guard_config, overlay
from bot.catalog.guard_checks import guard_problems
from bot.catalog.regions import region_problems, resolve_regions, resolve_waves
from bot.catalog.rollouts import workload_problems
from bot.catalog.service import STAGING, Catalog, PlanError, Service, staging_key
from bot.catalog.spec import (
    LEVEL_SLA_MINUTES,
    CatalogSpec,
    Defaults,
    ServiceSpec,
)
from bot.catalog.staging_checks import staging_problems
from bot.catalog.yaml_lines import (
    CatalogError,
    LineMapper,
    Path_,
    YAMLProblem,
    errors_from,
    line_for,
    line_number,
)
from bot.rollback.assess import Thresholds

# the resolved catalog's types live in bot.catalog.service; most of the code imports them here
__all__ = ["STAGING", "Catalog", "CatalogError", "PlanError", "Service", "staging_key"]


def parse_catalog(text: str, source: str = "rollback.yaml") -> Catalog:
    """Parse and validate catalog text; raise :class:`CatalogError` listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CatalogError([f"{source}:{line}: invalid YAML: {exc.problem}"]) from None
    if root is None:
        raise CatalogError([f"{source}:1: the catalog is empty; it needs a services: section"])
    mapper = LineMapper(source)
    try:
        data = mapper.data(root)
    except YAMLProblem as exc:
        raise CatalogError([f"{source}:{exc.line}: {exc}"]) from None
    errors = mapper.errors
    if not isinstance(data, dict):
        raise CatalogError([f"{source}:1: the catalog must be a mapping with a services: section"])
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        errors.extend(errors_from(exc, mapper.lines, source, CatalogSpec))
        spec = _valid_parts(data)  # so that every problem is reported now, not batch by batch
    has_valid_defaults = "defaults" not in data or _validates(Defaults, data.get("defaults"))
    catalog = _resolve(spec, source, mapper.lines)
    raw_services = data.get("services")
    for name, raw in raw_services.items() if isinstance(raw_services, dict) else ():
        if isinstance(raw, dict):
            errors += region_problems(source, str(name), raw, mapper.lines)
    errors += _strategy_sections(catalog, mapper.lines)
    errors += workload_problems(source, spec.services, mapper.lines)
    errors += guard_problems(data, source, mapper.lines)
    errors += staging_problems(catalog, mapper.lines)
    errors += drill_problems(
        {n: svc.drills for n, svc in catalog.services.items()},
        {n: s.drills is not None for n, s in spec.services.items()},
        source,
        mapper.lines,
    )
    if has_valid_defaults:
        errors += contradictory_thresholds(spec, catalog, mapper.lines)
        errors += impossible_approvals(catalog, mapper.lines)
    if errors:
        raise CatalogError(sorted(dict.fromkeys(errors), key=line_number))
    return replace(
        catalog,
        warnings=tuple(approvals_an_approver_cannot_get(catalog, mapper.lines)),
        staging_lines={
            n: line_for(("services", n, "staging"), mapper.lines)
            for n, s in catalog.services.items()
            if s.spec.staging is not None
        },
    )


def _validates(model: type[BaseModel], data: object) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


def _valid_parts(data: Mapping[str, object]) -> CatalogSpec:
    """The defaults and the services that are valid on their own (their errors are reported)."""
    raw_defaults = data.get("defaults")
    defaults = Defaults()
    if raw_defaults is not None and _validates(Defaults, raw_defaults):
        defaults = Defaults.model_validate(raw_defaults)
    raw_services = data.get("services")
    services: dict[str, ServiceSpec] = {}
    if isinstance(raw_services, dict):
        for name, raw in raw_services.items():
            if isinstance(name, str) and _validates(ServiceSpec, raw):
                services[name] = ServiceSpec.model_validate(raw)
    return CatalogSpec.model_construct(defaults=defaults, services=services)


def _strategy_sections(catalog: Catalog, lines: Mapping[Path_, int]) -> list[str]:
    """A strategy without the section it runs from cannot roll anything back."""
    return [
        f"{catalog.source}:{line_for(('services', name, 'strategy'), lines)}:"
        f" services.{name}: strategy {svc.spec.strategy} needs a {key}: section"
        " (or phases:), see rollback.example.yaml"
        for name, svc in catalog.services.items()
        if (key := svc.spec.missing_strategy_section)
    ]


def _resolve(spec: CatalogSpec, source: str, lines: Mapping[Path_, int]) -> Catalog:
    d = spec.defaults
    base = d.thresholds.apply(Thresholds())
    services = {
        name: _with_regions(
            Service(
                name=name,
                spec=s,
                channel=s.channel or d.channel or "",
                namespace=s.namespace or d.namespace,
                context=s.context or d.context,
                sla_minutes=s.sla_minutes
                or (LEVEL_SLA_MINUTES[s.level] if s.level else None)
                or d.sla_minutes,
                thresholds=s.thresholds.apply(base),
                health_timeout_seconds=s.health_timeout_seconds or d.health_timeout_seconds,
                approval=overlay(d.approval, s.approval),
                notifications=overlay(d.notifications, s.notifications),
                templates={**d.templates, **s.templates},
                window_grace_minutes=d.window_grace_minutes,
                review_reminder_hours=d.review_reminder_hours,
                timezone=s.timezone or d.timezone,
                guard=guard_config(overlay(d.auto_rollback, s.auto_rollback), s),
                drills=overlay(d.drills, s.drills),
                customer_name=s.customer_name or d.customer_name or _capitalized(name),
                status_page=s.status_page or d.status_page,
            ),
            lines,
        )
        for name, s in spec.services.items()
    }
    return Catalog(source=source, services=services)


def _with_regions(service: Service, lines: Mapping[Path_, int]) -> Service:
    s = service.spec
    regions = resolve_regions(
        s.regions,
        namespace=service.namespace,
        deployment=s.deployment,
        sla_minutes=service.sla_minutes,
        lines=lines,
        at=("services", service.name),
    )
    return replace(service, regions=regions, waves=resolve_waves(regions, s.waves))


def _capitalized(name: str) -> str:
    """``checkout-api`` → ``Checkout api``: a service name as a sentence would say it."""
    words = name.replace("-", " ")
    return words[:1].upper() + words[1:]


def load_catalog(path: str | Path) -> Catalog:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError([f"{p}:1: cannot read the catalog: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise CatalogError([f"{p}:{line}: the catalog is not UTF-8 text"]) from None
    return parse_catalog(text, str(p))
