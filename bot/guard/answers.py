"""``/rollback guard <service>`` shows the guard of a service (the release it watches, each
trigger's value and breach time, what it did last); ``on`` / ``off`` resume or pause it
(responders only, audited)."""

from __future__ import annotations

from bot.catalog.load import Service
from bot.deps import Deps
from bot.guard.message import guard_text
from bot.notify.reply import Asker, Reply
from bot.rollback import policy
from bot.rollback.command import Command
from bot.rollback.triggers import GuardConfig
from storage.guard_models import states_from_json


def guard_command(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    config = service.guard
    if not config.is_enabled:
        return Reply(
            f"*{service.name}* has no automatic guard: add `auto_rollback: {{enabled: true,"
            " triggers: […]}}` to its catalog entry (see rollback.example.yaml)."
        )
    if cmd.reason:
        return _switch(deps, service, asker.user, is_on=cmd.reason == "on")
    return Reply(_status(deps, service, config))


def _status(deps: Deps, service: Service, config: GuardConfig) -> str:
    state = deps.repo.guarded_service(service.name)
    paused = (
        f":double_vertical_bar: Paused by <@{state.paused_by}>. `/rollback guard {service.name} on`"
        " resumes it.\n"
        if state is not None and state.is_paused
        else ""
    )
    latest = deps.repo.list_guarded(service=service.name, limit=1)
    if not latest:
        seen = (
            f" (revision {state.last_revision} runs now)" if state and state.last_revision else ""
        )
        return (
            f"{paused}:shield: The guard of *{service.name}* waits for the next release{seen}:"
            f" it watches each new release for {int(config.watch_minutes)} min."
        )
    release = latest[0]
    return paused + guard_text(release, config, states_from_json(release.states), deps.clock())


def _switch(deps: Deps, service: Service, user: str, *, is_on: bool) -> Reply:
    if not policy.may_run_immediately(service, user):
        deps.audit("guard.switch_refused", service.name, user, on=is_on)
        return Reply(
            f":no_entry: Only responders of *{service.name}* may pause or resume its guard:"
            f" {policy.who_may_run(service)}."
        )
    deps.repo.set_guard_paused(service.name, not is_on, user, deps.clock())
    deps.audit("guard.resumed" if is_on else "guard.paused", service.name, user)
    if is_on:
        return Reply(
            f":shield: The guard of *{service.name}* is on again (new releases are watched)."
        )
    return Reply(
        f":double_vertical_bar: The guard of *{service.name}* is paused: it watches no release and"
        f" rolls nothing back until `/rollback guard {service.name} on`."
    )
