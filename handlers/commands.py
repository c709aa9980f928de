"""``/rollback``: parse, then one verb from the table. A verb that changes something stores it
before the ack (durable before acted on); slow reads (assessments, dry runs) run after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.approvals import submit
from bot.assessment import service as assessment
from bot.catalog.load import PlanError, Service
from bot.deps import Deps
from bot.drills.report import drill_history
from bot.drills.run import drill_command
from bot.execution import immediate
from bot.guard.answers import guard_command
from bot.notify import blocks, status
from bot.notify.reply import Asker, Reply
from bot.rehearsal.start import rehearse
from bot.review import answers
from bot.rollback.command import Command, UsageError, parse_command
from handlers.answer import ack_with
from handlers.delivery import delivery_key
from handlers.ids import SlashCommand

Verb = Callable[[Deps, Command, Asker], Reply]
ServiceVerb = Callable[[Deps, Command, Service, Asker], Reply]


def _for_service(verb: ServiceVerb) -> Verb:
    """A verb about one service of the catalog; an unknown name gets the list of known ones."""

    def checked(deps: Deps, cmd: Command, asker: Asker) -> Reply:
        service = deps.catalog.get(cmd.service or "")
        if service is None:
            return Reply(*blocks.unknown_service_message(cmd.service or "", deps.catalog.names))
        return verb(deps, cmd, service, asker)

    return checked


def _help(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    return Reply(*blocks.usage_message())


def _assess(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    try:
        service = service.only_regions(cmd.regions)  # --region: only those regions
    except PlanError as exc:
        return Reply(f":x: {blocks.escape(str(exc))}.")
    return assessment.assess(deps, service, asker)


def _drill(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    """A readiness drill (changes nothing); with ``--rehearse``, a rollback rehearsed in staging."""
    if cmd.rehearse:
        return rehearse(deps, cmd, service, asker)
    return drill_command(deps, cmd, service, asker)


def _status(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    return status.status(deps, cmd)


def _history(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    reply = status.history(deps, cmd)  # it answers an unknown service itself
    if cmd.service is None or deps.catalog.get(cmd.service) is None:
        return reply
    return Reply(f"{reply.text}\n\n{drill_history(deps, cmd.service)}")


def _review(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    return answers.review_command(deps, cmd)


# Every verb of the grammar (bot/rollback/command.py) → what answers it.
VERBS: dict[str, Verb] = {
    "help": _help,
    "assess": _for_service(_assess),
    "run": _for_service(immediate.run),
    "plan": _for_service(submit.plan),
    "approve": submit.vote,
    "reject": submit.vote,
    "abort": immediate.abort,
    "status": _status,
    "history": _history,
    "review": _review,
    "guard": _for_service(guard_command),
    "drill": _for_service(_drill),
}


def answer(deps: Deps, text: str, asker: Asker) -> Reply:
    """What ``/rollback <text>`` answers at once (slow work is queued by the verb)."""
    try:
        cmd = parse_command(text)
    except UsageError as exc:
        if exc.suggestion is not None:  # a typo: the one word meant, not the whole grammar
            return Reply(
                *blocks.notice(
                    f":x: {blocks.escape(str(exc))} (`/rollback help` lists every command.)"
                )
            )
        return Reply(*blocks.usage_message(f"{exc}."))
    verb = VERBS.get(cmd.verb)
    if verb is None:  # parse_command only returns the verbs above; say so rather than stay silent
        return Reply(f"`/rollback {cmd.verb}` is not handled.")
    return verb(deps, cmd, asker)


def install(app: App, deps: Deps) -> None:
    @app.command(SlashCommand.ROLLBACK)
    def rollback(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        asker = Asker(
            user=str(command.get("user_id", "")),
            channel=command.get("channel_id"),
            delivery_key=delivery_key(command),
            respond=respond,
        )
        ack_with(ack, answer(deps, command.get("text", ""), asker))
