"""``/rollback`` subcommands: parse and ack at once, then the slow part in the work pool."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.kube.values import KubeError
from bot.approvals.blocks import assessment_buttons
from bot.assessment.signals import assess_service, store_assessment
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.preflight import current_release, release_text
from bot.notify import blocks
from bot.rollback.assess import Decision
from bot.rollback.command import Command, UsageError, parse_command
from handlers import approvals, rollbacks
from handlers.delivery import DATABASE_DOWN, delivery_key
from handlers.errors import tell_on_error
from handlers.ids import SlashCommand

log = logging.getLogger(__name__)

# Slack errors that mean "the bot cannot post here", answered with a hint instead of a message.
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


class AssessmentFailed(Exception):
    """An assessment failed and the person who asked was told why. Raised on to the work pool so
    the failure is still logged and counted (metrics, the console's exit status), but its
    ``tell`` must not answer a second time with the generic internal-error message."""


def tell_assessment_error(respond: Respond, service: str) -> Callable[[BaseException], None]:
    def tell(exc: BaseException) -> None:
        if not isinstance(exc, AssessmentFailed):  # that one was told already, with its reason
            tell_on_error(respond, f"the assessment of {service}")(exc)

    return tell


def register(app: App, deps: Deps) -> None:
    @app.command(SlashCommand.ROLLBACK)
    def rollback(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        try:
            cmd = parse_command(command.get("text", ""))
        except UsageError as exc:
            if exc.suggestion is not None:  # a typo: the one word meant, not the whole grammar
                text, bl = blocks.notice(
                    f":x: {blocks.escape(str(exc))} (`/rollback help` lists every command.)"
                )
            else:
                text, bl = blocks.usage_message(f"{exc}.")
            ack(text=text, blocks=bl, response_type="ephemeral")
            return
        if cmd.verb == "help":
            text, bl = blocks.usage_message()
            ack(text=text, blocks=bl, response_type="ephemeral")
        elif cmd.verb == "assess":
            _assess(deps, cmd, command, ack, client, respond)
        elif cmd.verb == "run":
            if (service := _known_service(deps, cmd, ack)) is not None:
                rollbacks.run(deps, cmd, service, command, ack, respond)
        elif cmd.verb == "status":
            rollbacks.status(deps, cmd, ack)
        elif cmd.verb == "abort":
            rollbacks.abort(deps, cmd, command, ack)
        elif cmd.verb == "review":
            from handlers.reviews import review_command

            review_command(deps, cmd, command, ack)
        elif cmd.verb == "plan":
            if (service := _known_service(deps, cmd, ack)) is not None:
                approvals.plan(deps, cmd, service, command, ack)
        elif cmd.verb in ("approve", "reject"):
            approvals.vote(deps, cmd, command, ack)
        elif cmd.verb == "history":
            approvals.history(deps, cmd, ack)
        else:  # parse_command only returns the verbs above; say so rather than stay silent
            ack(text=f"`/rollback {cmd.verb}` is not handled.", response_type="ephemeral")


def _known_service(deps: Deps, cmd: Command, ack: Ack) -> Service | None:
    service = deps.catalog.get(cmd.service or "")
    if service is None:
        text, bl = blocks.unknown_service_message(cmd.service or "", deps.catalog.names)
        ack(text=text, blocks=bl, response_type="ephemeral")
    return service


def _assess(
    deps: Deps, cmd: Command, command: dict[str, Any], ack: Ack, client: WebClient, respond: Respond
) -> None:
    service = _known_service(deps, cmd, ack)
    if service is None:
        return
    # Nothing but parsing happens before ack(): under load a database write here queues behind
    # other writers (SQLite has one) and can push the ack past Slack's 3 s (see the benchmark).
    # The delivery key and the assessment row are stored first thing after ack, before any
    # query runs or any answer is posted, so a retry or double delivery still answers once.
    user, channel = str(command.get("user_id", "")), command.get("channel_id")
    if busy := deps.work.assessments.claim(user, service.name, channel or service.channel):
        ack(text=busy, response_type="ephemeral")
        return
    ack(text=f":hourglass_flowing_sand: Assessing *{service.name}*…", response_type="ephemeral")
    submit_claimed(deps, service, delivery_key(command), user, channel, client, respond)


def submit_claimed(
    deps: Deps,
    service: Service,
    key: str | None,
    user: str,
    channel: str | None,
    client: WebClient,
    respond: Respond,
) -> None:
    """Run an assessment whose slot ``user`` holds (AssessmentSlots.claim) in the bulk lane,
    and give the slot back when it ends."""

    def assess_then_release() -> None:
        try:
            start_assessment(deps, service, key, user, channel, client, respond)
        finally:
            deps.work.assessments.release(user, service.name)

    try:
        deps.work.submit(
            f"assessment of {service.name}",
            assess_then_release,
            tell=tell_assessment_error(respond, service.name),
            lane="bulk",
        )
    except RuntimeError:  # shutting down
        deps.work.assessments.release(user, service.name)
        raise


def start_assessment(
    deps: Deps,
    service: Service,
    key: str | None,
    user: str | None,
    channel: str | None,
    client: WebClient,
    respond: Respond,
) -> None:
    try:
        assessment_id = deps.repo.start_assessment(key, service.name, user, channel, deps.clock())
    except SQLAlchemyError:
        log.exception("cannot store the assessment request for %s", service.name)
        respond(text=DATABASE_DOWN, response_type="ephemeral")
        return
    if assessment_id is None:
        log.info("duplicate delivery %s of an assessment of %s ignored", key, service.name)
        deps.metrics.slack_requests.labels("duplicate").inc()
        return
    deps.metrics.slack_requests.labels("handled").inc()
    _run_assessment(deps, service, assessment_id, user, channel, client, respond)


def _run_assessment(
    deps: Deps,
    service: Service,
    assessment_id: int,
    user: str | None,
    channel: str | None,
    client: WebClient,
    respond: Respond,
) -> None:
    started = time.monotonic()
    try:
        result = assess_service(deps.reader, service)
    except Exception as exc:
        deps.repo.fail_assessment(assessment_id, f"{type(exc).__name__}: {exc}", deps.clock())
        respond(
            text=f":x: Assessment #{assessment_id} of *{service.name}* failed"
            f" ({type(exc).__name__}). Nothing was changed; the bot's log has the details.",
            response_type="ephemeral",
        )
        raise AssessmentFailed(f"assessment #{assessment_id} of {service.name}") from exc
    deps.metrics.assessment_seconds.labels(service.name).observe(time.monotonic() - started)
    deps.metrics.assessments.labels(service.name, result.decision.value).inc()
    release = _release(deps, service)
    now = deps.clock()
    store_assessment(deps.repo, service, assessment_id, result, now, release)
    text, bl = blocks.assessment_message(
        result, assessment_id=assessment_id, requested_by=user, at=now
    )
    where = release_text(release) if release else "the running release could not be read"
    bl.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{where}_"}]})
    is_rollback_advised = result.decision in (
        Decision.IMMEDIATE_ROLLBACK,
        Decision.ROLLBACK_RECOMMENDED,
    )
    bl.append(assessment_buttons(service.name, assessment_id, offer_run_now=is_rollback_advised))
    message_ts = _post(client, respond, channel or service.channel, text, bl)
    deps.repo.add_audit_event(
        "assessment.completed",
        now=deps.clock(),
        service=service.name,
        assessment_id=assessment_id,
        actor=user,
        channel_id=channel,
        message_ts=message_ts,
        detail={
            "decision": result.decision.value,
            "total": result.total,
            **{str(k): v for k, v in result.scores.items()},
        },
    )


def _release(deps: Deps, service: Service) -> dict[str, Any] | None:
    """What runs now, for the assessment's buttons (valid for that release only)."""
    try:
        return current_release(deps.kube, service)
    except KubeError as exc:
        log.warning("assessment of %s: cannot read the deployment: %s", service.name, exc)
        return None


def _post(
    client: WebClient, respond: Respond, channel: str, text: str, bl: list[Any]
) -> str | None:
    """Post to the channel; when Slack refuses, answer the user privately with the reason."""
    try:
        resp = client.chat_postMessage(channel=channel, text=text, blocks=bl, unfurl_links=False)
        return str(resp["ts"])
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown_error")
    log.warning("cannot post to %s (%s); answering privately", channel, error)
    hint = (
        "Invite me with `/invite @rollback-bot`."
        if error in CANNOT_POST
        else "Slack refused the message; try again in a minute."
    )
    note = f"_I could not post in this channel (`{error}`). {hint}_"
    respond(
        text=f"{text}\n{note}",
        blocks=[*bl, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}],
        response_type="ephemeral",
    )
    return None
