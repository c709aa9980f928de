"""``/rollback drill <service> --rehearse [--to N] [reason]``: check, store and start a rehearsal.

Refusals (not a responder, no ``staging:`` target, nothing to roll back to) are audited before
they are said, and nothing is stored. A started rehearsal is stored with its steps before the
engine gets it (durable before acted on; a restart resumes it)."""

from __future__ import annotations

import os
from typing import Any

from bot.adapters.kube.contexts import kubeconfig_current_context
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.steps.table import plan_rows
from bot.notify.blocks import escape
from bot.notify.reply import Asker, Reply
from bot.notify.status import progress_link, progress_url
from bot.rehearsal.plan import Rehearsal, plan_rehearsal, where
from bot.rollback import policy
from bot.rollback.command import Command
from bot.rollback.lifecycle import RollbackKind, RollbackStatus
from bot.rollback.safety import Refusal, release_label
from storage.models import Rollback
from storage.repo.records import ActiveRollbackExists

DEFAULT_REASON = "rehearsal of the rollback in staging"


def rehearse(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    """A real rollback of ``service`` in its staging target and the roll-forward after it."""
    user, twin = asker.user, service.staging_twin()
    if not policy.may_rehearse(service, user):
        _refused(deps, service, asker, "not a responder")
        return Reply(
            f":no_entry: Only responders of *{service.name}* may rehearse its rollback in"
            f" staging: {policy.who_may_run(service)}."
        )
    if twin is None:
        _refused(deps, service, asker, "no staging: target in the catalog")
        return Reply(
            f":x: *{service.name}* has no `staging:` target in the catalog, so there is nowhere"
            " to rehearse its rollback (a rehearsal never touches production). Add one to its"
            " entry, e.g. `staging: {context: staging, namespace: shop}` (see"
            " rollback.example.yaml). Nothing was changed."
        )
    try:
        rehearsal = plan_rehearsal(
            deps.kube, service, twin, cmd.target_revision, current_context=_current_context(deps)
        )
    except Refusal as refusal:
        _refused(deps, service, asker, str(refusal), target=cmd.target_revision)
        return Reply(
            f":no_entry: No rehearsal of *{service.name}* was started: {escape(str(refusal))}."
            " Nothing was changed."
        )
    try:
        row = _store(deps, service, twin, rehearsal, user, cmd.reason.strip() or DEFAULT_REASON)
    except ActiveRollbackExists as exc:
        active = deps.repo.get_rollback(exc.existing_id)
        return Reply(
            f":warning: A rehearsal of *{service.name}* is already running in staging:"
            f" #{exc.existing_id}{progress_link(progress_url(deps, active))}. Follow it there,"
            f" or `/rollback abort {exc.existing_id}`."
        )
    assert row.id is not None
    undo = rehearsal.undo
    deps.audit(
        "rehearsal.started",
        row,
        user,
        channel_id=asker.channel,
        staging=where(twin),
        strategy=rehearsal.plan.strategy,
        from_revision=undo.from_revision if undo else None,
        to_revision=undo.to_revision if undo else None,
        changes=list(rehearsal.changes),
        target=cmd.target_revision,
    )
    deps.engine.submit(row.id)
    return Reply(
        f":arrows_counterclockwise: Rehearsal #{row.id} of *{service.name}* started in staging"
        f" ({escape(where(twin))}): {escape(_what(rehearsal))} and forward again."
        f"{_notes(rehearsal)} Production is not touched. Progress in <#{service.channel}>."
    )


def _current_context(deps: Deps) -> str | None:
    """The kubeconfig's current context, which a target without a context uses (in a pod
    without a context the bot uses its in-cluster credentials instead: None)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return kubeconfig_current_context(deps.settings.kubeconfig)


def _what(rehearsal: Rehearsal) -> str:
    """``revision 3 (checkout:v3) back to 2 (checkout:v2)``, or the changes of the plan."""
    undo = rehearsal.undo
    if undo is not None and not rehearsal.changes:  # the built-in undo
        return (
            f"revision {undo.from_revision} ({release_label(undo.images_before)}) back to"
            f" {undo.to_revision} ({release_label(undo.images_after)})"
        )
    return rehearsal.what


def _notes(rehearsal: Rehearsal) -> str:
    return "".join(f" {escape(n)}." for n in rehearsal.notes)


def _store(
    deps: Deps, service: Service, twin: Service, rehearsal: Rehearsal, user: str, reason: str
) -> Rollback:
    """The running row and its steps in one transaction, under the staging key (raises
    ActiveRollbackExists while another rehearsal of the service runs). No start due work: a
    rehearsal sends no notices and pages nobody; its end posts the report."""
    return deps.repo.create_rollback(
        service=twin.name,
        kind=RollbackKind.REHEARSAL,
        strategy=rehearsal.plan.strategy,
        requested_by=user,
        reason=reason,
        target_revision=str(rehearsal.undo.to_revision) if rehearsal.undo else None,
        channel_id=service.channel,
        status=RollbackStatus.RUNNING,
        now=deps.clock(),
        steps=plan_rows(rehearsal.plan),
    )


def _refused(deps: Deps, service: Service, asker: Asker, why: str, **detail: Any) -> None:
    """Audited before it is answered; nothing was stored or changed."""
    deps.audit(
        "rehearsal.refused", service.name, asker.user, channel_id=asker.channel, why=why, **detail
    )
