"""Step kinds that read or change one Kubernetes object: snapshot, rollout undo, set image,
switch a Service's selector, scale, restart. Each has its run and its dry-run description."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from bot.adapters.kube.values import KubeError, UndoPlan
from bot.execution.preflight import (
    FORWARD_FIX,
    crosses_point_of_no_return,
    point_of_no_return_text,
)
from bot.execution.steps.base import ACCEPTED, DryRun, StepContext, StepFailed
from bot.execution.steps.kubernetes.common import (
    api_version_of,
    deployment,
    images_text,
    kube_errors,
    kubectl_undo,
    selector_text,
    workload_of,
)
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec


@kube_errors
def snapshot(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Store the YAML of every object the plan touches, before anything changes it."""
    if "snapshots" in ctx.previous:  # taken by an earlier attempt: keep the original state
        return {"snapshots": ctx.previous["snapshots"]}
    snapshots = {}
    for entry in params["objects"]:
        kind, name, api_version = api_version_of(entry)
        obj = ctx.kube.read_object(ctx.target, api_version, kind, name)
        snapshots[f"{kind}/{name}"] = yaml.safe_dump(obj, sort_keys=False)
    return {"snapshots": snapshots}


def describe_snapshot(dry: DryRun, s: StepSpec) -> str:
    """Reads every object as the real snapshot will; a missing one is a warning line."""
    read, missing = [], []
    for entry in s.params["objects"]:
        kind, name, api_version = api_version_of(entry)
        try:
            dry.kube.read_object(dry.target, api_version, kind, name)
            read.append(f"{kind}/{name}")
        except KubeError as exc:
            missing.append(f"\n     :warning: {kind}/{name}: {escape(str(exc))}")
    text = "reads " + (", ".join(read) or "nothing") + (" (all found)" if not missing else "")
    return text + "".join(missing)


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


@kube_errors
def rollout_undo(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment(ctx, params)
    planned = ctx.previous.get("undo")
    if planned is not None:  # a resumed attempt: never undo a second time
        current = workload_of(ctx.kube, ctx.service).info(ctx.target, name)
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
        if ctx.previous.get("undo") is not None:  # keep what the first attempt recorded
            if not plan.is_noop:  # not sent yet: staging must still start where it was pinned
                _refuse_moved_start(ctx, name, plan, params)
            return
        _refuse_unsafe_undo(ctx, name, plan, params)
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

    result = workload_of(ctx.kube, ctx.service).undo(ctx.target, name, wanted, before_patch=record)
    assert planned is not None
    ctx.note(
        f"{name}: revision {planned['from_revision']} → template of revision"
        f" {planned['to_revision']} ({images_text(planned['images_before'])} →"
        f" {images_text(planned['images_after'])})"
        + (" — already at that template, nothing to do" if result.is_noop else "")
    )
    return {"undo": planned, "is_noop": result.is_noop}


def _refuse_unsafe_undo(
    ctx: StepContext, name: str, plan: UndoPlan, params: Mapping[str, Any]
) -> None:
    """Before the patch: not past the point of no return (unless forced), and still the
    release that was checked when the rollback was asked for."""
    service = ctx.service
    if not params.get("force") and crosses_point_of_no_return(
        service, plan.from_revision, plan.to_revision
    ):
        raise StepFailed(
            f"refused: {point_of_no_return_text(service, plan.from_revision, plan.to_revision)}"
            " (`/rollback run … --immediate --force`)."
        )
    _refuse_moved_start(ctx, name, plan, params)
    expected = params.get("expect_template")
    if expected and plan.to_template != expected:
        raise StepFailed(
            f"revision {plan.to_revision} of {name} is no longer the release that was checked"
            " when this rollback was asked for (someone deployed or rolled back meanwhile);"
            " nothing was changed. Assess the service again and start a new rollback."
        )


def _refuse_moved_start(
    ctx: StepContext, name: str, plan: UndoPlan, params: Mapping[str, Any]
) -> None:
    """A rehearsal's undo (``expect_from_template``, never a production one's): staging must
    still run the release it ran when the rehearsal was planned (for the roll-forward: the one
    the rollback put there), or the undo would take away someone's release."""
    started = params.get("expect_from_template")  # a rehearsal's: what staging ran when read
    if not started:
        return
    if not plan.is_observed:  # what it runs is not known yet
        raise StepFailed(
            f"staging's Rollout {name} has a change its controller has not picked up yet;"
            " nothing was changed. Wait for it, then start a new rehearsal."
        )
    if plan.from_template == started:
        return
    is_rollout = ctx.service.workload_kind == "Rollout"
    word = "Rollout" if is_rollout else "deployment"
    now = (
        f"{word} {name} runs revision {plan.from_revision} ({images_text(plan.images_before)})"
        " in staging"
    )
    who = (
        "someone released to it or rolled it back"
        if is_rollout
        else "someone deployed or rolled back"
    )
    if not params.get("roll_forward"):
        raise StepFailed(
            f"{now}, not the release it ran when the rehearsal was planned ({who} meanwhile);"
            " nothing was changed. Check staging and start a new rehearsal."
        )
    was = params.get("expect_from_revision")
    images = images_text(params.get("expect_from_images") or {})
    raise StepFailed(
        f"{now}, not the template of revision {was} ({images}) the rehearsal's rollback put"
        f" there ({who} meanwhile); nothing was changed, so staging is still rolled back, not"
        " where the rehearsal started. Check that release, then restore the start with"
        f" `{kubectl_undo(ctx.target, name, params.get('to_revision'), is_rollout=is_rollout)}`."
    )


def describe_rollout_undo(dry: DryRun, s: StepSpec) -> str:
    wanted = s.params.get("to_revision")
    if wanted not in (None, "") and not str(wanted).isdigit():
        return f":no_entry: `{escape(str(wanted))}` is not a revision number (see above)"
    name = dry.deployment(s.params)
    kind = workload_of(dry.kube, dry.service)
    plan = kind.undo(dry.target, name, int(wanted) if wanted else None, dry_run=True)
    text = (
        f"revision {plan.from_revision} ({images_text(plan.images_before)}) → template of"
        f" revision {plan.to_revision} ({images_text(plan.images_after)})"
    )
    # the adapter sends no patch when the template already matches
    text += " — already at that template, nothing would change" if plan.is_noop else f"; {ACCEPTED}"
    if crosses_point_of_no_return(dry.service, plan.from_revision, plan.to_revision):
        ponr = dry.service.spec.point_of_no_return
        assert ponr is not None
        text += (
            f"\n     :no_entry: crosses the point of no return (revision {ponr.revision}:"
            f" {escape(ponr.reason)}): refused unless an approver adds --force. {FORWARD_FIX}"
        )
    return text


def _pinned(what: str, now: object, expected: object) -> StepFailed:
    """A rehearsal's step pinned to the staging it read when it was planned: staging changed
    since, so this step refuses rather than put back (or take away) something else."""
    return StepFailed(
        f"{what} is {now} in staging, not {expected} as it was when the rehearsal was planned"
        " (someone changed staging meanwhile); nothing was changed. Check staging and start a"
        " new rehearsal."
    )


def _expecting(value: Any) -> dict[str, Any]:
    """The adapter's ``expect=`` for a rehearsal's conditional write; nothing for a production
    step, whose requests stay exactly as they are."""
    return {} if value is None else {"expect": value}


@kube_errors
def set_image(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment(ctx, params)
    expect = None  # a rehearsal's first attempt: written only over the image it pinned
    if "expect_image" in params and "image_before" not in ctx.previous:
        # no record of this step's write: staging must be as planned, even if it is already at
        # the target (someone else put it there, and the roll-forward would undo their change)
        now = ctx.kube.deployment(ctx.target, name).images.get(str(params["container"]))
        if now is None:
            raise StepFailed(
                f"deployment {name} has no container {params['container']} in staging (it had"
                " when the rehearsal was planned: someone changed staging meanwhile); nothing"
                " was changed. Check staging and start a new rehearsal."
            )
        if now != params["expect_image"]:
            raise _pinned(
                f"the image of {name} container {params['container']}", now, params["expect_image"]
            )
        ctx.remember({"image_before": now})
        expect = now
    before, after = ctx.kube.set_image(
        ctx.target, name, params["container"], params["image"], **_expecting(expect)
    )
    return {"image_before": before, "image_after": after}


def describe_set_image(dry: DryRun, s: StepSpec) -> str:
    p, name = s.params, dry.deployment(s.params)
    old, new = dry.kube.set_image(dry.target, name, p["container"], p["image"], dry_run=True)
    change = f"{name} container {p['container']}: {old}"
    if old == new:  # the adapter sends nothing when the image is already there
        return f"{change} — already that image, nothing would change"
    return f"{change} → {new}; {ACCEPTED}"


def _wanted_selector(current: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, str]:
    return {**current, **{str(k): str(v) for k, v in params["selector"].items()}}


@kube_errors
def switch_selector(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    service = str(params["service"])
    current = ctx.kube.service_selector(ctx.target, service)
    wanted = _wanted_selector(current, params)
    expected = {str(k): str(v) for k, v in (params.get("expect_selector") or {}).items()}
    is_ours = "selector_before" in ctx.previous  # this step's own write, before a restart
    if expected and not is_ours and {k: current.get(k) for k in expected} != expected:
        now = {k: current.get(k, "(none)") for k in expected}
        raise _pinned(f"Service {service}'s selector", selector_text(now), selector_text(expected))
    if current == wanted:
        return {"selector_before": ctx.previous.get("selector_before", current), "selector": wanted}
    ctx.remember({"selector_before": current})
    # a rehearsal: the patch's `test` is this very read, the one its pin was checked on
    pin = _expecting(current if expected else None)
    before, after = ctx.kube.switch_selector(ctx.target, service, wanted, **pin)
    ctx.note(f"Service {service} selector {selector_text(before)} → {selector_text(after)}")
    return {"selector_before": before, "selector": after}


def describe_switch_selector(dry: DryRun, s: StepSpec) -> str:
    service = str(s.params["service"])
    selector = dry.kube.service_selector(dry.target, service)
    wanted = _wanted_selector(selector, s.params)
    change = f"Service {escape(service)} selector {escape(selector_text(selector))}"
    if wanted == selector:
        return f"{change} — already so, nothing would change"
    dry.kube.switch_selector(dry.target, service, wanted, dry_run=True)
    return f"{change} → {escape(selector_text(wanted))}; {ACCEPTED}"


@kube_errors
def scale(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment(ctx, params)
    before = ctx.previous.get("replicas_before")
    pin: dict[str, Any] = {}
    if before is None:  # remember the original count once, even if this step runs again
        before = ctx.kube.deployment(ctx.target, name).replicas
        expected = params.get("expect_replicas")
        if expected is not None and before != int(expected):  # not as planned, target or not
            raise _pinned(f"the replica count of {name}", before, expected)
        ctx.remember({"replicas_before": before})
        pin = _expecting(before if expected is not None else None)
    _, after = ctx.kube.scale(ctx.target, name, int(params["replicas"]), **pin)
    ctx.note(f"{name}: {before} → {after} replicas")
    return {"replicas_before": before, "replicas_after": after}


def describe_scale(dry: DryRun, s: StepSpec) -> str:
    name = dry.deployment(s.params)
    before, after = dry.kube.scale(dry.target, name, int(s.params["replicas"]), dry_run=True)
    return f"{name}: {before} → {after} replicas; {ACCEPTED}"


@kube_errors
def restart(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment(ctx, params)
    if "restarted_at" in ctx.previous:  # the annotation was written: do not restart twice
        return {"restarted_at": ctx.previous["restarted_at"]}
    at = ctx.clock()
    ctx.remember({"restarted_at": at.isoformat()})
    ctx.kube.restart(ctx.target, name, at=at)
    return {"restarted_at": at.isoformat()}


def describe_restart(dry: DryRun, s: StepSpec) -> str:
    name = dry.deployment(s.params)
    dry.kube.restart(dry.target, name, at=datetime.now(UTC), dry_run=True)
    return f"replaces every pod of {name} (rollout restart); {ACCEPTED}"
