"""``rollback.yaml`` → :class:`Catalog`. Errors carry ``file:line``; unknown keys are errors.

The YAML is composed into nodes first so each value keeps its line; pydantic validates the plain
data and its error locations are mapped back to those lines.

The models live in :mod:`bot.catalog_spec` (defaults, services and their sections) with the field
formats and validators in :mod:`bot.catalog_fields`; the YAML line mapping and the error messages
live in :mod:`bot.catalog_yaml`. This module resolves the spec into the runtime :class:`Service`
and :class:`Catalog` and is the public entry point: other code imports from here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ValidationError

from bot.catalog_fields import (
    E164,
    SERVICE_NAME,
    SLACK_CHANNEL,
    SLACK_USER,
    SLACK_USERGROUP,
    STRATEGY_SECTIONS,
    PhaseName,
    PromQL,
    PromQLSignal,
    ServiceName,
    SlackUserId,
    Strategy,
)
from bot.catalog_spec import (
    LEVEL_SLA_MINUTES,
    ApprovalPolicy,
    Approver,
    BlueGreen,
    Canary,
    CanaryTraffic,
    CatalogSpec,
    Defaults,
    ErrorRateThresholds,
    HttpRollback,
    LatencyThresholds,
    Notifications,
    OncallContact,
    PlanStep,
    PointOfNoReturn,
    ServiceSpec,
    SessionsThresholds,
    ThresholdOverrides,
    UserGroup,
)
from bot.catalog_yaml import (
    CatalogError,
    Path_,
    _errors_from,
    _line_for,
    _line_number,
    _LineMapper,
    _YAMLProblem,
)
from bot.rollback.assess import Signal, Thresholds
from bot.rollback.plan import Plan, PlanInputs, custom_plan, default_plan

__all__ = [
    "E164",
    "LEVEL_SLA_MINUTES",
    "SERVICE_NAME",
    "SLACK_CHANNEL",
    "SLACK_USER",
    "SLACK_USERGROUP",
    "STRATEGY_SECTIONS",
    "ApprovalPolicy",
    "Approver",
    "BlueGreen",
    "Canary",
    "CanaryTraffic",
    "Catalog",
    "CatalogError",
    "CatalogSpec",
    "Defaults",
    "ErrorRateThresholds",
    "HttpRollback",
    "LatencyThresholds",
    "Notifications",
    "OncallContact",
    "Path_",
    "PhaseName",
    "PlanError",
    "PlanStep",
    "PointOfNoReturn",
    "PromQL",
    "PromQLSignal",
    "Service",
    "ServiceName",
    "ServiceSpec",
    "SessionsThresholds",
    "SlackUserId",
    "Strategy",
    "ThresholdOverrides",
    "UserGroup",
    "load_catalog",
    "parse_catalog",
]


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
    mapper = _LineMapper(source)
    try:
        data = mapper.data(root)
    except _YAMLProblem as exc:
        raise CatalogError([f"{source}:{exc.line}: {exc}"]) from None
    errors = mapper.errors
    if not isinstance(data, dict):
        raise CatalogError([f"{source}:1: the catalog must be a mapping with a services: section"])
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        errors.extend(_errors_from(exc, mapper.lines, source))
    if errors:
        raise CatalogError(sorted(errors, key=_line_number))
    catalog = _resolve(spec, source)
    contradictions = list(_contradictory_thresholds(catalog, mapper.lines))
    if contradictions:
        raise CatalogError(contradictions)
    warnings = tuple(
        f"{source}:{_line_for(('services', name, 'strategy'), mapper.lines)}: warning:"
        f" services.{name}: strategy {svc.spec.strategy} needs a {key}: section before"
        " a rollback can run"
        for name, svc in catalog.services.items()
        if (key := svc.spec.missing_strategy_section)
    ) + tuple(_unreachable_approvals(catalog, mapper.lines))
    return replace(catalog, warnings=warnings)


def _unreachable_approvals(catalog: Catalog, lines: Mapping[Path_, int]) -> Iterator[str]:
    """A planned rollback that can never get enough approvals: say so before anyone waits."""
    for name, svc in catalog.services.items():
        users = [a for a in svc.spec.approvers if isinstance(a, str)]
        if len(users) < len(svc.spec.approvers):
            continue  # a user group may have any number of members
        needed = svc.approval.min_approvals
        # with the two-person rule an approver who requested cannot count
        available = len(users) - (1 if svc.approval.two_person_rule and users else 0)
        if users and needed > available:
            line = _line_for(("services", name, "approvers"), lines)
            yield (
                f"{catalog.source}:{line}: warning: services.{name}: approval needs"
                f" {needed} approver(s) but only {available} other than the requester are"
                " listed, so a request by an approver can never be approved"
            )


def _contradictory_thresholds(catalog: Catalog, lines: Mapping[Path_, int]) -> Iterator[str]:
    """A high threshold above the critical one would never fire critical: say so."""
    for name, service in catalog.services.items():
        t = service.thresholds
        problems = []
        if t.error_rate_high > t.error_rate_critical:
            problems.append("error_rate: high is above critical")
        if not t.latency_p95_medium <= t.latency_p95_high <= t.latency_p95_critical:
            problems.append("latency_p95_seconds: needs medium ≤ high ≤ critical")
        for problem in problems:
            line = _line_for(("services", name, "thresholds"), lines)
            yield f"{catalog.source}:{line}: services.{name}.thresholds: {problem}"


_M = TypeVar("_M", bound=BaseModel)


def _overlay(default: _M, override: _M | None) -> _M:
    """The default section with only the fields the service wrote replaced."""
    if override is None:
        return default
    return default.model_copy(update=override.model_dump(exclude_unset=True))


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
            approval=_overlay(d.approval, s.approval),
            notifications=_overlay(d.notifications, s.notifications),
            templates={**d.templates, **s.templates},
            window_grace_minutes=d.window_grace_minutes,
            review_reminder_hours=d.review_reminder_hours,
            timezone=s.timezone or d.timezone,
        )
        for name, s in spec.services.items()
    }
    return Catalog(source=source, services=services)


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
