"""What the guard does when a trigger fires: an immediate rollback through the same engine,
notices, incident channel, paging and review as a person's ``--immediate`` (started by the
guard, the reason stating trigger, value and duration) — unless a rollback already runs, the
day's automatic rollbacks are used up, a safety check fails or the service asks for
confirmation: then it asks the channel "Roll back now / Keep release" and waits."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from bot.adapters.slack.web import SlackError
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.immediate import start_immediate
from bot.execution.preflight import Refusal, check
from bot.notify.blocks import button, escape, notice
from bot.notify.reply import Reply
from bot.rollback import policy
from bot.rollback.lifecycle import GuardDueKind, guard_confirm_key, guard_page_key
from bot.rollback.triggers import ConfirmTimeout, GuardConfig
from storage.guard_models import GUARD_ACTOR, GuardedRelease
from storage.models import DueWork

log = logging.getLogger(__name__)

ROLLBACK_NOW_ACTION = "guard_rollback_now"
KEEP_ACTION = "guard_keep_release"


def fire(deps: Deps, service: Service, release: GuardedRelease, reason: str) -> None:
    config = service.guard
    running = deps.repo.get_active_rollback(service.name)
    if running is not None:  # a rollback already under way (or waiting) wins: never a second one
        say(
            deps,
            service,
            release,
            f":information_source: Rollback #{running.id} of *{service.name}* is already"
            f" {running.status.replace('_', ' ')}: the guard leaves it to that one.",
        )
        deps.audit("guard.left_to_rollback", service.name, rollback=running.id)
        return
    problems = safety_problems(deps, service, config)
    if config.requires_confirmation or problems:
        ask(deps, service, release, reason, problems)
        return
    roll_back(deps, service, release, reason, GUARD_ACTOR)


def safety_problems(deps: Deps, service: Service, config: GuardConfig) -> list[str]:
    """Why the guard must not roll back by itself (each turns the rollback into a question)."""
    problems = []
    since = deps.clock() - timedelta(days=1)
    done = deps.repo.count_guard_rollbacks(service.name, since)
    if done >= config.max_per_day:
        problems.append(
            f"{done} automatic rollbacks of {service.name} in the last 24 h"
            f" (max_per_day: {config.max_per_day}): no rollback loops"
        )
    if config.verify_previous_version_healthy:
        try:
            check(deps, service, None, pin=False)
        except Refusal as refusal:
            problems.append(f"verify_previous_version_healthy: {refusal}")
    if (
        config.verify_rollback_tested
    ):  # a passed readiness drill, recent enough (drills: max_age_days)
        fresh_days = service.drills.fresh_days
        last = deps.repo.last_drill(service.name, is_passed=True)
        if last is None:
            problems.append(
                "verify_rollback_tested: no successful drill of this rollback is recorded"
                f" (`/rollback drill {service.name}`)"
            )
        elif last.started_at < deps.clock() - timedelta(days=fresh_days):
            problems.append(
                f"verify_rollback_tested: the last successful drill (#{last.id}) is older than"
                f" {fresh_days:g} days (`/rollback drill {service.name}`)"
            )
    return problems


def roll_back(deps: Deps, service: Service, release: GuardedRelease, reason: str, by: str) -> None:
    who = "the guard" if by == GUARD_ACTOR else f"the guard, confirmed by <@{by}>"
    started = start_immediate(
        deps,
        service,
        user=by,
        reason=f"automatic rollback by {who}: {reason}",
        target_revision=None,
        channel_id=service.channel,
    )
    if release.id is not None and started.rollback_id is not None:
        deps.repo.set_guard_rollback(release.id, started.rollback_id)
    say(deps, service, release, started.text)


def ask(
    deps: Deps, service: Service, release: GuardedRelease, reason: str, problems: list[str]
) -> None:
    """Roll back now / Keep release, in the guard message's thread (shown in the channel too)."""
    assert release.id is not None
    config = service.guard
    timeout = config.confirm_timeout_seconds
    # after a failed safety check or a used-up day, silence never rolls back by itself
    on_timeout = (
        ConfirmTimeout.ROLLBACK
        if config.on_confirm_timeout == ConfirmTimeout.ROLLBACK and not problems
        else ConfirmTimeout.KEEP
    )
    then = "roll back" if on_timeout == ConfirmTimeout.ROLLBACK else "keep the release"
    lines = [
        f":rotating_light: *{escape(service.name)}* {escape(release.release)}: {escape(reason)}."
    ]
    lines += [f":warning: Not rolling back by itself: {escape(p)}." for p in problems]
    lines.append(
        f"Roll back now, or keep the release? Unanswered in {int(timeout)} s,"
        f" the guard will {then}."
    )
    text = "\n".join(lines)
    value = f"{service.name}:{release.id}"
    text, blocks = notice(text)  # within Slack's limits, cut visibly
    blocks.append(
        {
            "type": "actions",
            "elements": [
                button("Roll back now", ROLLBACK_NOW_ACTION, value, "danger"),
                button("Keep release", KEEP_ACTION, value),
            ],
        }
    )
    deps.due.schedule(
        GuardDueKind.CONFIRM_TIMEOUT,
        guard_confirm_key(release.id),
        deps.clock() + timedelta(seconds=timeout),
        {
            "service": service.name,
            "release_id": release.id,
            "reason": reason,
            "on_timeout": on_timeout.value,
        },
    )
    deps.audit("guard.asked", service.name, reason=reason, problems=problems, then=on_timeout)
    if not say(deps, service, release, text, blocks=blocks):
        return  # nobody is paged about a question nobody can see
    # the on-call's first level is paged about it (bot.guard.oncall), once per question
    payload = {"service": service.name, "release_id": release.id, "reason": reason}
    if deps.due.schedule(GuardDueKind.PAGE, guard_page_key(release.id), deps.clock(), payload):
        deps.kick_due_work()  # now rather than at the next tick


def answer(deps: Deps, value: str, user: str, *, run: bool) -> Reply:
    """**Roll back now** / **Keep release**: a responder of the service answers once."""
    name, _, number = value.partition(":")
    service = deps.catalog.get(name)
    release = _release(deps, name, int(number)) if number.isdigit() else None
    if service is None or release is None or release.id is None:
        return Reply("This guard question no longer exists.")
    if not policy.may_run_immediately(service, user):
        deps.audit("guard.answer_refused", service.name, user)
        return Reply(
            f":no_entry: Only responders of *{service.name}* may answer:"
            f" {policy.who_may_run(service)}."
        )
    if not deps.due.cancel(guard_confirm_key(release.id)):
        return Reply("This question was answered already (or its time ran out).")
    deps.due.cancel(guard_page_key(release.id))  # answered before its page went out: none
    reason = release.fired_reason or release.fired_trigger or "a trigger held"
    if run:
        roll_back(deps, service, release, reason, user)
        return Reply(
            f":arrows_counterclockwise: Rolling back, confirmed by <@{user}>.",
            replace_original=True,
        )
    deps.audit("guard.kept", service.name, user, revision=release.revision)
    return Reply(
        f":white_check_mark: Release kept by <@{user}>; the guard stops here.",
        replace_original=True,
    )


def _confirm_timed_out(deps: Deps, item: DueWork) -> None:
    payload = item.payload
    service = deps.catalog.get(str(payload.get("service")))
    release = _release(deps, str(payload.get("service")), int(payload.get("release_id", 0)))
    if service is None or release is None:
        return
    if payload.get("on_timeout") == ConfirmTimeout.ROLLBACK:
        deps.audit("guard.confirm_timeout", service.name, then=ConfirmTimeout.ROLLBACK)
        roll_back(deps, service, release, str(payload.get("reason")), GUARD_ACTOR)
        return
    deps.audit("guard.confirm_timeout", service.name, then=ConfirmTimeout.KEEP)
    say(deps, service, release, ":hourglass: Nobody answered: the release is kept.")


def _release(deps: Deps, service: str, release_id: int) -> GuardedRelease | None:
    found = deps.repo.guarded_release(release_id)
    return found if found is not None and found.service == service else None


def say(
    deps: Deps,
    service: Service,
    release: GuardedRelease,
    text: str,
    *,
    blocks: list[dict[str, Any]] | None = None,
) -> bool:
    """A note in the guard message's thread, shown in the channel as well; False if Slack did
    not take it."""
    thread = release.message_ts if release.channel_id == service.channel else None
    try:
        deps.slack.chat_postMessage(
            channel=service.channel,
            text=text,
            blocks=blocks,
            thread_ts=thread,
            reply_broadcast=True if thread else None,
            unfurl_links=False,
        )
    except SlackError as exc:
        log.warning("guard note for %s not posted: %s", service.name, exc.error)
        return False
    return True


def install(deps: Deps) -> None:
    """The confirmation's timeout (due work)."""
    deps.due.register(GuardDueKind.CONFIRM_TIMEOUT, lambda item: _confirm_timed_out(deps, item))
