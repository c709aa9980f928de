"""``rollback.yaml`` → :class:`Catalog`. Errors carry ``file:line``; unknown keys are errors.

The YAML is composed into nodes first so each value keeps its line; pydantic validates the plain
data and its error locations are mapped back to those lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.rollback.assess import PROMQL_SIGNALS, Signal, Thresholds
from bot.rollback.plan import (
    PHASES,
    STEP_KINDS,
    STEP_PARAMS,
    Plan,
    PlanInputs,
    custom_plan,
    default_plan,
)

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")
SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

Strategy = Literal["undo", "blue-green", "canary", "http"]
STRATEGY_SECTIONS = {"blue-green": "blue_green", "canary": "canary", "http": "http_rollback"}
PhaseName = Literal[
    "preparation",
    "stop_traffic",
    "database",
    "application",
    "cache",
    "traffic_restoration",
    "verification",
    "cleanup",
]
PromQLSignal = Literal["error_rate", "latency_p95_seconds", "user_sessions_per_min", "db_up"]
assert {Signal(s) for s in get_args(PromQLSignal)} == set(PROMQL_SIGNALS)
assert get_args(PhaseName) == PHASES


class CatalogError(Exception):
    """The catalog is invalid; ``errors`` are ``file:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorRateThresholds(_Strict):
    critical: float | None = Field(default=None, ge=0, le=1)
    high: float | None = Field(default=None, ge=0, le=1)


class LatencyThresholds(_Strict):
    critical: float | None = Field(default=None, gt=0)
    high: float | None = Field(default=None, gt=0)
    medium: float | None = Field(default=None, gt=0)


class SessionsThresholds(_Strict):
    high: float | None = Field(default=None, ge=0)


class ThresholdOverrides(_Strict):
    """Overrides of the matrix thresholds; what is left out keeps the inherited value."""

    error_rate: ErrorRateThresholds = ErrorRateThresholds()
    latency_p95_seconds: LatencyThresholds = LatencyThresholds()
    user_sessions_per_min: SessionsThresholds = SessionsThresholds()

    def apply(self, base: Thresholds) -> Thresholds:
        pairs = {
            "error_rate_critical": self.error_rate.critical,
            "error_rate_high": self.error_rate.high,
            "latency_p95_critical": self.latency_p95_seconds.critical,
            "latency_p95_high": self.latency_p95_seconds.high,
            "latency_p95_medium": self.latency_p95_seconds.medium,
            "user_sessions_high": self.user_sessions_per_min.high,
        }
        values = {k: v for k, v in pairs.items() if v is not None}
        return Thresholds(**{**base.__dict__, **values})


def _user_id(v: str) -> str:
    if not SLACK_USER.match(v):
        raise ValueError(f"{v!r} is not a Slack user id (U… or W…)")
    return v


class UserGroup(_Strict):
    usergroup: str

    @field_validator("usergroup")
    @classmethod
    def _group_id(cls, v: str) -> str:
        if not SLACK_USERGROUP.match(v):
            raise ValueError(f"{v!r} is not a Slack user group id (S…)")
        return v


SlackUserId = Annotated[str, AfterValidator(_user_id)]


def _service_name(v: str) -> str:
    if not SERVICE_NAME.match(v):
        raise ValueError(f"service name {v!r} must be lowercase letters, digits and dashes")
    return v


def _promql(v: str) -> str:
    if not v.strip():
        raise ValueError("the query is empty")
    return v


ServiceName = Annotated[str, AfterValidator(_service_name)]
PromQL = Annotated[str, AfterValidator(_promql)]
# An approver is a user id or {usergroup: S…}; the discriminator keeps errors to the right branch.
Approver = Annotated[
    Annotated[SlackUserId, Tag("user-id")] | Annotated[UserGroup, Tag("user-group")],
    Discriminator(lambda v: "user-group" if isinstance(v, dict | UserGroup) else "user-id"),
]


class OncallContact(_Strict):
    name: str = Field(min_length=1)
    phone: str
    after_minutes: int = Field(default=0, ge=0)

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str) -> str:
        if not E164.match(v):
            raise ValueError("phone must be in E.164 form, e.g. +15550100001")
        return v


def _channel_id(v: str | None) -> str | None:
    if v is not None and not SLACK_CHANNEL.match(v):
        raise ValueError(f"{v!r} is not a Slack channel id (C… or G…)")
    return v


class BlueGreen(_Strict):
    """Blue-green: the Service whose selector picks the live colour (seed 000 procedure)."""

    service: str
    selector_key: str = "version"
    stable: str = Field(description="the colour to go back to, e.g. blue")
    candidate: str = Field(description="the Deployment of the bad colour, scaled to 0 after")


class CanaryTraffic(_Strict):
    """Where the canary's traffic weight lives (an Istio VirtualService in seed 004)."""

    api_version: str = "networking.istio.io/v1beta1"
    kind: str = "VirtualService"
    name: str
    stable_weight_path: str = "/spec/http/0/route/0/weight"
    canary_weight_path: str = "/spec/http/0/route/1/weight"


class Canary(_Strict):
    deployment: str
    traffic: CanaryTraffic
    step_percent: int = Field(default=100, ge=1, le=100)
    gate_wait_seconds: float = Field(default=30.0, ge=0)  # soak before each metric gate


class HttpRollback(_Strict):
    """A deployment API with a rollback endpoint (seed 003: POST /deployment/rollback)."""

    url: str
    method: Literal["POST", "PUT"] = "POST"
    status_url: str | None = None


class PlanStep(BaseModel):
    """One step of a catalog plan; its parameters depend on ``kind`` (see STEP_PARAMS)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    name: str | None = None
    irreversible: bool = False
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _params_of_kind(self) -> PlanStep:
        if self.kind not in STEP_PARAMS:
            raise ValueError(f"unknown step kind {self.kind!r} (known: {', '.join(STEP_KINDS)})")
        required, optional = STEP_PARAMS[self.kind]
        given = set(self.model_extra or {})
        if missing := required - given:
            raise ValueError(f"step kind {self.kind!r} needs {', '.join(sorted(missing))}")
        if unknown := given - required - optional:
            raise ValueError(f"step kind {self.kind!r} does not take {', '.join(sorted(unknown))}")
        return self

    def as_dict(self) -> dict[str, Any]:
        extra = dict(self.model_extra or {})
        out: dict[str, Any] = {"kind": self.kind, **extra, "irreversible": self.irreversible}
        if self.name:
            out["name"] = self.name
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        return out


class PointOfNoReturn(_Strict):
    """Revisions at or after ``revision`` cannot be rolled back below it (e.g. irreversible
    migrations); the runbook's answer is a forward fix."""

    revision: int = Field(ge=1)
    reason: str


# Seed 001 "Rollback Time SLAs": operation level → minutes a rollback may take.
LEVEL_SLA_MINUTES = {2: 30, 3: 15, 4: 10}


def _timezone(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{v!r} is not a time zone: use an IANA name like Europe/Berlin") from None
    return v


def _channel_ids(v: list[str]) -> list[str]:
    for channel in v:
        _channel_id(channel)
    return v


class ApprovalPolicy(_Strict):
    """Who must agree before a planned rollback runs (two-person rule by default)."""

    min_approvals: int = Field(default=1, ge=1, le=10)
    two_person_rule: bool = True
    expiry_minutes: int = Field(default=30, gt=0, le=7 * 24 * 60)


class Notifications(_Strict):
    """Where critical notices go and how often the incident channel hears from the bot."""

    critical_channels: list[str] = []
    incident_channel: bool = True
    update_every_minutes: float = Field(default=15, gt=0)
    status_page_url: str | None = None

    _check_channels = field_validator("critical_channels")(_channel_ids)


class Defaults(_Strict):
    channel: str | None = None
    sla_minutes: int = Field(default=15, gt=0)
    namespace: str = "default"
    context: str | None = None
    health_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    thresholds: ThresholdOverrides = ThresholdOverrides()
    approval: ApprovalPolicy = ApprovalPolicy()
    notifications: Notifications = Notifications()
    templates: dict[str, str] = {}  # template name → Jinja2 source (see bot/notify/templates.py)
    window_grace_minutes: float = Field(default=10, ge=0)  # a window missed by more is reported
    review_reminder_hours: float = Field(default=24, gt=0)
    timezone: str = "UTC"  # IANA name: `--at HH:MM` and windows are read and shown in it

    _check_channel = field_validator("channel")(_channel_id)
    _check_timezone = field_validator("timezone")(_timezone)


class ServiceSpec(_Strict):
    context: str | None = None
    namespace: str | None = None
    deployment: str = Field(min_length=1)
    strategy: Strategy = "undo"
    health_url: str | None = None
    health_timeout_seconds: float | None = Field(default=None, gt=0, le=60)
    signals: dict[PromQLSignal, PromQL] = {}
    thresholds: ThresholdOverrides = ThresholdOverrides()
    approvers: list[Approver] = []
    responders: list[SlackUserId] = []
    oncall: list[OncallContact] = []
    channel: str | None = None
    sla_minutes: int | None = Field(default=None, gt=0)
    level: Literal[2, 3, 4] | None = None  # seed 001 operation level: SLA 30 / 15 / 10 minutes
    approval: ApprovalPolicy | None = None  # fields given here override defaults.approval
    notifications: Notifications | None = None  # fields override defaults.notifications
    templates: dict[str, str] = {}  # per-template overrides of defaults.templates
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    http_rollback: HttpRollback | None = None
    phases: dict[PhaseName, list[PlanStep]] | None = None
    point_of_no_return: PointOfNoReturn | None = None
    timezone: str | None = None  # overrides defaults.timezone

    _check_timezone = field_validator("timezone")(_timezone)

    _check_channel = field_validator("channel")(_channel_id)

    @property
    def missing_strategy_section(self) -> str | None:
        """The section the strategy needs before a rollback can run, when it is missing."""
        key = STRATEGY_SECTIONS.get(self.strategy)
        if key and getattr(self, key) is None and self.phases is None:
            return key
        return None

    @field_validator("health_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("health_url must be an http:// or https:// URL")
        return v

    @field_validator("oncall")
    @classmethod
    def _ladder_order(cls, v: list[OncallContact]) -> list[OncallContact]:
        minutes = [c.after_minutes for c in v]
        if minutes != sorted(minutes):
            raise ValueError("oncall levels must be listed in order of after_minutes")
        return v


class CatalogSpec(_Strict):
    defaults: Defaults = Defaults()
    services: dict[ServiceName, ServiceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_service_has_a_channel(self) -> CatalogSpec:
        if self.defaults.channel is None:
            missing = [n for n, s in self.services.items() if s.channel is None]
            if missing:
                raise ValueError(
                    "no channel for " + ", ".join(missing) + ": set defaults.channel or channel"
                )
        return self


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


# --- YAML with line numbers ------------------------------------------------------------------

Path_ = tuple[str | int | float, ...]


class _YAMLProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _LineMapper:
    """Turns a composed YAML node tree into plain data, remembering the line of every path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.errors: list[str] = []
        self._constructor = yaml.SafeLoader("")

    def data(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _YAMLProblem(line, "merge keys (<<) are not supported: write keys out")
                key = self.data(key_node, (*path, "<key>"))
                if not isinstance(key, str | int | float | bool):
                    raise _YAMLProblem(line, "a key must be a plain name, not a list or mapping")
                if key in out:
                    self.errors.append(f"{self.source}:{line}: duplicate key {key!r}")
                self.lines[(*path, key)] = line
                out[key] = self.data(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.data(n, (*path, i)) for i, n in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # e.g. an unknown tag like !secret
            problem = getattr(exc, "problem", None) or str(exc)
            raise _YAMLProblem(node.start_mark.line + 1, problem) from None


def _line_for(loc: tuple[Any, ...], lines: Mapping[Path_, int]) -> int:
    for end in range(len(loc), -1, -1):
        key = tuple(loc[:end])
        if key in lines:
            return lines[key]
    return 1


_UNION_TAGS = {"user-id", "user-group"}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds union tags and "[key]" markers to locations; they mean nothing to a user
    return tuple(
        p for p in loc if not (isinstance(p, str) and (p in _UNION_TAGS or p.endswith("[key]")))
    )


def _errors_from(exc: ValidationError, lines: Mapping[Path_, int], src: str) -> Iterator[str]:
    seen: set[str] = set()
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        where = ".".join(str(p) for p in loc) or "catalog"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (see rollback.example.yaml for the accepted keys)"
        text = f"{src}:{_line_for(loc, lines)}: {where}: {msg}"
        if text not in seen:
            seen.add(text)
            yield text


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


_LINE = re.compile(r":(\d+): ")


def _line_number(error: str) -> int:
    m = _LINE.search(error)
    return int(m.group(1)) if m else 0


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
