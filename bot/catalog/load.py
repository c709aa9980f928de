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
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ValidationError

from bot.catalog.consistency import (
    approvals_an_approver_cannot_get,
    contradictory_thresholds,
    impossible_approvals,
)
from bot.catalog.drills import Drills, drill_problems
from bot.catalog.guard import guard_config, overlay
from bot.catalog.guard_checks import guard_problems
from bot.catalog.regions import Region, region_problems, resolve_regions, resolve_waves
from bot.catalog.rollouts import workload_problems
from bot.catalog.spec import (
    LEVEL_SLA_MINUTES,
    ApprovalPolicy,
    CatalogSpec,
    Defaults,
    Notifications,
    ServiceSpec,
    StatusPage,
)
from bot.catalog.yaml_lines import (
    CatalogError,
    LineMapper,
    Path_,
    YAMLProblem,
    errors_from,
    line_for,
    line_number,
)
from bot.rollback.assess import Signal, Thresholds
from bot.rollback.plan import Plan, PlanInputs, custom_plan, default_plan
from bot.rollback.triggers import GuardConfig

STAGING = "staging"


def staging_key(name: str) -> str:
    """The key a service's rehearsals are stored under (``checkout@staging``): apart from its
    production rollbacks, so the one-active-rollback slot and the do-no-harm history of the
    service never see them. ``@`` cannot occur in a service name."""
    return f"{name}@{STAGING}"


@dataclass(frozen=True)
class Service:
    """One service with the defaults resolved: what the rest of the bot works with."""

    name: str
    spec: ServiceSpec
    channel: str
    namespace: str
    context: str | None
    sla_minutes: int
    thresholds: Thresholds
    health_timeout_seconds: float
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    notifications: Notifications = field(default_factory=Notifications)
    templates: Mapping[str, str] = field(default_factory=dict)
    window_grace_minutes: float = 10
    review_reminder_hours: float = 24
    timezone: str = "UTC"
    guard: GuardConfig = field(default_factory=GuardConfig)  # the resolved auto_rollback:
    regions: tuple[Region, ...] = ()  # empty: one cluster, as named by context/namespace
    waves: tuple[tuple[str, ...], ...] = ()
    region: Region | None = None  # set on the copy that stands for one region (in_region)
    drills: Drills = field(default_factory=Drills)  # the resolved drills:

    customer_name: str = ""  # what customers call it (customer_name:, else the name capitalized)
    status_page: StatusPage | None = None  # the service's, else the defaults'

    def region_named(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def in_region(self, name: str) -> Service:
        """This service as it is in one region: that region's context, namespace, deployment
        and SLA (so the steps, checks and state reads of the region go to its cluster)."""
        r = self.region_named(name)
        if r is None:
            raise KeyError(f"{self.name} has no region {name}")
        spec = self.spec.model_copy(update={"deployment": r.deployment})
        return replace(
            self,
            spec=spec,
            context=r.context,
            namespace=r.namespace,
            sla_minutes=r.sla_minutes,
            region=r,
        )

    def staging_twin(self) -> Service | None:
        """This service pointed at its ``staging:`` target, or None without one: what a
        rehearsal acts on, named by :func:`staging_key`. What only watches or protects
        production is left out: signals and health URL (the staging one is used), the point
        of no return (production revision numbers), custom phases, the guard and the on-call."""
        st = self.spec.staging
        if st is None:
            return None
        context, namespace = st.context or self.context, st.namespace or self.namespace
        spec = self.spec.model_copy(
            update={
                "context": context,
                "namespace": namespace,
                "deployment": st.deployment or self.spec.deployment,
                "health_url": st.health_url,
                "signals": {},
                "point_of_no_return": None,
                "phases": None,
                "oncall": [],
                "auto_rollback": None,
                "staging": None,
                "regions": None,  # staging is one target: never the production regions
                "waves": None,
            }
        )
        return replace(
            self,
            name=staging_key(self.name),
            spec=spec,
            context=context,
            namespace=namespace,
            notifications=self.notifications.model_copy(update={"incident_channel": False}),
            guard=GuardConfig(),
            regions=(),
            waves=(),
            region=None,
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def workload_kind(self) -> str:
        """``Deployment`` or ``Rollout``: which rules roll back ``spec.deployment``."""
        return self.spec.workload.kind

    @property
    def signals(self) -> dict[Signal, str]:
        return {Signal(name): query for name, query in self.spec.signals.items()}

    def plan(self, target_revision: str | None = None) -> Plan:
        """The catalog's phases when written, else the strategy's built-in plan."""
        s = self.spec
        if missing := s.missing_strategy_section:
            raise PlanError(
                f"{self.name} uses strategy {s.strategy} but its catalog entry has no {missing}:"
                " section (see rollback.example.yaml)"
            )
        if s.phases is not None:
            return custom_plan(
                s.strategy, {p: [x.as_dict() for x in v] for p, v in s.phases.items()}
            )
        return default_plan(
            PlanInputs(
                deployment=s.deployment,
                strategy=s.strategy,
                workload_kind=s.workload.kind,
                target_revision=target_revision,
                health_url=s.health_url,
                error_rate_query=s.signals.get("error_rate"),
                error_rate_limit=self.thresholds.error_rate_high,
                blue_green=s.blue_green.model_dump() if s.blue_green else None,
                canary=s.canary.model_dump() if s.canary else None,
                http_rollback=s.http_rollback.model_dump() if s.http_rollback else None,
            )
        )

    def only_regions(self, names: tuple[str, ...] | None) -> Service:
        """The service narrowed to the regions of ``--region`` (a partial rollback); all of
        them when ``names`` is None. Raises PlanError naming what is wrong."""
        if names is None:
            return self
        if not self.regions:
            raise PlanError(
                f"{self.name} runs in one cluster (no regions: in the catalog), so `--region`"
                " does not apply; leave it out"
            )
        known = [r.name for r in self.regions]
        if unknown := [n for n in names if n not in known]:
            raise PlanError(
                f"{self.name} has no region {', '.join(unknown)} (its regions: {', '.join(known)})"
            )
        waves = tuple(w for w in (tuple(n for n in wave if n in names) for wave in self.waves) if w)
        return replace(self, regions=tuple(r for r in self.regions if r.name in names), waves=waves)


class PlanError(ValueError):
    """The service's plan cannot be built from the catalog; the message says what to add."""


@dataclass(frozen=True)
class Catalog:
    source: str
    services: Mapping[str, Service]
    warnings: tuple[str, ...] = ()

    def get(self, name: str) -> Service | None:
        return self.services.get(name.lower())

    def target_of(self, key: str) -> Service | None:
        """What a rollback row's ``service`` key acts on: the service of that name, or for a
        rehearsal's key (``checkout@staging``) that service's staging twin."""
        name, at, where = key.partition("@")
        service = self.get(name)
        if not at:
            return service
        return service.staging_twin() if service is not None and where == STAGING else None

    @property
    def names(self) -> list[str]:
        return sorted(self.services)


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
    errors += _staging_problems(catalog, mapper.lines)
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
    return replace(catalog, warnings=tuple(approvals_an_approver_cannot_get(catalog, mapper.lines)))


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


def _staging_problems(catalog: Catalog, lines: Mapping[Path_, int]) -> list[str]:
    """A ``staging:`` target must not be production, and a rehearsal runs the built-in undo."""
    out = []
    for name, svc in catalog.services.items():
        twin = svc.staging_twin()
        if twin is None:
            continue
        where = f"{catalog.source}:{line_for(('services', name, 'staging'), lines)}"
        if (twin.context, twin.namespace) == (svc.context, svc.namespace):
            out.append(
                f"{where}: services.{name}.staging: names production (context"
                f" {svc.context or 'the current one'}, namespace {svc.namespace}); give the"
                " staging context or namespace"
            )
        if svc.spec.strategy != "undo" or svc.spec.phases is not None:
            kind = "custom phases:" if svc.spec.phases is not None else svc.spec.strategy
            out.append(
                f"{where}: services.{name}.staging: a rehearsal runs the built-in undo plan"
                f" (rollout undo and back); {name} uses {kind}, which rehearsals do not cover"
                " yet: remove staging: or use strategy undo"
            )
    return out


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
