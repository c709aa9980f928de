"""``rollback.yaml`` → :class:`Catalog`. Errors carry ``file:line``; unknown keys are errors.

The YAML is composed into nodes first so each value keeps its line; pydantic validates the plain
data and its error locations are mapped back to those lines.

The models live in :mod:`bot.catalog.spec` (defaults, services and their sections) with the field
formats and validators in :mod:`bot.catalog.fields`; the YAML line mapping and the error messages
live in :mod:`bot.catalog.yaml_lines`. This module resolves the spec into the runtime
:class:`Service` and :class:`Catalog`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ValidationError

from bot.catalog.guard import guard_config, overlay
from bot.catalog.guard_checks import guard_problems
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
    customer_name: str = ""  # what customers call it (customer_name:, else the name capitalized)
    status_page: StatusPage | None = None  # the service's, else the defaults'

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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
                target_revision=target_revision,
                health_url=s.health_url,
                error_rate_query=s.signals.get("error_rate"),
                error_rate_limit=self.thresholds.error_rate_high,
                blue_green=s.blue_green.model_dump() if s.blue_green else None,
                canary=s.canary.model_dump() if s.canary else None,
                http_rollback=s.http_rollback.model_dump() if s.http_rollback else None,
            )
        )


class PlanError(ValueError):
    """The service's plan cannot be built from the catalog; the message says what to add."""


@dataclass(frozen=True)
class Catalog:
    source: str
    services: Mapping[str, Service]
    warnings: tuple[str, ...] = ()

    def get(self, name: str) -> Service | None:
        return self.services.get(name.lower())

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
    catalog = _resolve(spec, source)
    errors += _strategy_sections(catalog, mapper.lines)
    errors += guard_problems(data, source, mapper.lines)
    if has_valid_defaults:
        errors += _contradictory_thresholds(spec, catalog, mapper.lines)
        errors += _impossible_approvals(catalog, mapper.lines)
    if errors:
        raise CatalogError(sorted(dict.fromkeys(errors), key=line_number))
    return replace(
        catalog, warnings=tuple(_approvals_an_approver_cannot_get(catalog, mapper.lines))
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listed_approvers(svc: Service) -> list[str] | None:
    """The approvers' user ids; None when a user group is listed (its size is not known)."""
    users = [a for a in svc.spec.approvers if isinstance(a, str)]
    return users if len(users) == len(svc.spec.approvers) else None


def _impossible_approvals(catalog: Catalog, lines: Mapping[Path_, int]) -> list[str]:
    """A planned rollback that no request can ever get approved: fewer approvers than votes.

    (A requester never approves their own request under the two-person rule, but a requester
    who is not an approver leaves every listed approver free to vote.)"""
    out = []
    for name, svc in catalog.services.items():
        users = _listed_approvers(svc)
        needed = svc.approval.min_approvals
        if users and needed > len(set(users)):
            line = line_for(("services", name, "approvers"), lines)
            out.append(
                f"{catalog.source}:{line}: services.{name}: approval needs"
                f" {_count(needed, 'approval')} but only {_count(len(set(users)), 'approver')}"
                f" {'is' if len(set(users)) == 1 else 'are'} listed, so no planned rollback can"
                " ever be approved (list more approvers or a user group, or lower"
                " approval.min_approvals)"
            )
    return out


def _approvals_an_approver_cannot_get(
    catalog: Catalog, lines: Mapping[Path_, int]
) -> Iterator[str]:
    """Possible, but not for everyone: under the two-person rule an approver who requests
    leaves one approver fewer to vote."""
    for name, svc in catalog.services.items():
        users = _listed_approvers(svc)
        needed = svc.approval.min_approvals
        if users and svc.approval.two_person_rule and needed == len(set(users)):
            line = line_for(("services", name, "approvers"), lines)
            yield (
                f"{catalog.source}:{line}: warning: services.{name}: approval needs"
                f" {_count(needed, 'approval')} and {_count(needed, 'approver')} are listed:"
                " a request made by one of them can never be approved (the two-person rule"
                " keeps the requester from voting)"
            )


def _threshold_problems(t: Thresholds) -> dict[str, str]:
    problems = {}
    if t.error_rate_high > t.error_rate_critical:
        problems["error_rate"] = "error_rate: high is above critical"
    if not t.latency_p95_medium <= t.latency_p95_high <= t.latency_p95_critical:
        problems["latency_p95_seconds"] = "latency_p95_seconds: needs medium ≤ high ≤ critical"
    return problems


def _contradictory_thresholds(
    spec: CatalogSpec, catalog: Catalog, lines: Mapping[Path_, int]
) -> list[str]:
    """A high threshold above the critical one would never fire critical: say so where it is
    written (under defaults, or in the service that wrote that signal's thresholds)."""
    out = []
    defaults = _threshold_problems(spec.defaults.thresholds.apply(Thresholds()))
    for signal, problem in defaults.items():
        line = line_for(("defaults", "thresholds", signal), lines)
        out.append(f"{catalog.source}:{line}: defaults.thresholds: {problem}")
    for name, service in catalog.services.items():
        written = service.spec.thresholds.model_fields_set
        for signal, problem in _threshold_problems(service.thresholds).items():
            if signal in written:
                line = line_for(("services", name, "thresholds", signal), lines)
                out.append(f"{catalog.source}:{line}: services.{name}.thresholds: {problem}")
    return out


def _resolve(spec: CatalogSpec, source: str) -> Catalog:
    d = spec.defaults
    base = d.thresholds.apply(Thresholds())
    services = {
        name: Service(
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
            customer_name=s.customer_name or d.customer_name or _capitalized(name),
            status_page=s.status_page or d.status_page,
        )
        for name, s in spec.services.items()
    }
    return Catalog(source=source, services=services)


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
