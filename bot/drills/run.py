"""``/rollback drill <service> [--to N]``: the readiness drill. The answer comes at once; the
drill row is stored first thing after it (durable before acted on), the checks run
concurrently, then the result is stored, audited and posted in the service's channel.

A drill changes nothing: it reads, asks SelfSubjectAccessReviews, and sends every write of the
plan as a server-side dry run (``dryRun=All``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import timedelta
from functools import partial

from bot.adapters.slack.web import SlackError
from bot.catalog.load import PlanError, Service, staging_key
from bot.deps import Deps
from bot.drills.checks import Check, unknown
from bot.drills.estimate import estimate_check, rollback_halves
from bot.drills.permissions import permissions_check
from bot.drills.readiness import channel_check, dry_run_check, oncall_check, prometheus_check
from bot.drills.report import report_message
from bot.drills.target import target_checks
from bot.notify.reply import Asker, Reply, storage_error_text, tell_on_error
from bot.rollback.command import Command
from bot.rollback.lifecycle import DrillDueKind, drill_stale_key
from bot.rollback.plan import Plan
from storage.drill_models import Drill, DrillTrigger
from storage.errors import StorageError

log = logging.getLogger(__name__)

CHECK_DEADLINE_SECONDS = 120.0  # a check still out after this is reported unknown
STALE_AFTER = timedelta(minutes=10)  # a drill still running then was abandoned by its process


def drill_command(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    """What ``/rollback drill`` answers at once; the drill runs after the answer."""
    try:
        plan = service.plan(None)
    except PlanError as exc:
        return Reply(f":x: {exc}")
    if cmd.target_revision and not any(s.kind == "rollout_undo" for s in plan.steps):
        return Reply(
            f":x: `--to` chooses the revision a rollout undo goes back to, and {service.name}'s"
            f" plan ({plan.strategy}) has none. Run `/rollback drill {service.name}` without it."
        )

    def submit() -> None:
        deps.work.submit(
            f"drill of {service.name}",
            lambda: _start(deps, service, asker, cmd.target_revision),
            tell=tell_on_error(asker.respond, f"the drill of {service.name}"),
            lane="bulk",
        )

    return Reply(
        f":stethoscope: Readiness drill of *{service.name}*: checking (nothing will be changed);"
        f" the report goes to <#{service.channel}>.",
        then=submit,
    )


def _start(deps: Deps, service: Service, asker: Asker, target: str | None) -> None:
    try:
        drill_id = deps.repo.start_drill(
            service.name,
            deps.clock(),
            trigger=DrillTrigger.MANUAL,
            requested_by=asker.user,
            channel_id=asker.channel,
            target_revision=target,
            delivery_key=asker.delivery_key,
        )
    except StorageError as exc:
        log.exception("cannot store the drill of %s", service.name)
        asker.respond(text=storage_error_text(exc), response_type="ephemeral")
        return
    if drill_id is None:
        log.info("duplicate delivery %s of a drill ignored", asker.delivery_key)
        return
    # should this process die during the drill, another one ends it and says so
    stale_at = deps.clock() + STALE_AFTER
    deps.due.schedule(DrillDueKind.STALE, drill_stale_key(drill_id), stale_at, {"drill": drill_id})
    drill = run_drill(deps, service, drill_id, target, actor=asker.user)
    deps.due.cancel(drill_stale_key(drill_id))
    if drill.message_ts is None:  # the channel refused it: the person still gets the report
        text, bl = report_message(drill, service.name)
        asker.respond(text=text, blocks=bl, response_type="ephemeral")


def readiness_checks(deps: Deps, service: Service, target: str | None) -> list[Check]:
    """Every check, run at the same time; one that fails or hangs is reported unknown."""
    plan = service.plan(None)
    reader = deps.reader
    # one moment of the cluster for every check: each object is read once, writes still go out
    deps = replace(deps, kube=deps.kube.reading_once())
    jobs: list[tuple[str, Callable[[], list[Check]]]] = [
        *_cluster_jobs(deps, service, target),
        ("Dry run", lambda: [dry_run_check(deps, service, plan, target)]),
        ("Prometheus", lambda: [prometheus_check(reader.prometheus, service, plan)]),
        ("On-call ladder", lambda: [oncall_check(deps.settings, service)]),
        ("Channel", lambda: [channel_check(deps.slack, service)]),
        ("Estimate", lambda: [_estimate(deps, service, plan)]),
    ]
    futures = [(name, reader.pool.submit(job)) for name, job in jobs]
    return [c for name, future in futures for c in _outcome(name, future)]


def _cluster_jobs(
    deps: Deps, service: Service, target: str | None
) -> list[tuple[str, Callable[[], list[Check]]]]:
    """The target and permission checks, on each cluster the service runs in: a multi-region
    service's every region (its own context, namespace and deployment), named with it."""

    def target_job(place: Service) -> list[Check]:
        found = target_checks(deps.kube, deps.reader.http, place, place.plan(None), target)
        return _in_region(place, found)

    def permissions_job(place: Service) -> list[Check]:
        return _in_region(place, [permissions_check(deps.kube, place, place.plan(None))])

    places = [service.in_region(r.name) for r in service.regions] or [service]
    return [
        (f"{name}{_where(place)}", partial(job, place))
        for place in places
        for name, job in (("Target", target_job), ("Permissions", permissions_job))
    ]


def _where(place: Service) -> str:
    return f" ({place.region.name})" if place.region is not None else ""


def _in_region(place: Service, checks: list[Check]) -> list[Check]:
    return [replace(c, name=c.name + _where(place)) for c in checks]


def _outcome(name: str, future: Future[list[Check]]) -> list[Check]:
    try:
        return future.result(timeout=CHECK_DEADLINE_SECONDS)
    except FutureTimeout:
        future.cancel()
        why = f"no answer within {CHECK_DEADLINE_SECONDS:g} s"
    except Exception as exc:
        log.exception("drill check %s failed", name)
        why = f"the check itself failed ({type(exc).__name__}); the bot's log has the details"
    return [unknown(name, why, "Run the drill again; if it persists, look at the bot's log.")]


def run_drill(
    deps: Deps,
    service: Service,
    drill_id: int,
    target: str | None,
    *,
    actor: str | None,
    mention: Sequence[str] = (),
    schedule: str = "",
) -> Drill:
    """Run the checks of a stored drill, store and audit the result, post the report."""
    started = time.monotonic()
    error = None
    try:
        checks = readiness_checks(deps, service, target)
    except Exception as exc:  # e.g. the plan cannot be built any more: stored, said, logged
        log.exception("drill #%d of %s failed", drill_id, service.name)
        checks, error = [], f"{type(exc).__name__}: {exc}"
    drill = deps.repo.finish_drill(
        drill_id,
        deps.clock(),
        checks=[c.as_json() for c in checks],
        duration_seconds=time.monotonic() - started,
        error=error,
    )
    deps.audit(
        "drill.finished",
        service.name,
        actor,
        drill=drill_id,
        status=drill.status,
        failed_checks=drill.failed_checks,
        checks={c.name: c.state.value for c in checks},
    )
    return post_report(deps, service, drill, mention=mention, schedule=schedule)


def post_report(
    deps: Deps, service: Service, drill: Drill, *, mention: Sequence[str] = (), schedule: str = ""
) -> Drill:
    """The report in the service channel (the drill keeps the message's ts)."""
    assert drill.id is not None
    drill_id = drill.id
    text, bl = report_message(drill, service.name, mention=mention, schedule=schedule)
    try:
        posted = deps.slack.chat_postMessage(
            channel=service.channel, text=text, blocks=bl, unfurl_links=False
        )
    except SlackError as exc:
        log.warning("drill #%d: cannot post to %s (%s)", drill_id, service.channel, exc.error)
        return drill
    deps.repo.set_drill_message(drill_id, str(posted["ts"]))
    return deps.repo.get_drill(drill_id) or drill


def _estimate(deps: Deps, service: Service, plan: Plan) -> Check:
    """Against production's past rollbacks; the rehearsals in staging are read only when
    production has none (they would not be used)."""
    history = deps.repo.phase_durations(service.name)
    staged = () if history else deps.repo.phase_durations(staging_key(service.name))
    return estimate_check(
        plan, history, service.sla_minutes, service.name, rehearsals=rollback_halves(staged)
    )
