"""``/rollback run --dry-run``: the plan with the exact object changes, reading the cluster only.

Where the API offers it the change itself is sent as a server-side dry run (``dryRun=All``), so
admission and validation errors show up here rather than in the middle of a real rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.adapters.kubernetes import KubeError, KubeTarget
from bot.catalog import Service
from bot.notify.blocks import escape
from bot.preflight import Refusal, check_rollback
from bot.rollback.plan import PHASE_TITLES, Plan, StepSpec
from bot.steps.http import redact_url

if TYPE_CHECKING:
    from bot.app import Deps

FORWARD_FIX = (
    "The runbook's answer past the point of no return is a forward fix: deploy a compensating"
    " change (schema migration, data transformation, patch release) instead of rolling back."
)


def _images(images: Mapping[str, str]) -> str:
    return ", ".join(f"{c}={i}" for c, i in images.items())


def crosses_point_of_no_return(service: Service, from_revision: int, to_revision: int) -> bool:
    ponr = service.spec.point_of_no_return
    return ponr is not None and from_revision >= ponr.revision > to_revision


def _describe(deps: Deps, service: Service, t: KubeTarget, s: StepSpec) -> str:
    p: Mapping[str, Any] = s.params
    kube = deps.kube
    deployment = str(p.get("deployment") or service.spec.deployment)
    if s.kind == "snapshot":
        return "reads " + ", ".join(f"{o[0]}/{o[1]}" for o in p["objects"])
    if s.kind == "rollout_undo":
        wanted = p.get("to_revision")
        if wanted not in (None, "") and not str(wanted).isdigit():
            return f":no_entry: `{escape(str(wanted))}` is not a revision number (see above)"
        plan = kube.undo(t, deployment, int(wanted) if wanted else None, dry_run=True)
        text = (
            f"revision {plan.from_revision} ({_images(plan.images_before)}) → template of revision"
            f" {plan.to_revision} ({_images(plan.images_after)}); server-side dry run accepted"
        )
        if plan.is_noop:
            text += " — already at that template, nothing would change"
        if crosses_point_of_no_return(service, plan.from_revision, plan.to_revision):
            ponr = service.spec.point_of_no_return
            assert ponr is not None
            text += (
                f"\n     :no_entry: crosses the point of no return (revision {ponr.revision}:"
                f" {escape(ponr.reason)}): refused unless an approver adds --force. {FORWARD_FIX}"
            )
        return text
    if s.kind == "wait_rollout":
        return (
            f"waits until {deployment} is rolled out by kubectl's rules (≤ {s.timeout_seconds:g} s)"
        )
    if s.kind == "switch_selector":
        selector = kube.service_selector(t, str(p["service"]))
        wanted = {**selector, **{str(k): str(v) for k, v in p["selector"].items()}}
        kube.switch_selector(t, str(p["service"]), wanted, dry_run=True)
        return (
            f"Service {p['service']} selector {selector} → {wanted}; server-side dry run accepted"
        )
    if s.kind == "scale":
        replicas = kube.deployment(t, deployment).replicas
        kube.scale(t, deployment, int(p["replicas"]), dry_run=True)
        return f"{deployment}: {replicas} → {p['replicas']} replicas"
    if s.kind == "set_image":
        old, new = kube.set_image(t, deployment, p["container"], p["image"], dry_run=True)
        return f"{deployment} container {p['container']}: {old} → {new}"
    if s.kind == "shift_traffic":
        tr = p["traffic"]
        return (
            f"{tr['kind']} {tr['name']}: canary weight → {p.get('to_percent', 0)} % in steps of"
            f" {p.get('step_percent', 100)} %"
            + (", metric gate between steps" if p.get("gate_query") else "")
        )
    if s.kind == "run_job":
        containers = p["job"].get("template", {}).get("spec", {}).get("containers", [])
        images = ", ".join(str(c.get("image")) for c in containers)
        return f"runs a Job from the catalog's template ({images}) and waits for it to end"
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


def describe_plan(
    deps: Deps,
    service: Service,
    plan: Plan,
    target_revision: str | None,
    *,
    is_forced: bool = False,
) -> str:
    """The plan as the checks of a real run would resolve it (``plan`` is shown as it is when
    they refuse), with the refusal or the overridden warnings on top."""
    t = KubeTarget(service.context, service.namespace)
    lines = [
        f"*Dry run: rollback of {service.name}* ({plan.strategy}, namespace {t.namespace}"
        + (f", context {t.context}" if t.context else "")
        + ") — nothing was changed."
    ]
    try:
        checked = check_rollback(
            deps.kube,
            deps.repo,
            service,
            target_revision,
            now=deps.clock(),
            is_forced=is_forced,
            pin=False,
        )
    except Refusal as refusal:
        lines.append(f":no_entry: *A real run would be refused now:* {escape(str(refusal))}.")
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
        except KubeError as exc:
            what = f":warning: would fail now: {escape(str(exc))}"
        marker = " :no_entry: *point of no return*" if s.is_irreversible else ""
        lines.append(f"  {n}. {escape(s.name)}{marker} — {what}")
    ponr = plan.point_of_no_return
    lines.append(
        f"Point of no return: step *{escape(ponr.name)}*" if ponr else "Point of no return: none"
    )
    return "\n".join(lines)
