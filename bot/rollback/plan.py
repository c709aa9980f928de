"""Rollback plans: phases of steps (seed 001 phase names), built-in plans per strategy, SLA.

Pure: a plan is data. The engine persists it step by step and the step modules execute it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PHASES = (
    "preparation",
    "stop_traffic",
    "database",
    "application",
    "cache",
    "traffic_restoration",
    "verification",
    "cleanup",
)
PHASE_TITLES = {
    "preparation": "Preparation",
    "stop_traffic": "Stop traffic to the new version",
    "database": "Database rollback",
    "application": "Application rollback",
    "cache": "Cache invalidation",
    "traffic_restoration": "Traffic restoration",
    "verification": "Verification",
    "cleanup": "Cleanup",
}

DEFAULT_STEP_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class StepRules:
    """What the planner and the catalog check know of a step kind.

    The execution table (``bot/execution/steps/table.py``) pairs every kind here with how it
    runs and how the dry run describes it; a kind missing there stops the bot at import.
    """

    title: str  # the step's name when a catalog plan gives none
    required: frozenset[str] = frozenset()  # parameters a catalog plan must give
    optional: frozenset[str] = frozenset()
    timeout_seconds: float = DEFAULT_STEP_TIMEOUT_SECONDS


def _rules(
    title: str, *, required: str = "", optional: str = "", timeout: float | None = None
) -> StepRules:
    """``required`` and ``optional`` are space-separated parameter names."""
    return StepRules(
        title,
        frozenset(required.split()),
        frozenset(optional.split()),
        DEFAULT_STEP_TIMEOUT_SECONDS if timeout is None else timeout,
    )


STEP_RULES: dict[str, StepRules] = {
    "snapshot": _rules("Snapshot", required="objects"),
    "rollout_undo": _rules("Roll back the deployment", optional="deployment to_revision"),
    "set_image": _rules("Set the image", required="container image", optional="deployment"),
    "switch_selector": _rules("Switch the Service selector", required="service selector"),
    "scale": _rules("Scale", required="replicas", optional="deployment"),
    "restart": _rules("Restart", optional="deployment"),
    "rollout_abort": _rules("Abort the Argo Rollout's update", optional="deployment"),
    "shift_traffic": _rules(
        "Shift traffic",
        required="traffic",
        optional="to_percent step_percent gate_query gate_below gate_wait_seconds",
        timeout=1800.0,
    ),
    "run_job": _rules(
        "Run a Job",
        required="job",
        optional="job_name ttl_seconds_after_finished",
        timeout=1800.0,
    ),
    "wait_rollout": _rules(
        "Wait for the rollout", optional="deployment min_available", timeout=600.0
    ),
    "http_check": _rules("HTTP check", required="url", optional="expect_status"),
    "http_request": _rules("HTTP request", required="url", optional="method body expect_status"),
    "prometheus_gate": _rules("Metric gate", required="query", optional="below above"),
    "wait": _rules("Wait", required="seconds"),
    "manual_gate": _rules("Manual gate", optional="prompt", timeout=3600.0),
}
STEP_KINDS: tuple[str, ...] = tuple(STEP_RULES)


@dataclass(frozen=True)
class StepSpec:
    phase: str
    kind: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_STEP_TIMEOUT_SECONDS
    is_irreversible: bool = False
    region: str | None = None  # multi-region services: the region it acts on, and its wave
    wave: int | None = None


@dataclass(frozen=True)
class Plan:
    strategy: str
    steps: tuple[StepSpec, ...]

    @property
    def phases(self) -> list[str]:
        return [p for p in PHASES if any(s.phase == p for s in self.steps)]

    @property
    def regions(self) -> list[str]:
        """The regions the plan rolls back, in wave order (empty: a single-region service)."""
        return list(dict.fromkeys(s.region for s in self.steps if s.region is not None))

    @property
    def point_of_no_return(self) -> StepSpec | None:
        return next((s for s in self.steps if s.is_irreversible), None)


def step(phase: str, kind: str, name: str, **params: Any) -> StepSpec:
    rules = STEP_RULES.get(kind)
    default = rules.timeout_seconds if rules else DEFAULT_STEP_TIMEOUT_SECONDS
    timeout = float(params.pop("timeout_seconds", default))
    irreversible = bool(params.pop("irreversible", False))
    return StepSpec(phase, kind, name, params, timeout, irreversible)


@dataclass(frozen=True)
class PlanInputs:
    """What a built-in plan needs to know about the service (resolved from the catalog)."""

    deployment: str
    strategy: str
    target_revision: str | None = None
    workload_kind: str = "Deployment"  # or "Rollout" (argoproj.io/v1alpha1)
    health_url: str | None = None
    error_rate_query: str | None = None
    error_rate_limit: float = 0.05
    blue_green: Mapping[str, Any] | None = None
    canary: Mapping[str, Any] | None = None
    http_rollback: Mapping[str, Any] | None = None


def _verification(inp: PlanInputs) -> list[StepSpec]:
    steps = []
    if inp.health_url:
        steps.append(step("verification", "http_check", "Health check", url=inp.health_url))
    if inp.error_rate_query:
        steps.append(
            step(
                "verification",
                "prometheus_gate",
                "Error rate back under the high threshold",
                query=inp.error_rate_query,
                below=inp.error_rate_limit,
            )
        )
    return steps


def _undo_steps(inp: PlanInputs) -> list[StepSpec]:
    d, revision = inp.deployment, inp.target_revision
    if inp.workload_kind == "Rollout":
        return _rollout_undo_steps(inp)
    return [
        step("preparation", "snapshot", "Snapshot the deployment", objects=[["Deployment", d]]),
        step(
            "application",
            "rollout_undo",
            f"Roll {d} back to revision {revision}" if revision else f"Roll {d} back",
            deployment=d,
            to_revision=revision,
        ),
        step("application", "wait_rollout", "Wait for the rollout", deployment=d),
    ]


def _rollout_undo_steps(inp: PlanInputs) -> list[StepSpec]:
    """An Argo Rollout: abort a running canary/blue-green update (traffic back to the stable
    ReplicaSet at once), then ``kubectl argo rollouts undo``, then wait for Healthy."""
    d, revision = inp.deployment, inp.target_revision
    return [
        step(
            "preparation",
            "snapshot",
            "Snapshot the rollout",
            objects=[["Rollout", d, "argoproj.io/v1alpha1"]],
        ),
        step("stop_traffic", "rollout_abort", f"Abort {d}'s running update", deployment=d),
        step(
            "application",
            "rollout_undo",
            f"Roll {d} back to revision {revision}" if revision else f"Roll {d} back",
            deployment=d,
            to_revision=revision,
        ),
        step("application", "wait_rollout", "Wait until the rollout is Healthy", deployment=d),
    ]


def _blue_green_steps(inp: PlanInputs) -> list[StepSpec]:
    d, bg = inp.deployment, dict(inp.blue_green or {})
    selector = {bg["selector_key"]: bg["stable"]}
    return [
        step(
            "preparation",
            "snapshot",
            "Snapshot the service and both colours",
            objects=[
                ["Service", bg["service"]],
                ["Deployment", d],
                ["Deployment", bg["candidate"]],
            ],
        ),
        # kubectl counts 0 replicas as rolled out: traffic must not go to a colour without pods
        step(
            "preparation",
            "wait_rollout",
            f"Stable colour {d} is ready",
            deployment=d,
            min_available=1,
        ),
        step(
            "stop_traffic",
            "switch_selector",
            f"Switch {bg['service']} to {bg['stable']}",
            service=bg["service"],
            selector=selector,
        ),
        _scale_to_zero(bg["candidate"]),
    ]


def _canary_steps(inp: PlanInputs) -> list[StepSpec]:
    c = dict(inp.canary or {})
    traffic = c["traffic"]
    return [
        step(
            "preparation",
            "snapshot",
            "Snapshot the traffic split and the canary",
            objects=[
                [traffic["kind"], traffic["name"], traffic["api_version"]],
                ["Deployment", c["deployment"]],
            ],
        ),
        step(
            "stop_traffic",
            "shift_traffic",
            "Shift traffic off the canary",
            traffic=traffic,
            to_percent=0,
            step_percent=c.get("step_percent", 100),
            gate_query=inp.error_rate_query if c.get("step_percent", 100) < 100 else None,
            gate_below=inp.error_rate_limit,
            gate_wait_seconds=c.get("gate_wait_seconds", 30.0),
        ),
        _scale_to_zero(c["deployment"]),
    ]


def _scale_to_zero(deployment: str) -> StepSpec:
    """The cleanup of a colour or canary that served the bad release."""
    return step("cleanup", "scale", f"Scale {deployment} to 0", deployment=deployment, replicas=0)


def _http_steps(inp: PlanInputs) -> list[StepSpec]:
    h = dict(inp.http_rollback or {})
    steps = [
        step(
            "application",
            "http_request",
            "Call the deployment API's rollback endpoint",
            url=h["url"],
            method=h.get("method", "POST"),
        )
    ]
    if h.get("status_url"):
        steps.append(
            step("verification", "http_check", "Deployment API status", url=h["status_url"])
        )
    return steps


_STRATEGY_STEPS: dict[str, Callable[[PlanInputs], list[StepSpec]]] = {
    "undo": _undo_steps,
    "blue-green": _blue_green_steps,
    "canary": _canary_steps,
    "http": _http_steps,
}


def default_plan(inp: PlanInputs) -> Plan:
    """The built-in plan of a strategy (seed 000 immediate procedure, seed 004 canary, seed 003)."""
    build = _STRATEGY_STEPS.get(inp.strategy)
    if build is None:
        raise ValueError(f"unknown strategy {inp.strategy!r}")
    ordered = sorted([*build(inp), *_verification(inp)], key=lambda s: PHASES.index(s.phase))
    return Plan(inp.strategy, tuple(ordered))


def custom_plan(strategy: str, phases: Mapping[str, Sequence[Mapping[str, Any]]]) -> Plan:
    """A plan written in the catalog: ``phases: {phase: [{kind, name, ...params}]}``."""
    steps = [
        step(
            phase,
            str(s["kind"]),
            str(s.get("name") or _title(str(s["kind"]))),
            **{k: v for k, v in s.items() if k not in ("kind", "name")},
        )
        for phase in PHASES
        for s in phases.get(phase, ())
    ]
    return Plan(strategy, tuple(steps))


def _title(kind: str) -> str:
    rules = STEP_RULES.get(kind)
    return rules.title if rules else kind
