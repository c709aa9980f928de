"""Kubernetes step kinds. Every Kubernetes error surfaces as StepFailed with the API's words."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bot.adapters.kubernetes import TRANSIENT_STATUSES, KubeError, KubeTarget, UndoPlan
from bot.execution.steps import (
    FIRST_POLL_SECONDS,
    Aborted,
    StepContext,
    StepFailed,
    StepRunner,
    TimedOut,
)

API_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Service": "v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
}
POLL_SECONDS = 1.0
ROLLBACK_LABEL = "rollback-bot/rollback"
RUN_LABEL = "rollback-bot/run"  # a random id per run_job step: the Job's identity
DEFAULT_JOB_TTL_SECONDS = 3600  # Kubernetes removes a finished Job after this
MIN_JOB_TTL_SECONDS = 60
MAX_REVERTED_PAUSE_SECONDS = 30.0  # shift_traffic's pause while something keeps undoing it


def _kube_errors(fn: StepRunner) -> StepRunner:
    @functools.wraps(fn)
    def run(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return fn(ctx, params)
        except KubeError as exc:
            raise StepFailed(f"Kubernetes: {exc}") from exc

    return run


def _deployment(ctx: StepContext, params: Mapping[str, Any]) -> str:
    return str(params.get("deployment") or ctx.service.spec.deployment)


def _is_transient(exc: KubeError) -> bool:
    """Worth waiting out: an overloaded or restarting API server, or one out of reach."""
    return exc.status in TRANSIENT_STATUSES or exc.reason == "Unreachable"


def _in_words(exc: KubeError) -> str:
    return f"{exc} (HTTP {exc.status} {exc.reason})" if exc.status else str(exc)


@dataclass
class _Seen:
    """What a Kubernetes wait saw last, for its timeout message."""

    status: str = "no answer yet"
    error: str | None = None  # the last transient API error, in words
    is_failing: bool = False  # the latest poll met that error

    def __str__(self) -> str:
        if self.is_failing:
            return f"the Kubernetes API kept failing, last error: {self.error}"
        recovered = f"; last Kubernetes API error (recovered): {self.error}" if self.error else ""
        return f"last status: {self.status}{recovered}"


def _poll_kube(
    ctx: StepContext, what: str, read: Callable[[], tuple[bool, str]], seen: _Seen
) -> str:
    """``ctx.poll_until`` for a check that reads Kubernetes; ``read`` gives (is_done, status).

    The client retries an API error for a few seconds only; a control-plane blip during a
    ten-minute rollout must not fail the rollback while the cluster carries on. So a transient
    error (429, 5xx, unreachable, timed out) is "not done yet" until the step's deadline, and
    the timeout names it. Any other API error (403, 404, 422 …) fails at once.
    """

    def check() -> str | None:
        try:
            is_done, status = read()
        except KubeError as exc:
            if not _is_transient(exc):
                raise StepFailed(f"{what}: Kubernetes: {_in_words(exc)}") from exc
            if seen.error is None:  # once per step: an outage must not flood the thread
                ctx.note(
                    f"{what}: the Kubernetes API is failing ({_in_words(exc)});"
                    " still waiting, until the step's timeout"
                )
            seen.error, seen.is_failing = _in_words(exc), True
            return None
        seen.status, seen.is_failing = status, False
        return status if is_done else None

    try:
        return ctx.poll_until(check, POLL_SECONDS, what)
    except TimedOut as exc:
        raise TimedOut(f"{exc}; {seen}") from None


@_kube_errors
def snapshot(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Store the YAML of every object the plan touches, before anything changes it."""
    if "snapshots" in ctx.previous:  # taken by an earlier attempt: keep the original state
        return {"snapshots": ctx.previous["snapshots"]}
    snapshots = {}
    for entry in params["objects"]:
        kind, name = entry[0], entry[1]
        api_version = entry[2] if len(entry) > 2 else API_VERSIONS.get(kind, "v1")
        obj = ctx.kube.read_object(ctx.target, api_version, kind, name)
        snapshots[f"{kind}/{name}"] = yaml.safe_dump(obj, sort_keys=False)
    return {"snapshots": snapshots}


def _revision_number(value: Any) -> int | None:
    """A step's ``to_revision``: a number, or None for "the previous one". A tag here means the
    plan was not checked (the checks resolve tags to numbers): refuse rather than guess."""
    if value in (None, ""):
        return None
    text = str(value)
    if not text.isdigit():
        raise StepFailed(
            f"`{text}` is not a revision number, and this step goes back to revisions by number;"
            " nothing was changed. Start the rollback again with `--to N` (the command resolves"
            " a version tag to its revision and lists them)."
        )
    return int(text)


@_kube_errors
def rollout_undo(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _deployment(ctx, params)
    planned = ctx.previous.get("undo")
    if planned is not None:  # a resumed attempt: never undo a second time
        current = ctx.kube.deployment(ctx.target, name)
        # the undo makes a new revision: still at the planned one means it never went out
        # (images alone cannot tell: two revisions may differ only in env or resources)
        moved_on = current.revision != int(planned["from_revision"])
        if moved_on and current.images == planned["images_after"]:
            return {"undo": planned, "note": "already rolled back before the restart"}
        wanted: int | None = int(planned["to_revision"])
    else:
        wanted = _revision_number(params.get("to_revision"))

    def record(plan: UndoPlan) -> None:  # stored before the patch is sent
        nonlocal planned
        if ctx.previous.get("undo") is not None:
            return  # keep what the first attempt recorded
        _refuse_past_point_of_no_return(ctx, plan.from_revision, plan.to_revision, params)
        expected = params.get("expect_template")
        if expected and plan.to_template != expected:
            raise StepFailed(
                f"revision {plan.to_revision} of {name} is no longer the release that was checked"
                " when this rollback was asked for (someone deployed or rolled back meanwhile);"
                " nothing was changed. Assess the service again and start a new rollback."
            )
        planned = {
            "deployment": name,
            "from_revision": plan.from_revision,
            "to_revision": plan.to_revision,
            "images_before": plan.images_before,
            "images_after": plan.images_after,
            "from_template": plan.from_template,
            "to_template": plan.to_template,
        }
        ctx.remember({"undo": planned})

    result = ctx.kube.undo(ctx.target, name, wanted, before_patch=record)
    assert planned is not None
    ctx.note(
        f"{name}: revision {planned['from_revision']} → template of revision"
        f" {planned['to_revision']} ({_images(planned['images_before'])} →"
        f" {_images(planned['images_after'])})"
        + (" — already at that template, nothing to do" if result.is_noop else "")
    )
    return {"undo": planned, "is_noop": result.is_noop}


def _refuse_past_point_of_no_return(
    ctx: StepContext, from_revision: int, to_revision: int, params: Mapping[str, Any]
) -> None:
    from bot.execution.preflight import crosses_point_of_no_return, point_of_no_return_text

    if params.get("force") or not crosses_point_of_no_return(
        ctx.service, from_revision, to_revision
    ):
        return
    raise StepFailed(
        f"refused: {point_of_no_return_text(ctx.service, from_revision, to_revision)}"
        " (`/rollback run … --immediate --force`)."
    )


def selector_text(selector: Mapping[str, str]) -> str:
    """A label selector as kubectl takes it: ``app=storefront,version=blue``."""
    return ",".join(f"{k}={v}" for k, v in selector.items()) or "(none)"


def _images(images: Mapping[str, str]) -> str:
    return ", ".join(f"{c}={i}" for c, i in images.items())


@_kube_errors
def set_image(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _deployment(ctx, params)
    before, after = ctx.kube.set_image(ctx.target, name, params["container"], params["image"])
    return {"image_before": before, "image_after": after}


@_kube_errors
def switch_selector(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    service = str(params["service"])
    current = ctx.kube.service_selector(ctx.target, service)
    wanted = {**current, **{str(k): str(v) for k, v in params["selector"].items()}}
    if current == wanted:
        return {"selector_before": ctx.previous.get("selector_before", current), "selector": wanted}
    ctx.remember({"selector_before": current})
    before, after = ctx.kube.switch_selector(ctx.target, service, wanted)
    ctx.note(f"Service {service} selector {selector_text(before)} → {selector_text(after)}")
    return {"selector_before": before, "selector": after}


@_kube_errors
def scale(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _deployment(ctx, params)
    before = ctx.previous.get("replicas_before")
    if before is None:  # remember the original count once, even if this step runs again
        before = ctx.kube.deployment(ctx.target, name).replicas
        ctx.remember({"replicas_before": before})
    _, after = ctx.kube.scale(ctx.target, name, int(params["replicas"]))
    ctx.note(f"{name}: {before} → {after} replicas")
    return {"replicas_before": before, "replicas_after": after}


@_kube_errors
def restart(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _deployment(ctx, params)
    if "restarted_at" in ctx.previous:  # the annotation was written: do not restart twice
        return {"restarted_at": ctx.previous["restarted_at"]}
    at = ctx.clock()
    ctx.remember({"restarted_at": at.isoformat()})
    ctx.kube.restart(ctx.target, name, at=at)
    return {"restarted_at": at.isoformat()}


@_kube_errors
def wait_rollout(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Wait until the rollout is complete by kubectl's rules; fail on its progress deadline.

    kubectl counts a deployment of 0 replicas as rolled out. ``min_available`` (for a
    deployment about to take traffic, e.g. blue-green's stable colour) also asks for that many
    available pods, and fails at once when the deployment is scaled to 0.
    """
    name = _deployment(ctx, params)
    min_available = int(params.get("min_available", 0))
    seen = _Seen()
    short_of: int | None = None  # available pods, while fewer than min_available

    def read() -> tuple[bool, str]:
        nonlocal short_of
        short_of = None
        status = ctx.kube.rollout_status(ctx.target, name)
        if status.is_failed:
            raise StepFailed(status.message)
        if not status.is_complete or min_available <= 0:
            return status.is_complete, status.message
        info = ctx.kube.deployment(ctx.target, name)
        if info.replicas == 0:  # nothing will bring pods back by itself
            raise StepFailed(f"{_too_few_pods(name, 0, min_available)} (scaled to 0 replicas)")
        if info.available_replicas < min_available:
            short_of = info.available_replicas
            return False, f"{short_of} available pods, {min_available} needed"
        return True, status.message

    try:
        return {"status": _poll_kube(ctx, f"rollout of {name}", read, seen)}
    except TimedOut as exc:
        if short_of is not None and not seen.is_failing:
            raise StepFailed(f"{_too_few_pods(name, short_of, min_available)} ({exc})") from None
        raise


def _too_few_pods(name: str, available: int, wanted: int) -> str:
    have = "no available pods" if available == 0 else f"only {available} available pods"
    return (
        f"deployment {name} has {have} ({wanted} needed);"
        " scale it up before switching traffic to it"
    )


@_kube_errors
def run_job(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Run a Job from the catalog's template (user-supplied container) and wait for its end.

    The Job is ours only if it carries this step's run id: a random id remembered with the step
    before the create, so a resumed attempt knows its own Job and nothing else is taken for it
    (rollback ids restart with a new database and repeat across installations sharing a
    namespace). The default name carries the run id too. A finished Job is removed by
    Kubernetes after ``ttl_seconds_after_finished`` (the bot has no delete permission).

    A timeout or an abort leaves the Job running, and says so: it is often a database
    migration, and stopping one half-way can be worse than letting it finish.
    """
    ttl = job_ttl(params)
    run_id = str(ctx.previous.get("run_id") or secrets.token_hex(4))
    job = str(
        ctx.previous.get("job")
        or params.get("job_name")
        or f"rollback-{ctx.rollback_id}-{ctx.position}-{run_id}"
    )
    spec = {**dict(params["job"]), "ttlSecondsAfterFinished": ttl}
    ctx.remember({"job": job, "run_id": run_id})  # before the create: a resume knows its Job
    labels = {ROLLBACK_LABEL: str(ctx.rollback_id), RUN_LABEL: run_id}
    ctx.kube.create_job(ctx.target, job, spec, labels=labels)
    seen = _Seen()

    def read() -> tuple[bool, str]:
        try:
            state = ctx.kube.job_state(ctx.target, job)
        except KubeError as exc:
            if exc.status != 404:
                raise
            raise StepFailed(
                f"Job {job} is gone before the bot saw it end: deleted by someone, or removed"
                f" {ttl} s after it finished (ttl_seconds_after_finished); its result is unknown"
            ) from None
        if state.phase == "failed":
            raise StepFailed(f"Job {job} failed: {state.message}")
        return state.phase == "complete", state.message

    try:
        status = _poll_kube(ctx, f"Job {job}", read, seen)
    except TimedOut as exc:
        left = _left_running(ctx.target, job, seen)
        ctx.remember({"left_running": left})
        raise StepFailed(f"{exc}. {left}") from None
    except Aborted:
        left = _left_running(ctx.target, job, seen)
        ctx.remember({"left_running": left})
        ctx.note(f":warning: {left}")
        raise Aborted(left) from None
    return {"job": job, "run_id": run_id, "status": status}


def job_ttl(params: Mapping[str, Any]) -> int:
    """Seconds Kubernetes keeps a finished Job: the step's parameter, the template's, or 1 h."""
    raw = params.get("ttl_seconds_after_finished")
    if raw is None:
        raw = dict(params["job"]).get("ttlSecondsAfterFinished", DEFAULT_JOB_TTL_SECONDS)
    try:
        ttl = int(raw)
    except (TypeError, ValueError):
        ttl = -1
    if ttl < MIN_JOB_TTL_SECONDS or isinstance(raw, bool):
        raise StepFailed(
            f"ttl_seconds_after_finished must be a whole number of seconds of at least"
            f" {MIN_JOB_TTL_SECONDS} (the bot must see the Job end before it goes), not {raw!r}"
        )
    return ttl


def _left_running(t: KubeTarget, job: str, seen: _Seen) -> str:
    kubectl = " ".join(
        ["kubectl", *(["--context", t.context] if t.context else []), "-n", t.namespace]
    )
    state = "may still be running" if seen.is_failing else "is still running"
    return (
        f"Job {job} {state} in namespace {t.namespace}; it was not stopped"
        f" (check it with `{kubectl} get job {job}`)"
    )


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


@_kube_errors
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
        if canary == target:
            return {"weights": history, "canary_percent": canary}
        if history and canary != history[-1]:
            reverts += 1
            if reverts == 1:  # once: a fight with a GitOps sync must not flood the thread
                ctx.note(
                    f"{kind} {name}: the canary weight is {canary} % again, not the"
                    f" {history[-1]} % just set: something else writes it (a GitOps sync?);"
                    " retrying until the step's timeout"
                )
        if ctx.monotonic() >= deadline:
            undone = (
                f"; something else set it back {reverts} times (a GitOps sync?): pause that"
                " and run the rollback again"
                if reverts
                else ""
            )
            raise StepFailed(
                f"{kind} {name}: the canary weight is still {canary} %, not {target} %,"
                f" after {ctx.timeout_seconds:g} s{undone}"
            )
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


RUNNERS: dict[str, Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]] = {
    "snapshot": snapshot,
    "rollout_undo": rollout_undo,
    "set_image": set_image,
    "switch_selector": switch_selector,
    "scale": scale,
    "restart": restart,
    "wait_rollout": wait_rollout,
    "run_job": run_job,
    "shift_traffic": shift_traffic,
}
