"""``shift_traffic``: move a canary's weight on a traffic object (an Istio VirtualService, say)
by JSON Patch, in steps, with a metric gate between steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.execution.steps.base import (
    ACCEPTED,
    FIRST_POLL_SECONDS,
    DryRun,
    StepContext,
    StepFailed,
)
from bot.execution.steps.kubernetes.common import kube_errors
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec

MAX_REVERTED_PAUSE_SECONDS = 30.0  # shift_traffic's pause while something keeps undoing it


def _pointer(path: str) -> list[str]:
    """The tokens of a JSON Pointer (RFC 6901), ``~1`` and ``~0`` unescaped."""
    return [t.replace("~1", "/").replace("~0", "~") for t in path.strip("/").split("/")]


def _weight_at(obj: Mapping[str, Any], path: str, where: str) -> tuple[int, Any]:
    """(weight, its parent) at ``path``; an absent weight reads as 0.

    A real API server drops zero-valued fields and Istio clients leave out ``weight: 0``, so
    only the last member may be missing: a missing parent means the path is wrong.
    """
    *parents, last = _pointer(path)
    node: Any = obj
    for depth, part in enumerate(parents, 1):
        node = _child(node, part)
        if node is _MISSING:
            raise StepFailed(
                f"{where} has nothing at {'/' + '/'.join(parents[:depth])} (weight path {path}):"
                " check the traffic weight paths in the catalog"
            )
    if not isinstance(node, dict):
        raise StepFailed(f"{where}: weight path {path} does not end in an object member")
    value = node.get(last, 0)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise StepFailed(f"{where}: the value at {path} is not a weight: {value!r}")
    try:
        return int(value), node
    except ValueError:
        raise StepFailed(f"{where}: the value at {path} is not a weight: {value!r}") from None


_MISSING = object()


def _child(node: Any, part: str) -> Any:
    if isinstance(node, list):
        return node[int(part)] if part.isdigit() and int(part) < len(node) else _MISSING
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    return _MISSING


def traffic_weights(obj: Mapping[str, Any], where: str, stable: str, canary: str) -> list[int]:
    """(stable, canary) weights of a traffic object; an absent weight reads as 0."""
    return _weights(obj, where, stable, canary)


def _weights(obj: Mapping[str, Any], where: str, *paths: str) -> list[int]:
    return [_weight_at(obj, path, where)[0] for path in paths]


def _set_weight(
    obj: Mapping[str, Any], path: str, value: int, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JSON Patch ``test`` of what was just read and the op that sets the weight at ``path``.

    A ``test`` or ``replace`` of an absent member fails, so an absent weight is set with
    ``add`` (which creates or replaces an object member) behind a ``test`` of its parent.
    """
    _, parent = _weight_at(obj, path, where)
    last = _pointer(path)[-1]
    if last in parent:
        return (
            {"op": "test", "path": path, "value": parent[last]},
            {"op": "replace", "path": path, "value": value},
        )
    parent_path = path.rstrip("/").rpartition("/")[0]
    return (
        {"op": "test", "path": parent_path, "value": parent},
        {"op": "add", "path": path, "value": value},
    )


@kube_errors
def shift_traffic(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Move the canary weight to ``to_percent`` in steps, with a metric gate between steps.

    On a failed gate the rest of the shift happens at once (seed 000 gradual procedure:
    "if issues detected, complete rollback immediately"). Every pass waits through
    ``ctx.wait`` (where an abort is raised) and the step's deadline ends it: something else,
    such as a GitOps sync, may keep writing the old weight back.
    """
    t = params["traffic"]
    target = int(params.get("to_percent", 0))
    step = int(params.get("step_percent", 100))
    if step <= 0:
        raise StepFailed(f"step_percent must be a positive percentage, not {step}")
    if not 0 <= target <= 100:
        raise StepFailed(f"to_percent must be between 0 and 100, not {target}")
    api, kind, name = t["api_version"], t["kind"], t["name"]
    stable_path, canary_path = t["stable_weight_path"], t["canary_weight_path"]
    gate = params.get("gate_query")
    deadline = ctx.deadline()
    history: list[int] = []
    reverts = 0  # passes that found the weight changed back since our patch
    while True:
        obj = ctx.kube.read_object(ctx.target, api, kind, name)
        canary = traffic_weights(obj, f"{kind} {name}", stable_path, canary_path)[1]
        if not history:
            _check_pinned(params, ctx.previous, f"{kind} {name}", canary, target)
            if "expect_percent" in params and "shift_from" not in ctx.previous:
                ctx.remember({"shift_from": canary})  # this step's own record, before a patch
        if canary == target:
            return {"weights": history, "canary_percent": canary}
        if history and canary != history[-1]:
            _stop_if_pinned(params, f"{kind} {name}", canary, history[-1])
            reverts += 1
            if reverts == 1:  # once: a fight with a GitOps sync must not flood the thread
                ctx.note(
                    f"{kind} {name}: the canary weight is {canary} % again, not the"
                    f" {history[-1]} % just set: something else writes it (a GitOps sync?);"
                    " retrying until the step's timeout"
                )
        if ctx.monotonic() >= deadline:
            raise _still_not_there(f"{kind} {name}", canary, target, ctx.timeout_seconds, reverts)
        is_gated = bool(history and gate and step < 100)  # between increments only
        if is_gated and not _gate_passes(ctx, str(gate), float(params["gate_below"])):
            ctx.note("metric gate failed between increments: completing the shift at once")
            step = 100
        nxt = max(target, canary - step) if canary > target else min(target, canary + step)
        ops = traffic_patch(obj, f"{kind} {name}", stable_path, canary_path, nxt)
        ctx.kube.patch_object(ctx.target, api, kind, name, ops)
        history.append(nxt)
        if not reverts:
            ctx.note(f"{kind} {name}: canary weight {canary} % → {nxt} %")
        if nxt != target and gate:
            pause = float(params.get("gate_wait_seconds", 30))
        else:  # confirm the weight held; back off while something keeps undoing it
            pause = min(FIRST_POLL_SECONDS * 2**reverts, MAX_REVERTED_PAUSE_SECONDS)
        ctx.wait(min(pause, max(0.0, deadline - ctx.monotonic())))


def _stop_if_pinned(params: Mapping[str, Any], where: str, canary: int, just_set: int) -> None:
    """A rehearsal does not fight over staging: the weight moved under a pinned shift."""
    if "expect_percent" in params:
        raise StepFailed(
            f"{where}: the canary weight is {canary} % in staging, not the {just_set} % this"
            " step just set (someone changed staging meanwhile); stopped there. Check staging"
            " and start a new rehearsal."
        )


def _check_pinned(
    params: Mapping[str, Any], previous: Mapping[str, Any], where: str, canary: int, target: int
) -> None:
    """A rehearsal's shift is pinned to the weight staging had when it was planned. A first
    attempt must find that weight (even the target is not enough: someone else set it); one
    resumed after a restart (its record ``shift_from`` stored) a weight on the way from there
    to the target. Anything else: someone changed staging meanwhile."""
    expected = params.get("expect_percent")
    if expected is None or canary == int(expected):
        return
    if "shift_from" in previous and min(int(expected), target) <= canary <= max(
        int(expected), target
    ):
        return
    raise StepFailed(
        f"{where}: the canary weight is {canary} % in staging, not {expected} % as it was when"
        " the rehearsal was planned (someone changed staging meanwhile); nothing was changed."
        " Check staging and start a new rehearsal."
    )


def _still_not_there(
    where: str, canary: int, target: int, timeout_seconds: float, reverts: int
) -> StepFailed:
    undone = (
        f"; something else set it back {reverts} times (a GitOps sync?): pause that"
        " and run the rollback again"
        if reverts
        else ""
    )
    return StepFailed(
        f"{where}: the canary weight is still {canary} %, not {target} %,"
        f" after {timeout_seconds:g} s{undone}"
    )


def traffic_patch(
    obj: Mapping[str, Any], where: str, stable_path: str, canary_path: str, canary: int
) -> list[dict[str, Any]]:
    """The JSON Patch moving the canary weight to ``canary`` and the stable one to the rest."""
    stable_now, canary_now = _weights(obj, where, stable_path, canary_path)
    test_canary, set_canary = _set_weight(obj, canary_path, canary, where)
    test_stable, set_stable = _set_weight(obj, stable_path, stable_now + canary_now - canary, where)
    return [test_canary, test_stable, set_canary, set_stable]  # every test sees what was read


def _gate_passes(ctx: StepContext, query: str, below: float) -> bool:
    if ctx.prometheus is None:
        return False  # blind: do not keep the canary serving longer than necessary
    result = ctx.prometheus.query(query)
    return result.value is not None and result.value < below


def describe_shift_traffic(dry: DryRun, s: StepSpec) -> str:
    p, tr = s.params, s.params["traffic"]
    api, kind, name = str(tr["api_version"]), str(tr["kind"]), str(tr["name"])
    stable_path, canary_path = str(tr["stable_weight_path"]), str(tr["canary_weight_path"])
    target = int(p.get("to_percent", 0))
    obj = dry.kube.read_object(dry.target, api, kind, name)
    where = f"{kind} {name}"
    stable, canary = traffic_weights(obj, where, stable_path, canary_path)
    head = f"{escape(where)}: canary {canary} % → {target} %, stable {stable} %"
    if canary == target:
        return f"{head} — already so, nothing would change"
    head += f" → {stable + canary - target} %"
    patch = traffic_patch(obj, where, stable_path, canary_path, target)
    dry.kube.patch_object(dry.target, api, kind, name, patch, dry_run=True)
    return (
        f"{head}, in steps of {p.get('step_percent', 100)} %"
        + (", metric gate between steps" if p.get("gate_query") else "")
        + f"; {ACCEPTED}"
    )
