"""What ``check-config`` says about ``workload: {kind: Rollout}``: which strategies and step
kinds apply to an Argo Rollout, with ``file:line`` errors.

An Argo Rollout runs its own blue-green and canary updates (its controller owns the Services,
the traffic split and the ReplicaSets), so the bot's blue-green and canary strategies, which
switch a Service selector and scale a second Deployment, do not apply: for a Rollout the bot's
``undo`` aborts a running update and goes back to the previous revision, as
``kubectl argo rollouts abort`` and ``undo`` do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bot.catalog.spec import ServiceSpec
from bot.catalog.yaml_lines import Path_, line_for

ROLLOUT_STRATEGIES = ("undo", "http")
# step kinds that patch an apps/v1 Deployment: on a Rollout service they need another name
DEPLOYMENT_STEPS = frozenset({"set_image", "scale", "restart"})
ROLLOUT_ONLY_STEPS = frozenset({"rollout_abort"})


def workload_problems(
    source: str, services: Mapping[str, ServiceSpec], lines: Mapping[Path_, int]
) -> list[str]:
    """Errors for strategies and steps that do not fit the service's workload kind."""
    out = []
    for name, spec in services.items():
        for path, problem in _problems(spec):
            line = line_for(("services", name, *path), lines)
            out.append(f"{source}:{line}: services.{name}: {problem}")
    return out


def _problems(spec: ServiceSpec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    is_rollout = spec.workload.kind == "Rollout"
    if is_rollout and spec.phases is None and spec.strategy not in ROLLOUT_STRATEGIES:
        yield (
            ("strategy",),
            f"strategy {spec.strategy} does not apply to an Argo Rollout (workload kind"
            " Rollout): its controller runs blue-green and canary updates itself. Use strategy"
            " undo (aborts a running update, then `kubectl argo rollouts undo`) or http, or"
            " write phases: with rollout_abort, rollout_undo and wait_rollout steps",
        )
    for phase, steps in (spec.phases or {}).items():
        for index, step in enumerate(steps):
            path = ("phases", phase, index, "kind")
            if not is_rollout and step.kind in ROLLOUT_ONLY_STEPS:
                yield (
                    path,
                    f"step kind {step.kind} aborts an Argo Rollout's update and needs"
                    " workload: {kind: Rollout}",
                )
            extra = step.model_extra or {}
            if is_rollout and step.kind in DEPLOYMENT_STEPS and not extra.get("deployment"):
                yield (
                    path,
                    f"step kind {step.kind} patches an apps/v1 Deployment, and this service's"
                    f" {spec.deployment} is an Argo Rollout: give the step the deployment: it"
                    " acts on, or use rollout_undo",
                )
