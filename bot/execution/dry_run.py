"""``/rollback run --dry-run``: the plan with the exact object changes, reading the cluster only.

Every object a step would read is read, and every write a step would make is sent as a
server-side dry run (``dryRun=All``), so a missing object, a refused permission, or an admission
or validation error shows up here rather than in the middle of a real rollback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.adapters.kubernetes import KubeError, KubernetesClient, KubeTarget
from bot.catalog.load import Service
from bot.execution.preflight import FORWARD_FIX, Refusal, check, crosses_point_of_no_return
from bot.execution.steps import StepFailed
from bot.execution.steps.http import redact_url
from bot.execution.steps.kubernetes import (
    API_VERSIONS,
    ROLLBACK_LABEL,
    RUN_LABEL,
    job_ttl,
    selector_text,
    traffic_patch,
    traffic_weights,
)
from bot.notify.blocks import escape
from bot.rollback.plan import PHASE_TITLES, Plan, StepSpec

if TYPE_CHECKING:
    from bot.deps import Deps

ACCEPTED = "server-side dry run accepted"  # only where a write was sent and the API took it


def _images(images: Mapping[str, str]) -> str:
    return ", ".join(f"{c}={i}" for c, i in images.items())


def _describe(deps: Deps, service: Service, t: KubeTarget, s: StepSpec) -> str:
    p: Mapping[str, Any] = s.params
    kube = deps.kube
    deployment = str(p.get("deployment") or service.spec.deployment)
    if s.kind == "snapshot":
        return _snapshot(kube, t, p)
    if s.kind == "rollout_undo":
        wanted = p.get("to_revision")
        if wanted not in (None, "") and not str(wanted).isdigit():
            return f":no_entry: `{escape(str(wanted))}` is not a revision number (see above)"
        plan = kube.undo(t, deployment, int(wanted) if wanted else None, dry_run=True)
        text = (
            f"revision {plan.from_revision} ({_images(plan.images_before)}) → template of revision"
            f" {plan.to_revision} ({_images(plan.images_after)})"
        )
        # the adapter sends no patch when the template already matches
        text += (
            " — already at that template, nothing would change" if plan.is_noop else f"; {ACCEPTED}"
        )
        if crosses_point_of_no_return(service, plan.from_revision, plan.to_revision):
            ponr = service.spec.point_of_no_return
            assert ponr is not None
            text += (
                f"\n     :no_entry: crosses the point of no return (revision {ponr.revision}:"
                f" {escape(ponr.reason)}): refused unless an approver adds --force. {FORWARD_FIX}"
            )
        return text
    if s.kind in _KUBE_STEPS:
        return _KUBE_STEPS[s.kind](deps, t, s, deployment)
    if s.kind in ("http_check", "http_request"):
        method = p.get("method", "GET") if s.kind == "http_request" else "GET"
        return f"{method} {escape(redact_url(str(p['url'])))}"  # no credentials in Slack
    if s.kind == "prometheus_gate":
        bound = f"< {p['below']}" if "below" in p else f"> {p.get('above')}"
        return f"waits until `{escape(str(p['query']))}` {bound}"
    if s.kind == "wait":
        return f"waits {p['seconds']} s"
    if s.kind == "manual_gate":
        return "pauses until someone presses Continue"
    return s.kind


def _snapshot(kube: KubernetesClient, t: KubeTarget, p: Mapping[str, Any]) -> str:
    """Reads every object as the real snapshot will; a missing one is a warning line."""
    read, missing = [], []
    for entry in p["objects"]:
        kind, name = str(entry[0]), str(entry[1])
        api_version = str(entry[2]) if len(entry) > 2 else API_VERSIONS.get(kind, "v1")
        try:
            kube.read_object(t, api_version, kind, name)
            read.append(f"{kind}/{name}")
        except KubeError as exc:
            missing.append(f"\n     :warning: {kind}/{name}: {escape(str(exc))}")
    text = "reads " + (", ".join(read) or "nothing") + (" (all found)" if not missing else "")
    return text + "".join(missing)


def _wait_rollout(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    status = deps.kube.rollout_status(t, deployment)
    return (
        f"waits until {deployment} is rolled out by kubectl's rules (≤ {s.timeout_seconds:g} s);"
        f" now: {escape(status.message)}"
    )


def _switch_selector(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    service = str(s.params["service"])
    selector = deps.kube.service_selector(t, service)
    wanted = {**selector, **{str(k): str(v) for k, v in s.params["selector"].items()}}
    change = f"Service {escape(service)} selector {escape(selector_text(selector))}"
    if wanted == selector:
        return f"{change} — already so, nothing would change"
    deps.kube.switch_selector(t, service, wanted, dry_run=True)
    return f"{change} → {escape(selector_text(wanted))}; {ACCEPTED}"


def _scale(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    before, after = deps.kube.scale(t, deployment, int(s.params["replicas"]), dry_run=True)
    return f"{deployment}: {before} → {after} replicas; {ACCEPTED}"


def _set_image(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    p = s.params
    old, new = deps.kube.set_image(t, deployment, p["container"], p["image"], dry_run=True)
    change = f"{deployment} container {p['container']}: {old}"
    if old == new:  # the adapter sends nothing when the image is already there
        return f"{change} — already that image, nothing would change"
    return f"{change} → {new}; {ACCEPTED}"


def _restart(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    deps.kube.restart(t, deployment, at=datetime.now(UTC), dry_run=True)
    return f"replaces every pod of {deployment} (rollout restart); {ACCEPTED}"


def _shift_traffic(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    p, tr = s.params, s.params["traffic"]
    api, kind, name = str(tr["api_version"]), str(tr["kind"]), str(tr["name"])
    stable_path, canary_path = str(tr["stable_weight_path"]), str(tr["canary_weight_path"])
    target = int(p.get("to_percent", 0))
    obj = deps.kube.read_object(t, api, kind, name)
    where = f"{kind} {name}"
    stable, canary = traffic_weights(obj, where, stable_path, canary_path)
    head = f"{escape(where)}: canary {canary} % → {target} %, stable {stable} %"
    if canary == target:
        return f"{head} — already so, nothing would change"
    head += f" → {stable + canary - target} %"
    patch = traffic_patch(obj, where, stable_path, canary_path, target)
    deps.kube.patch_object(t, api, kind, name, patch, dry_run=True)
    return (
        f"{head}, in steps of {p.get('step_percent', 100)} %"
        + (", metric gate between steps" if p.get("gate_query") else "")
        + f"; {ACCEPTED}"
    )


def _run_job(deps: Deps, t: KubeTarget, s: StepSpec, deployment: str) -> str:
    p = s.params
    spec = {**dict(p["job"]), "ttlSecondsAfterFinished": job_ttl(p)}
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    images = ", ".join(str(c.get("image")) for c in containers)
    run_id = secrets.token_hex(4)
    name = str(p.get("job_name") or f"rollback-dry-run-{run_id}")
    labels = {ROLLBACK_LABEL: "dry-run", RUN_LABEL: run_id}
    deps.kube.create_job(t, name, spec, labels=labels, dry_run=True)
    job = f"Job {escape(name)}" if p.get("job_name") else "a Job"
    return (
        f"creates {job} from the catalog's template ({escape(images)}) and waits for it to end"
        f" (≤ {s.timeout_seconds:g} s); {ACCEPTED}"
    )


_KUBE_STEPS: dict[str, Callable[[Deps, KubeTarget, StepSpec, str], str]] = {
    "wait_rollout": _wait_rollout,
    "switch_selector": _switch_selector,
    "scale": _scale,
    "set_image": _set_image,
    "restart": _restart,
    "shift_traffic": _shift_traffic,
    "run_job": _run_job,
}


def describe_plan(
    deps: Deps,
    service: Service,
    plan: Plan,
    target_revision: str | None,
    *,
    is_forced: bool = False,
    problems: list[str] | None = None,
) -> str:
    """The plan as the checks of a real run would resolve it (``plan`` is shown as it is when
    they refuse), with the refusal or the overridden warnings on top. What would refuse or fail
    a real run now is also appended to ``problems``, when given."""
    found: list[str] = [] if problems is None else problems
    t = KubeTarget(service.context, service.namespace)
    lines = [
        f"*Dry run: rollback of {service.name}* ({plan.strategy}, namespace {t.namespace}"
        + (f", context {t.context}" if t.context else "")
        + ") — nothing was changed."
    ]
    try:
        checked = check(deps, service, target_revision, is_forced=is_forced, pin=False)
    except Refusal as refusal:
        lines.append(f":no_entry: *A real run would be refused now:* {escape(str(refusal))}.")
        found.append(str(refusal))
    else:
        plan = checked.plan
        lines += [f":warning: {escape(w)}." for w in checked.warnings]
    phase = None
    for n, s in enumerate(plan.steps, 1):
        if s.phase != phase:
            phase = s.phase
            lines.append(f"*{PHASE_TITLES[phase]}*")
        try:
            what = _describe(deps, service, t, s)
        except (KubeError, StepFailed) as exc:
            what = f":warning: would fail now: {escape(str(exc))}"
            found.append(f"step {n} ({s.name}) would fail now: {exc}")
        marker = " :no_entry: *point of no return*" if s.is_irreversible else ""
        lines.append(f"  {n}. {escape(s.name)}{marker} — {what}")
    ponr = plan.point_of_no_return
    lines.append(
        f"Point of no return: step *{escape(ponr.name)}*" if ponr else "Point of no return: none"
    )
    return "\n".join(lines)
