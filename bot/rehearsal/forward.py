"""The roll-forward of a rehearsal: for each step of the rollback that writes, the step that puts
back what it changed, with every value taken from one read of staging when the rehearsal is
planned (:class:`StagingState`).

Both halves are pinned to that read: the rollback step expects the value staging had, and its
inverse expects the value the rollback set (``expect_selector``, ``expect_replicas``,
``expect_percent``, ``expect_image``, ``expect_template``), so a change in staging in between
makes a step refuse rather than put back something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.adapters.kube.values import UndoPlan
from bot.catalog.load import Service
from bot.rollback.plan import StepSpec, step
from bot.rollback.safety import Refusal, release_label
from storage.models import RollbackStep

# The phase the roll-forward's steps are shown in. The rollback's own steps keep their phases
# (a cleanup among them), so a roll-forward step is told by its ``roll_forward`` param; rehearsals
# stored before that param have none, and there every cleanup step is the roll-forward.
ROLL_FORWARD_PHASE = "cleanup"
ROLL_FORWARD = "roll_forward"


def forward_step(kind: str, name: str, **params: Any) -> StepSpec:
    """A step of the roll-forward (marked as such in its params)."""
    return step(ROLL_FORWARD_PHASE, kind, name, **params, **{ROLL_FORWARD: True})


def rolls_forward(steps: Sequence[RollbackStep]) -> list[bool]:
    """For each stored step of a rehearsal, whether it belongs to the roll-forward."""
    marks = [bool((s.detail.get("params") or {}).get(ROLL_FORWARD)) for s in steps]
    if any(marks):
        return marks
    return [s.phase == ROLL_FORWARD_PHASE for s in steps]  # stored before the marker


@dataclass(frozen=True)
class StagingState:
    """What a rehearsal's steps will change, as staging has it before the rehearsal."""

    selectors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # Service → selector
    replicas: Mapping[str, int] = field(default_factory=dict)  # Deployment → replicas
    weights: Mapping[str, int] = field(default_factory=dict)  # "Kind/name" → canary weight
    images: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (Deployment, container)
    undos: Mapping[str, UndoPlan] = field(default_factory=dict)  # Deployment → its undo (from → to)
    # every Deployment the plan names → its label selector: which one a Service's selector picks
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    canary: str | None = None  # the canary Deployment (the catalog's canary: section)


@dataclass(frozen=True)
class Inverted:
    """One rollback step pinned to the state read, and the steps that put back what it
    changed (none when it changes nothing); ``change``: what it changes, in words."""

    pinned: StepSpec
    forward: tuple[StepSpec, ...] = ()
    change: str = ""


def traffic_key(traffic: Mapping[str, Any]) -> str:
    return f"{traffic['kind']}/{traffic['name']}"


def _deployment(s: StepSpec, default: str) -> str:
    return str(s.params.get("deployment") or default)


def _with(s: StepSpec, **params: Any) -> StepSpec:
    return replace(s, params={**s.params, **params})


def _ready(deployment: str, what: str) -> StepSpec:
    """kubectl counts 0 replicas as rolled out: traffic must not go back to a colour (or a
    canary) without a ready pod."""
    return forward_step("wait_rollout", what, deployment=deployment, min_available=1)


def _switch_selector(s: StepSpec, state: StagingState, default: str) -> Inverted:
    service = str(s.params["service"])
    before = dict(state.selectors[service])
    wanted = {str(k): str(v) for k, v in s.params["selector"].items()}
    changed = {k: v for k, v in wanted.items() if before.get(k) != v}
    if not changed:
        return Inverted(_with(s, expect_selector=wanted))  # pinned: already so when planned
    if missing := [k for k in changed if k not in before]:
        raise Refusal(
            f"Service {service} in staging has no selector key {', '.join(missing)}: the"
            " rollback would add it and the roll-forward cannot take it away again. Give"
            f" {service} in staging the selector the rollback switches (add"
            f" {', '.join(missing)} to its selector and to its pods' labels), or rehearse a"
            " plan that switches a key it has"
        )
    back = {k: before[k] for k in changed}
    live = _selected(state, service, before, back)
    return Inverted(
        _with(s, expect_selector=back),
        (
            _ready(live, f"{live} is ready before traffic goes back to it"),
            forward_step(
                "switch_selector",
                f"Switch {service} back to {_pairs(back)}",
                service=service,
                selector=back,
                expect_selector=changed,
            ),
        ),
        f"Service {service} {_pairs(back)} → {_pairs(changed)}",
    )


def _selected(
    state: StagingState, service: str, selector: Mapping[str, str], keys: Mapping[str, str]
) -> str:
    """The Deployment Service ``service`` sends traffic to with ``selector`` (the one of the
    plan's whose labels carry the switched ``keys``); refused when none is known, or when it
    has no replica (the roll-forward would send traffic back to a colour without pods)."""
    found = [
        name
        for name, labels in state.labels.items()
        if all(labels.get(k) == v for k, v in keys.items())
        and all(labels.get(k, v) == v for k, v in selector.items())
    ]
    if len(found) != 1:
        known = ", ".join(sorted(state.labels)) or "none"
        raise Refusal(
            f"cannot tell which Deployment Service {service} sends traffic to in staging with"
            f" {_pairs(selector)} ({'several' if found else 'none'} of the plan's Deployments,"
            f" {known}, match): the roll-forward must wait for its pods before switching back."
            " Name that Deployment in a step of the plan (a wait_rollout with min_available: 1)"
        )
    _refuse_idle(state, found[0], f"Service {service} selects it ({_pairs(selector)})")
    return found[0]


def _refuse_idle(state: StagingState, deployment: str, why: str) -> None:
    if state.replicas.get(deployment) == 0:
        raise Refusal(
            f"{deployment} has 0 replicas in staging while {why}: scale it up first"
            f" (kubectl scale deployment/{deployment} --replicas=N), then rehearse"
        )


def _pairs(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def _scale(s: StepSpec, state: StagingState, default: str) -> Inverted:
    name = _deployment(s, default)
    before, wanted = state.replicas[name], int(s.params["replicas"])
    if before == wanted:
        return Inverted(_with(s, expect_replicas=before))  # pinned: already so when planned
    forward = [
        forward_step(
            "scale",
            f"Scale {name} back to {before}",
            deployment=name,
            replicas=before,
            expect_replicas=wanted,
        )
    ]
    if before > 0:
        forward.append(_ready(name, f"{name} is ready again"))
    return Inverted(
        _with(s, expect_replicas=before), tuple(forward), f"{name} {before} → {wanted} replicas"
    )


def _shift_traffic(s: StepSpec, state: StagingState, default: str) -> Inverted:
    traffic = s.params["traffic"]
    key, target = traffic_key(traffic), int(s.params.get("to_percent", 0))
    before = state.weights[key]
    pinned = _with(s, expect_percent=before, gate_query=None)  # no production metric gate
    if before == target:
        return Inverted(pinned)
    forward: list[StepSpec] = []
    if before > target:  # the roll-forward sends traffic back to the canary: it needs pods
        canary = state.canary
        if canary is None:
            raise Refusal(
                f"cannot tell which Deployment is the canary behind {key} in staging: the"
                " roll-forward must wait for its pods before sending traffic back. Give the"
                " catalog's canary: section (canary: {deployment: <name>, traffic: …})"
            )
        _refuse_idle(state, canary, f"{key} sends {before} % to the canary")
        forward.append(_ready(canary, f"{canary} is ready before traffic goes back to it"))
    back = forward_step(
        "shift_traffic",
        f"Shift {before} % back to the canary",
        traffic=traffic,
        to_percent=before,
        step_percent=100,
        expect_percent=target,
    )
    return Inverted(pinned, (*forward, back), f"{key} canary {before} % → {target} %")


def _set_image(s: StepSpec, state: StagingState, default: str) -> Inverted:
    name, container = _deployment(s, default), str(s.params["container"])
    before, wanted = state.images[(name, container)], str(s.params["image"])
    if before == wanted:
        return Inverted(_with(s, expect_image=before))  # pinned: already so when planned
    forward = (
        forward_step(
            "set_image",
            f"Set {name} {container} back to {before}",
            deployment=name,
            container=container,
            image=before,
            expect_image=wanted,
        ),
        forward_step("wait_rollout", f"Wait for {name}'s roll-forward", deployment=name),
    )
    return Inverted(
        _with(s, expect_image=before), forward, f"{name} {container} {before} → {wanted}"
    )


def _rollout_undo(s: StepSpec, state: StagingState, default: str) -> Inverted:
    name = _deployment(s, default)
    undo = state.undos[name]  # read with the state for each rollout_undo of the plan
    back, forth = release_label(undo.images_after), release_label(undo.images_before)
    pinned = replace(
        s,
        name=f"Roll {name} back to revision {undo.to_revision} ({back})",
        params={
            **s.params,
            "deployment": name,
            "to_revision": undo.to_revision,
            "expect_template": undo.to_template,
        },
    )
    forward = (
        forward_step(
            "rollout_undo",
            f"Roll {name} forward to revision {undo.from_revision}, where it started ({forth})",
            deployment=name,
            to_revision=undo.from_revision,
            expect_template=undo.from_template,
        ),
        forward_step("wait_rollout", "Wait for the roll-forward", deployment=name),
    )
    return Inverted(
        pinned, forward, f"{name} revision {undo.from_revision} ({forth}) → {undo.to_revision}"
    )


Invert = Callable[[StepSpec, StagingState, str], Inverted]


def written(s: StepSpec, twin: Service) -> str | None:
    """What a step that writes changes, in words (``the template of deployment api``, ``of
    Rollout api`` for a Rollout service's undo), or None: two steps writing the same thing
    cannot both be pinned to one read of staging."""
    name = _deployment(s, twin.spec.deployment)
    if s.kind == "rollout_undo" and twin.workload_kind == "Rollout":
        return f"the pod template of Rollout {name}"
    if s.kind in ("rollout_undo", "set_image"):
        return f"the pod template of deployment {name}"
    if s.kind == "scale":
        return f"the replica count of deployment {name}"
    if s.kind == "switch_selector":
        return f"the selector of Service {s.params['service']}"
    if s.kind == "shift_traffic":
        return f"the weights of {traffic_key(s.params['traffic'])}"
    return None


INVERSES: Mapping[str, Invert] = {
    "switch_selector": _switch_selector,
    "scale": _scale,
    "shift_traffic": _shift_traffic,
    "set_image": _set_image,
    "rollout_undo": _rollout_undo,
}
