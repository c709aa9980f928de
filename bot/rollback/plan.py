"""Rollback plans: phases of steps (seed 001 phase names), built-in plans per strategy, SLA.

Pure: a plan is data. The engine persists it step by step and the step modules execute it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

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

StepKind = Literal[
    "snapshot",
    "rollout_undo",
    "set_image",
    "switch_selector",
    "scale",
    "restart",
    "shift_traffic",
    "run_job",
    "wait_rollout",
    "http_check",
    "http_request",
    "prometheus_gate",
    "wait",
    "manual_gate",
]
STEP_KINDS: tuple[str, ...] = get_args(StepKind)

# The parameters each step kind takes in a catalog plan: (required, optional).
STEP_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    "snapshot": ({"objects"}, set()),
    "rollout_undo": (set(), {"deployment", "to_revision"}),
    "set_image": ({"container", "image"}, {"deployment"}),
    "switch_selector": ({"service", "selector"}, set()),
    "scale": ({"replicas"}, {"deployment"}),
    "restart": (set(), {"deployment"}),
    "shift_traffic": (
        {"traffic"},
        {"to_percent", "step_percent", "gate_query", "gate_below", "gate_wait_seconds"},
    ),
    "run_job": ({"job"}, {"job_name", "ttl_seconds_after_finished"}),
    "wait_rollout": (set(), {"deployment", "min_available"}),
    "http_check": ({"url"}, {"expect_status"}),
    "http_request": ({"url"}, {"method", "body", "expect_status"}),
    "prometheus_gate": ({"query"}, {"below", "above"}),
    "wait": ({"seconds"}, set()),
    "manual_gate": (set(), {"prompt"}),
}

DEFAULT_STEP_TIMEOUT_SECONDS = {
    "wait_rollout": 600.0,
    "run_job": 1800.0,
    "manual_gate": 3600.0,
    "shift_traffic": 1800.0,
}


@dataclass(frozen=True)
class StepSpec:
    phase: str
    kind: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 120.0
    is_irreversible: bool = False


@dataclass(frozen=True)
class Plan:
    strategy: str
    steps: tuple[StepSpec, ...]

    @property
    def phases(self) -> list[str]:
        return [p for p in PHASES if any(s.phase == p for s in self.steps)]

    @property
    def point_of_no_return(self) -> StepSpec | None:
        return next((s for s in self.steps if s.is_irreversible), None)


def step(phase: str, kind: str, name: str, **params: Any) -> StepSpec:
    timeout = float(params.pop("timeout_seconds", DEFAULT_STEP_TIMEOUT_SECONDS.get(kind, 120.0)))
    irreversible = bool(params.pop("irreversible", False))
    return StepSpec(phase, kind, name, params, timeout, irreversible)


@dataclass(frozen=True)
class PlanInputs:
    """What a built-in plan needs to know about the service (resolved from the catalog)."""

    deployment: str
    strategy: str
    target_revision: str | None = None
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


def default_plan(inp: PlanInputs) -> Plan:
    """The built-in plan of a strategy (seed 000 immediate procedure, seed 004 canary, seed 003)."""
    d = inp.deployment
    steps: list[StepSpec] = []
    if inp.strategy == "undo":
        revision = inp.target_revision
        steps += [
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
    elif inp.strategy == "blue-green":
        bg = dict(inp.blue_green or {})
        selector = {bg["selector_key"]: bg["stable"]}
        steps += [
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
            step(
                "cleanup",
                "scale",
                f"Scale {bg['candidate']} to 0",
                deployment=bg["candidate"],
                replicas=0,
            ),
        ]
    elif inp.strategy == "canary":
        c = dict(inp.canary or {})
        traffic = c["traffic"]
        steps += [
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
            step(
                "cleanup",
                "scale",
                f"Scale {c['deployment']} to 0",
                deployment=c["deployment"],
                replicas=0,
            ),
        ]
    elif inp.strategy == "http":
        h = dict(inp.http_rollback or {})
        steps.append(
            step(
                "application",
                "http_request",
                "Call the deployment API's rollback endpoint",
                url=h["url"],
                method=h.get("method", "POST"),
            )
        )
        if h.get("status_url"):
            steps.append(
                step("verification", "http_check", "Deployment API status", url=h["status_url"])
            )
    else:
        raise ValueError(f"unknown strategy {inp.strategy!r}")
    ordered = sorted([*steps, *_verification(inp)], key=lambda s: PHASES.index(s.phase))
    return Plan(inp.strategy, tuple(ordered))


STEP_TITLES = {
    "snapshot": "Snapshot",
    "rollout_undo": "Roll back the deployment",
    "set_image": "Set the image",
    "switch_selector": "Switch the Service selector",
    "scale": "Scale",
    "restart": "Restart",
    "shift_traffic": "Shift traffic",
    "run_job": "Run a Job",
    "wait_rollout": "Wait for the rollout",
    "http_check": "HTTP check",
    "http_request": "HTTP request",
    "prometheus_gate": "Metric gate",
    "wait": "Wait",
    "manual_gate": "Manual gate",
}


def custom_plan(strategy: str, phases: Mapping[str, Sequence[Mapping[str, Any]]]) -> Plan:
    """A plan written in the catalog: ``phases: {phase: [{kind, name, ...params}]}``."""
    steps = [
        step(
            phase,
            str(s["kind"]),
            str(s.get("name") or STEP_TITLES.get(str(s["kind"]), s["kind"])),
            **{k: v for k, v in s.items() if k not in ("kind", "name")},
        )
        for phase in PHASES
        for s in phases.get(phase, ())
    ]
    return Plan(strategy, tuple(steps))
