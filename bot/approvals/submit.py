"""Planned rollbacks from Slack: ``/rollback plan``, the Plan rollback form, and
``/rollback approve | reject`` (the same rules as the buttons)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.approvals import blocks as approval_blocks
from bot.approvals import confirm as start_confirmation
from bot.approvals import request as approvals
from bot.approvals import votes
from bot.approvals.blocks import when
from bot.approvals.shared import approver_members, request_of
from bot.assessment.service import assessed_regions, pressed_assessment, stale_reply
from bot.catalog.load import PlanError, Service
from bot.deps import Deps
from bot.execution.preflight import Refusal, audit_refusal, check, phases_problem
from bot.notify.blocks import escape, escape_keeping_mentions, plural
from bot.notify.reply import Asker, Reply
from bot.regions.text import plan_regions_line, regions_line
from bot.rollback import policy
from bot.rollback.command import (
    Command,
    UsageError,
    local_time,
    parse_phases,
    parse_revision,
    parse_window,
)
from bot.rollback.phases import check_subset, select_phases
from storage.repo.records import ActiveRollbackExists


def submit_request(
    deps: Deps,
    service: Service,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    window: datetime | None,
    assessment_id: int | None = None,
    phases: Sequence[str] = (),
) -> str:
    """Store a planned rollback request and post it for approval (in the background); returns
    what to tell the requester. ``phases``: the subset of the plan to run (empty: all)."""
    if not service.spec.approvers:
        return (
            f":x: *{service.name}* has no approvers in the catalog, so nobody could approve a"
            " planned rollback. Add `approvers:` to its entry, or ask a responder for"
            f" `/rollback run {service.name} --immediate <reason>`."
        )
    if not reason.strip():
        return f":x: Say why: `/rollback plan {service.name} [--to N] [--at HH:MM] <reason>`."
    try:  # checked again when it starts: the cluster may change while it waits
        checked = check(deps, service, target_revision, pin=False, phases=phases)
    except Refusal as refusal:
        return _refused_request(deps, service, user, refusal, target_revision, phases)
    try:
        r = approvals.request(
            deps,
            service,
            checked.plan,
            user=user,
            reason=reason,
            target_revision=checked.target_revision,
            window=window,
            assessment_id=assessment_id,
            selection=checked.selection,
        )
    except ActiveRollbackExists as exc:
        return (
            f":warning: A rollback of *{service.name}* is already active (#{exc.existing_id});"
            f" see `/rollback status {exc.existing_id}`."
        )
    assert r.id is not None and r.expires_at is not None
    deps.kick_due_work()  # post it now, not at the next tick
    start = f"at {local_time(window, service.tz)}" if window else "as soon as it is approved"
    where = plan_regions_line(deps.catalog.get(service.name) or service, checked.plan)
    selection = checked.selection
    part = f" Phases: {selection.describe()}." if selection and selection.is_partial else ""
    return (
        f":clipboard: Rollback request #{r.id} of *{service.name}* is waiting for"
        f" {plural(r.required_approvals, 'approval')} in <#{service.channel}>"
        f" ({policy.who_may_approve(service)}). It starts {start}; the request expires at"
        f" {when(r.expires_at)}.{part}" + (f"\n:world_map: {where}." if where else "")
    )


def _refused_request(
    deps: Deps,
    service: Service,
    user: str,
    refusal: Refusal,
    target_revision: str | None,
    phases: Sequence[str],
) -> str:
    """Audited before it is said; nothing was stored or posted."""
    detail: dict[str, Any] = {"target": target_revision}
    if phases:
        detail["phases"] = list(phases)
    audit_refusal(deps, "approval.refused", service, user, refusal, **detail)
    # a request has no --force: say where an approver's override is given
    where = (
        " (`--force` goes with `/rollback run … --immediate`)" if "--force" in str(refusal) else ""
    )
    return (
        f":no_entry: No rollback request for *{service.name}* was made:"
        f" {escape_keeping_mentions(str(refusal))}{where}."
    )


def plan(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    """``/rollback plan <service> [--to N] [--at HH:MM] [--phases p,…] <reason>``."""
    try:
        service = service.only_regions(cmd.regions)  # --region: a partial rollback
    except PlanError as exc:
        return Reply(f":x: {escape(str(exc))}.")
    if (problem := phases_problem(service, cmd.phases)) is not None:
        return Reply(f":x: {escape(problem)}. Nothing was requested.")
    window = None
    if cmd.at is not None:
        try:
            window = parse_window(cmd.at, deps.clock(), service.tz)
        except UsageError as exc:  # it quotes what was typed: no ping, no link from it
            return Reply(f":x: {escape(str(exc))}.")
    return Reply(
        submit_request(
            deps,
            service,
            user=asker.user,
            reason=cmd.reason,
            target_revision=cmd.target_revision,
            window=window,
            phases=cmd.phases,
        ),
    )


def vote(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    """``approve <id>`` / ``reject <id> [reason]``: the same rules as the buttons."""
    assert cmd.rollback_id is not None
    user = asker.user
    if cmd.verb == "approve":
        answer = votes.approve(deps, cmd.rollback_id, user, via="command")
    else:
        answer = votes.reject(deps, cmd.rollback_id, user, cmd.reason, via="command")
    return Reply(answer.text)


def check_plan_form(
    deps: Deps, service: Service, reason: str, target: str, window_text: str, phases_text: str = ""
) -> tuple[dict[str, str], datetime | None, tuple[str, ...]]:
    """The Plan rollback form's fields: errors by field (Slack shows them under the inputs),
    and the window and the phases (empty: all) when there are none."""
    errors: dict[str, str] = {}
    window = None
    phases = _form_phases(service, phases_text, errors)
    try:
        if target:
            parse_revision(target)
            # a tag names a revision only if the cluster says so: ask it while the form is open
            check(deps, service, target, pin=False, phases=phases)
    except UsageError as exc:
        errors["target"] = str(exc).replace("`", "")
    except Refusal as refusal:
        errors["target"] = _fit(str(refusal).replace("`", ""))
    try:
        window = parse_window(window_text, deps.clock(), service.tz) if window_text else None
    except UsageError as exc:
        errors["window"] = str(exc).replace("`", "")
    if not reason:
        errors["reason"] = "Say why the service should be rolled back."
    return errors, window, phases


def _form_phases(service: Service, text: str, errors: dict[str, str]) -> tuple[str, ...]:
    """The form's Phases field, held to the rules of ``--phases`` (a form has no --force)."""
    if not text:
        return ()
    try:
        names = parse_phases(text)
        plan = service.plan(None)
        check_subset(plan, select_phases(plan, names, service.name), is_forced=False)
        return names
    except UsageError as exc:
        errors["phases"] = _fit(str(exc).replace("`", ""))
    except Refusal as refusal:
        errors["phases"] = _fit(str(refusal).replace("`", ""))
    except PlanError:
        return ()  # the request's own checks say why the plan cannot be built
    return ()


def _fit(text: str, limit: int = 300) -> str:
    """A field error Slack shows under the input: keep it short, visibly cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_form(deps: Deps, value: str) -> Reply | dict[str, Any]:
    """**Plan rollback** on an assessment (``value`` is ``service:assessment_id``): the form to
    open, or why not (the service left the catalog; the assessment describes an older release)."""
    service_name, _, assessment = value.partition(":")
    service = deps.catalog.get(service_name)
    if service is None:
        return Reply(f":x: {service_name} is no longer in the catalog.")
    assessment_id = int(assessment) if assessment.isdigit() else None
    found = pressed_assessment(deps, assessment_id)
    full, service = service, assessed_regions(service, found)
    if (stale := stale_reply(deps, service, found)) is not None:  # its own regions
        return stale
    try:
        phases = service.plan(None).phases
    except PlanError:
        phases = []  # the request's own checks say why, when it is sent
    if len(service.regions) == len(full.regions):  # not narrowed: every region, as the catalog
        return approval_blocks.plan_modal(service_name, assessment_id, service.timezone, phases)
    names = [r.name for r in service.regions]  # assess --region: a partial rollback
    return approval_blocks.plan_modal(
        service_name,
        assessment_id,
        service.timezone,
        phases,
        regions=names,
        regions_line=regions_line(full, names, service.waves),
    )


def form_service(deps: Deps, metadata: str) -> tuple[Service, int | None] | str:
    """The Plan form's service (narrowed to the regions its assessment read, which the form
    carries) and assessment id; or why the form can no longer be sent."""
    service_name, _, rest = metadata.partition(":")
    assessment, _, regions = rest.partition(":")
    service = deps.catalog.get(service_name)
    if service is None:
        return f"{service_name} left the catalog."
    try:
        service = service.only_regions(tuple(regions.split(",")) if regions else None)
    except PlanError as exc:  # a region left the catalog while the form was open
        return _fit(f"{exc}. Assess again and plan from the new assessment.")
    return service, int(assessment) if assessment.isdigit() else None


def reject_form(
    deps: Deps, rollback_id: int | None, user: str, message_ts: str | None
) -> Reply | dict[str, Any]:
    """**Reject** asks for a reason in a form; a refusal is said (and audited) before it opens."""
    r = deps.repo.get_rollback(rollback_id) if rollback_id is not None else None
    service = deps.catalog.get(r.service) if r else None
    if r is None or r.id is None or service is None:
        return Reply(":x: This rollback request no longer exists.")
    members = approver_members(deps, service)
    if policy.rejection_refusal(service, user, request_of(r), members) is not None:
        # votes.reject audits and words the refusal
        answer = votes.reject(deps, r.id, user, "", via="button", message_ts=message_ts)
        return Reply(answer.text)
    return approval_blocks.reject_modal(r.id, r.service)


def submit_reject_form(deps: Deps, metadata: str, user: str, reason: str) -> tuple[str, str]:
    """The Reject form sent: what to tell the rejecter, and where (the request's channel)."""
    answer = votes.reject(deps, int(metadata), user, reason, via="button")
    r = deps.repo.get_rollback(int(metadata))
    where = (r.approval_channel_id or r.channel_id or user) if r else user
    return answer.text, where


def confirm_button(deps: Deps, rollback_id: int | None, user: str, *, run: bool) -> Reply:
    """**Run anyway** / **Cancel rollback** under a healthy re-assessment of an approved request."""
    if rollback_id is None:
        return Reply(":x: This button does not name a rollback.")
    answer = start_confirmation.confirm(deps, rollback_id, user, run=run)
    if answer.is_ok and not answer.text.startswith("Rollback #"):
        return Reply(f"{answer.text} (<@{user}>)", replace_original=True)
    return Reply(answer.text)


def approve_button(deps: Deps, rollback_id: int | None, user: str, message_ts: str | None) -> Reply:
    if rollback_id is None:
        return Reply(":x: This button does not name a rollback.")
    answer = votes.approve(deps, rollback_id, user, via="button", message_ts=message_ts)
    return Reply(answer.text)
