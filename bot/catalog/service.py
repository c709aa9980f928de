"""The resolved catalog the bot runs on: :class:`Service` (a service's spec with the defaults
applied, its plan, its regions and its staging twin) and :class:`Catalog`. Built by
:mod:`bot.catalog.load`; read everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from bot.catalog.drills import Drills
from bot.catalog.regions import Region
from bot.catalog.spec import (
    ApprovalPolicy,
    HttpRollback,
    Notifications,
    ServiceSpec,
    StatusPage,
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
        production is left out: signals and health URL (the staging one is used), the deployment
        API of strategy http (``staging.http``'s rollback endpoint is used), the point of no
        return (production revision numbers), custom phases (a rehearsal reads them from the
        service, see ``bot.rehearsal.plan``), the guard and the on-call."""
        st = self.spec.staging
        if st is None:
            return None
        context, namespace = st.context or self.context, st.namespace or self.namespace
        h = st.http  # the staging deployment API: production's http_rollback is never kept
        http = HttpRollback(url=h.url, method=h.method, status_url=h.status_url) if h else None
        spec = self.spec.model_copy(
            update={
                "context": context,
                "namespace": namespace,
                "deployment": st.deployment or self.spec.deployment,
                "health_url": st.health_url,
                "signals": {},
                "http_rollback": http,
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
    staging_lines: Mapping[str, int] = field(default_factory=dict)  # service → its staging: line

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
