"""A rehearsal's end: the report in the service channel — how long the rollback took against the
SLA, how long the roll-forward took, what staging runs now — and its audit event.

It runs as durable due work (``rehearsal.finished``, stored by the engine with the final status),
so a crash cannot lose it; a report already audited is not posted again, and a post whose answer
was lost is found by its marker instead of being doubled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.adapters.kube.workload import workload
from bot.adapters.slack.posts import find_marked, post_marker
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.service_state import describe_service_state
from bot.execution.steps.kubernetes.common import kubectl_undo
from bot.notify import limits
from bot.notify.blocks import escape, free_text, section
from bot.notify.threads import anchor_of
from bot.rehearsal.forward import rolls_forward
from bot.rehearsal.plan import where
from bot.rehearsal.rollout import not_promoted, promote_command, rollout_now, undo_command
from bot.rehearsal.staging_now import StagingNow, staging_now
from bot.rollback.lifecycle import TERMINAL, DueKind, RollbackStatus, StepStatus
from bot.rollback.safety import release_label
from storage.models import DueWork, Rollback, RollbackStep

REPORTED = "rehearsal.reported"


def install(deps: Deps) -> None:
    deps.due.register(DueKind.REHEARSAL_FINISHED, lambda item: report_due(deps, item))


@dataclass(frozen=True)
class Timings:
    """Seconds from the first step's start to the last step's end of each part, None when no
    step of it ran; ``is_*_done``: every step of the part succeeded."""

    rollback: float | None
    roll_forward: float | None
    is_rollback_done: bool
    is_roll_forward_done: bool


def timings(steps: Sequence[RollbackStep]) -> Timings:
    marks = rolls_forward(steps)
    back = [s for s, is_forward in zip(steps, marks, strict=True) if not is_forward]
    forth = [s for s, is_forward in zip(steps, marks, strict=True) if is_forward]
    return Timings(_span(back), _span(forth), _all_done(back), _all_done(forth))


def _span(steps: Sequence[RollbackStep]) -> float | None:
    starts = [s.started_at for s in steps if s.started_at is not None]
    ends = [s.finished_at for s in steps if s.finished_at is not None]
    if not starts or not ends:
        return None
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def _all_done(steps: Sequence[RollbackStep]) -> bool:
    return bool(steps) and all(s.status == StepStatus.SUCCEEDED for s in steps)


def seconds_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``."""
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


def sla_verdict(seconds: float, sla_minutes: int) -> str:
    percent = round(100 * seconds / (sla_minutes * 60))
    share = f"{percent} %" if percent >= 1 else "under 1 %"
    if seconds <= sla_minutes * 60:
        return f"within the {sla_minutes} min SLA ({share} of it)"
    return (
        f":warning: *over the {sla_minutes} min SLA* ({share} of it): a production rollback"
        " this slow would breach it"
    )


def report_due(deps: Deps, item: DueWork) -> None:
    """``rehearsal.finished``: post the report once, then audit it."""
    rollback = deps.repo.get_rollback(int(item.payload["id"]))
    if rollback is None or rollback.id is None or rollback.status not in TERMINAL:
        return
    if deps.repo.list_audit_events(REPORTED, rollback_id=rollback.id):
        return  # posted and audited by an earlier attempt
    twin = deps.catalog.target_of(rollback.service)
    steps = deps.repo.list_steps(rollback.id)
    t = timings(steps)
    sla = twin.sla_minutes if twin is not None else None
    kube = deps.kube.reading_once()  # the state and the back-home checks read staging once
    # strategy http: the staging deployment API says what runs, not a Deployment it may not have
    is_kube = twin is not None and rollback.strategy != "http"
    state = describe_service_state(kube, twin) if twin is not None and is_kube else None
    now = staging_now(kube, twin, steps) if twin is not None else StagingNow()
    phase = rollout_now(kube, twin) if twin is not None and is_kube else None  # Rollout phase
    state = "; ".join(filter(None, [state, phase, *now.lines])) or None
    undo_back, not_back = undos_back(kube, twin, undos_of(steps))
    back_home = _both(undo_back, now.is_back)
    text = report_text(
        rollback,
        steps,
        t,
        sla_minutes=sla,
        state=state,
        is_back=undo_back,
        twin=twin,
        fixes=now.fixes,
        not_back=not_back,
        unread=now.unread,
    )
    _post(deps, rollback, text, is_retry=item.tries > 1)
    deps.audit(
        REPORTED,
        rollback,
        None,
        channel_id=rollback.channel_id,
        status=rollback.status,
        rollback_seconds=t.rollback,
        roll_forward_seconds=t.roll_forward,
        sla_minutes=sla,
        is_within_sla=None if t.rollback is None or sla is None else t.rollback <= sla * 60,
        is_back_at_start=back_home,
        staging=where(twin) if twin is not None else None,
    )


def _both(a: bool | None, b: bool | None) -> bool | None:
    """Back at the start: False when either check says not, None when neither could tell."""
    if a is False or b is False:
        return False
    return None if a is None and b is None else True


def undos_of(steps: Sequence[RollbackStep]) -> list[Mapping[str, Any]]:
    """The rollback's undos as their steps recorded them (from: where staging started), each
    with its own deployment, in plan order."""
    return [
        dict(s.detail["undo"])
        for s, is_forward in zip(steps, rolls_forward(steps), strict=True)
        if s.kind == "rollout_undo" and not is_forward and s.detail.get("undo")
    ]


def started_from(steps: Sequence[RollbackStep]) -> Mapping[str, Any]:
    """The rollback's first undo as its step recorded it, or {}."""
    return next(iter(undos_of(steps)), {})


def undos_back(
    kube: KubernetesClient, twin: Service | None, undos: Sequence[Mapping[str, Any]]
) -> tuple[bool | None, list[Mapping[str, Any]]]:
    """Whether staging runs, in each undone deployment, the images it ran before the rehearsal
    (None: none could be read), and the undos whose deployment is not back. A Rollout is back
    only fully promoted and Healthy as well: one paused mid-canary still runs the release it
    rolled back to in most pods (its undo gets ``not_promoted``, the phase)."""
    if twin is None or not undos:
        return None, []
    t, checked, not_back = KubeTarget(twin.context, twin.namespace), 0, []
    for undo in undos:
        name = str(undo.get("deployment") or twin.spec.deployment)
        try:
            now = workload(kube, twin.workload_kind).info(t, name)  # a Deployment or a Rollout
            is_rollout = twin.workload_kind == "Rollout"
            pending = not_promoted(kube, twin, name) if is_rollout else None
        except KubeError:
            continue
        checked += 1
        if dict(now.images) != dict(undo.get("images_before") or {}):
            not_back.append(undo)
        elif pending:
            not_back.append({**undo, "not_promoted": pending})
    return (None if not checked else not not_back), not_back


def report_text(
    rollback: Rollback,
    steps: Sequence[RollbackStep],
    t: Timings,
    *,
    sla_minutes: int | None,
    state: str | None,
    is_back: bool | None,
    twin: Service | None = None,
    fixes: Sequence[str] = (),
    not_back: Sequence[Mapping[str, Any]] | None = None,
    unread: Sequence[str] = (),
) -> str:
    """The report (mrkdwn). Pure: everything it says is passed in. ``not_back``: the undos
    whose deployment is not back (None: every undo, when ``is_back`` is False)."""
    name = rollback.service.partition("@")[0]
    undo = started_from(steps)
    ok = rollback.status == RollbackStatus.SUCCEEDED
    icon = ":white_check_mark:" if ok else ":x:"
    lines = [
        f"{icon} *Rehearsal #{rollback.id} of {escape(name)} in staging"
        f" {escape(rollback.status)}* — asked by <@{rollback.requested_by}>"
    ]
    if not ok:
        failed = next((s for s in steps if s.status == StepStatus.FAILED), None)
        why = free_text(failed.error or "", None) if failed else free_text(rollback.error or "")
        lines.append(f"Stopped at *{escape(failed.name)}*: {why}" if failed else why)
    lines.append(_rollback_line(undo, t, sla_minutes, rollback.strategy))
    lines.append(_forward_line(undo, t))
    if state:
        lines.append(f"• Staging now: {escape(state)}")
    if is_back is False and undo and twin is not None:
        lines += [_not_back(u, twin) for u in (undos_of(steps) if not_back is None else not_back)]
    lines += [
        f":grey_question: Could not check {escape(u)}: check it by hand before the next deploy"
        " or test relies on it."
        for u in unread
    ]
    if fixes:
        commands = " then ".join(f"`{escape(f)}`" for f in fixes)
        lines.append(
            ":warning: Staging is *not* back where the rehearsal started. Put it back before"
            f" the next deploy or test relies on it, in this order: {commands}"
        )
    lines.append("Production was not touched.")
    return "\n".join(lines)


def _not_back(undo: Mapping[str, Any], twin: Service) -> str:
    """Staging does not run what it ran before: say so, and the command that brings it back."""
    revision, name = undo.get("from_revision"), str(undo.get("deployment") or twin.spec.deployment)
    command = kubectl_undo(
        KubeTarget(twin.context, twin.namespace), name, revision, is_rollout=False
    )
    label = escape(release_label(undo.get("images_before") or {}))
    if pending := undo.get("not_promoted"):  # the start's template, its update not promoted
        return (
            f":warning: Staging is *not* back at revision {revision} ({label}) yet: Rollout"
            f" {escape(name)} has that template but is {escape(str(pending))}. Promote it"
            f" (`{escape(promote_command(twin, name))}`) before the next deploy or test relies"
            " on it."
        )
    then = ""
    if twin.workload_kind == "Rollout":  # then promote it in staging if its canary pauses
        command = undo_command(twin, name, revision)
        then = f", then promote it if its canary pauses (`{escape(promote_command(twin, name))}`)"
    return (
        f":warning: Staging is *not* back at revision {revision} ({label}), where the rehearsal"
        f" started: roll it forward (`{escape(command)}`){then} before the next deploy or test"
        " relies on it."
    )


def _rollback_line(
    undo: Mapping[str, Any], t: Timings, sla_minutes: int | None, strategy: str = "undo"
) -> str:
    what = "• Rollback" if strategy == "undo" else f"• Rollback ({escape(strategy)})"
    if undo:
        what += (
            f" from revision {undo.get('from_revision')}"
            f" ({escape(release_label(undo.get('images_before') or {}))}) to"
            f" {undo.get('to_revision')} ({escape(release_label(undo.get('images_after') or {}))})"
        )
    if t.rollback is None:
        return f"{what}: did not run."
    if not t.is_rollback_done:
        return f"{what}: did not finish ({seconds_text(t.rollback)})."
    verdict = f" — {sla_verdict(t.rollback, sla_minutes)}" if sla_minutes else ""
    return f"{what}, verified: {seconds_text(t.rollback)}{verdict}."


def _forward_line(undo: Mapping[str, Any], t: Timings) -> str:
    what = "• Roll-forward" + (f" to revision {undo.get('from_revision')}" if undo else "")
    if t.roll_forward is None:
        return f"{what}: did not run."
    if not t.is_roll_forward_done:
        return f"{what}: did not finish ({seconds_text(t.roll_forward)})."
    return f"{what}, verified: {seconds_text(t.roll_forward)}."


def _post(deps: Deps, rollback: Rollback, text: str, *, is_retry: bool) -> None:
    """In the service channel, under the progress message and broadcast to the channel."""
    assert rollback.id is not None
    channel = str(rollback.channel_id or "")
    thread = anchor_of(deps, rollback, channel)  # the progress message, posted now if need be
    marker = post_marker("rehearsal_report", rollback.id, rollback.created_at)
    if is_retry and find_marked(deps.slack, channel, marker, thread) is not None:
        return
    deps.slack.chat_postMessage(
        channel=channel,
        text=limits.message_text(text),
        blocks=[section(text)],
        thread_ts=thread,
        reply_broadcast=True if thread else None,
        unfurl_links=False,
        metadata=marker,
    )
