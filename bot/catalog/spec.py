"""The pydantic models of ``rollback.yaml``: defaults, services and their sections."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from bot.catalog.auto_rollback import AutoRollback
from bot.catalog.drills import Drills
from bot.catalog.fields import (
    E164,
    SLACK_USERGROUP,
    STRATEGY_SECTIONS,
    PhaseName,
    PromQL,
    PromQLSignal,
    ServiceName,
    SlackUserId,
    Strategy,
    _channel_id,
    _channel_ids,
    _timezone,
)
from bot.catalog.regions import RegionSpec
from bot.rollback.assess import Thresholds
from bot.rollback.plan import STEP_KINDS, STEP_RULES

STATUS_PAGE_URL = re.compile(r"^https?://[^/\s:?#]+(:\d{1,5})?([/?#]\S*)?$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


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


class UserGroup(_Strict):
    usergroup: str

    @field_validator("usergroup")
    @classmethod
    def _group_id(cls, v: str) -> str:
        if not SLACK_USERGROUP.match(v):
            raise ValueError(f"{v!r} is not a Slack user group id (S…)")
        return v


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


class Workload(_Strict):
    """What ``deployment:`` names: an apps/v1 Deployment, or an Argo Rollout
    (argoproj.io/v1alpha1), which the bot rolls back as ``kubectl argo rollouts`` does."""

    kind: Literal["Deployment", "Rollout"] = "Deployment"


class PlanStep(BaseModel):
    """One step of a catalog plan; its parameters depend on ``kind`` (see STEP_RULES)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    name: str | None = None
    irreversible: bool = False
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _params_of_kind(self) -> PlanStep:
        rules = STEP_RULES.get(self.kind)
        if rules is None:
            raise ValueError(f"unknown step kind {self.kind!r} (known: {', '.join(STEP_KINDS)})")
        required, optional = rules.required, rules.optional
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


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _http_url(v: str | None) -> str | None:
    if v is not None and not v.startswith(("http://", "https://")):
        raise ValueError("health_url must be an http:// or https:// URL")
    return v


def _kube_name(pattern: re.Pattern[str], what: str) -> Callable[[str | None], str | None]:
    """A validator of an optional Kubernetes object name: ``'X' is not <what>``."""

    def check(v: str | None) -> str | None:
        if v is not None and not pattern.match(v):
            raise ValueError(f"{v!r} is not {what}")
        return v

    return check


def _any_http_url(v: str | None) -> str | None:
    if v is not None and not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v


class StagingHttp(_Strict):
    """Strategy ``http`` in staging: the staging deployment API's rollback endpoint and the
    endpoint that rolls it forward again. A rehearsal never calls production's http_rollback."""

    url: str
    method: Literal["POST", "PUT"] = "POST"
    status_url: str | None = None  # checked after the rollback and after the roll-forward
    forward_url: str
    forward_method: Literal["POST", "PUT"] = "POST"

    _check_urls = field_validator("url", "status_url", "forward_url")(_any_http_url)


class StagingTarget(_Strict):
    """The same service in staging, where ``/rollback drill <service> --rehearse`` runs a real
    rollback and rolls it forward again. What is left out is the production entry's value; it
    must differ from production in its context or its namespace (checked with the catalog)."""

    context: str | None = Field(default=None, min_length=1)
    namespace: str | None = None
    deployment: str | None = None
    health_url: str | None = None  # checked after the rollback and after the roll-forward
    http: StagingHttp | None = None  # strategy http only: the staging deployment API

    _check_namespace = field_validator("namespace")(
        _kube_name(_DNS_LABEL, "a namespace name (lowercase letters, digits, dashes)")
    )
    _check_deployment = field_validator("deployment")(
        _kube_name(_DNS_SUBDOMAIN, "a Deployment name (lowercase letters, digits, - and .)")
    )
    _check_health_url = field_validator("health_url")(_http_url)


# Seed 001 "Rollback Time SLAs": operation level → minutes a rollback may take.
LEVEL_SLA_MINUTES = {2: 30, 3: 15, 4: 10}


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


class StatusPage(_Strict):
    """A status page's webhook: the bot POSTs customer updates there once a person presses
    Publish (README, "Customer status updates", has the JSON body)."""

    url: str = Field(description="http(s):// URL the updates are POSTed to")
    token_env: str = Field(description="the environment variable holding the bearer token")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not STATUS_PAGE_URL.match(v):
            raise ValueError("status_page.url must be an http:// or https:// URL")
        return v

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(
                f"{v!r} is not an environment variable name (capital letters, digits and _,"
                " not a digit first), e.g. STATUS_PAGE_TOKEN"
            )
        return v


# What customers call a service, in their words (the customer update drafts say it).
CustomerName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\n]*$")]


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
    auto_rollback: AutoRollback = AutoRollback()
    drills: Drills = Drills()  # readiness drills: schedule, and how recent counts as tested
    customer_name: CustomerName | None = None  # else each service's name, capitalized
    status_page: StatusPage | None = None  # where Publish posts customer updates

    _check_channel = field_validator("channel")(_channel_id)
    _check_timezone = field_validator("timezone")(_timezone)


class ServiceSpec(_Strict):
    context: str | None = None
    namespace: str | None = None
    deployment: str = Field(min_length=1)
    workload: Workload = Workload()  # the kind of object `deployment` names
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
    # what an outage of this service costs the business, said in the critical notice (one line)
    impact: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\n]*$")
    approval: ApprovalPolicy | None = None  # fields given here override defaults.approval
    notifications: Notifications | None = None  # fields override defaults.notifications
    templates: dict[str, str] = {}  # per-template overrides of defaults.templates
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    http_rollback: HttpRollback | None = None
    phases: dict[PhaseName, list[PlanStep]] | None = None
    point_of_no_return: PointOfNoReturn | None = None
    timezone: str | None = None  # overrides defaults.timezone
    auto_rollback: AutoRollback | None = None  # keys given here override defaults.auto_rollback
    regions: list[RegionSpec] | None = Field(default=None, min_length=1)  # see catalog/regions
    waves: list[list[str]] | None = None  # default: one region per wave, in list order
    staging: StagingTarget | None = None  # where rehearsals run (/rollback drill … --rehearse)
    drills: Drills | None = None  # keys given here override defaults.drills
    customer_name: CustomerName | None = None  # overrides defaults.customer_name
    status_page: StatusPage | None = None  # replaces defaults.status_page

    _check_timezone = field_validator("timezone")(_timezone)

    _check_channel = field_validator("channel")(_channel_id)

    @property
    def missing_strategy_section(self) -> str | None:
        """The section the strategy needs before a rollback can run, when it is missing."""
        key = STRATEGY_SECTIONS.get(self.strategy)
        if key and getattr(self, key) is None and self.phases is None:
            return key
        return None

    _check_health_url = field_validator("health_url")(_http_url)

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
