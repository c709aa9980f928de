"""Start, run and post an assessment: the slot (one per service, a few per person), the stored
row (first thing after the ack), the signals, the decision and its buttons in the channel."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bot.adapters.kube.values import KubeError
from bot.adapters.slack.web import SlackError
from bot.approvals.blocks import assess_again_button, assessment_buttons
from bot.assessment.signals import assess_service, store_assessment
from bot.catalog.load import PlanError, Service
from bot.deps import Deps
from bot.execution.release import current_release, release_text, stale_assessment
from bot.notify import blocks
from bot.notify.reply import Asker, Reply, Respond, storage_error_text, tell_on_error
from bot.regions.assess import assess_regions, region_lines
from bot.rollback.assess import Assessment as AssessmentResult
from bot.rollback.assess import Decision
from storage.errors import StorageError
from storage.models import Assessment, Rollback

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


def assess(deps: Deps, service: Service, asker: Asker) -> Reply:
    """Claim an assessment slot and queue the assessment; what to answer at once."""
    # Nothing but parsing happens before the answer: under load a database write here queues
    # behind other writers (SQLite has one) and can push the ack past Slack's 3 s (see the
    # benchmark). The delivery key and the assessment row are stored first thing after the ack,
    # before any query runs or any answer is posted, so a retry still answers once.
    channel = asker.channel or service.channel
    slots = deps.work.assessments
    if busy := slots.claim(asker.user, service.name, channel, regions=_region_names(service)):
        return Reply(busy)
    return Reply(
        f":hourglass_flowing_sand: Assessing *{service.name}*…",
        then=lambda: submit_claimed(deps, service, asker),
    )


def submit_claimed(deps: Deps, service: Service, asker: Asker) -> None:
    """Run an assessment whose slot ``asker.user`` holds (AssessmentSlots.claim) in the bulk
    lane, and give the slot back when it ends."""

    def assess_then_release() -> None:
        try:
            start_assessment(deps, service, asker)
        finally:
            deps.work.assessments.release(asker.user, service.name)

    try:
        deps.work.submit(
            f"assessment of {service.name}",
            assess_then_release,
            tell=tell_assessment_error(asker.respond, service.name),
            lane="bulk",
        )
    except RuntimeError:  # shutting down
        deps.work.assessments.release(asker.user, service.name)
        raise


def start_assessment(deps: Deps, service: Service, asker: Asker) -> None:
    try:
        assessment_id = deps.repo.start_assessment(
            asker.delivery_key, service.name, asker.user, asker.channel, deps.clock()
        )
    except StorageError as exc:
        log.exception("cannot store the assessment request for %s: %s", service.name, exc)
        asker.respond(text=storage_error_text(exc), response_type="ephemeral")
        return
    if assessment_id is None:
        log.info("duplicate delivery %s of an assessment ignored", asker.delivery_key)
        deps.metrics.slack_requests.labels("duplicate").inc()
        return
    deps.metrics.slack_requests.labels("handled").inc()
    run_assessment(deps, service, assessment_id, asker)


def run_assessment(deps: Deps, service: Service, assessment_id: int, asker: Asker) -> None:
    """Read the signals, store the result and post the decision with its buttons."""
    started = time.monotonic()
    changes = deps.work.assessments.changes(service.name)  # before any reading is taken
    regions: list[dict[str, Any]] = []
    try:
        if service.regions:  # every region at once; the message leads with the worst
            result, regions = assess_regions(deps.reader, deps.kube, service)
        else:
            result = assess_service(deps.reader, service)
    except Exception as exc:
        deps.repo.fail_assessment(assessment_id, f"{type(exc).__name__}: {exc}", deps.clock())
        asker.respond(
            text=f":x: Assessment #{assessment_id} of *{service.name}* failed"
            f" ({type(exc).__name__}). Nothing was changed; the bot's log has the details.",
            response_type="ephemeral",
        )
        raise AssessmentFailed(f"assessment #{assessment_id} of {service.name}") from exc
    deps.metrics.assessment_seconds.labels(service.name).observe(time.monotonic() - started)
    release = _release(deps, service)
    now = deps.clock()
    store_assessment(deps.repo, service, assessment_id, result, now, release, regions)
    user = asker.user
    text, bl = _message(service.name, assessment_id, result, user, now, release, regions)
    channel = asker.channel or service.channel
    message_ts = _post(deps, asker.respond, channel, text, bl)
    if message_ts is not None:  # in the channel for everyone: it answers asks for a while
        deps.work.assessments.posted(
            service.name,
            assessment_id,
            asked_by=user,
            channel=channel,
            decision=result.decision.value,
            regions=_region_names(service),
            changes=changes,
        )
    deps.repo.add_audit_event(
        "assessment.completed",
        now=deps.clock(),
        service=service.name,
        assessment_id=assessment_id,
        actor=user,
        channel_id=asker.channel,
        message_ts=message_ts,
        detail={
            "decision": result.decision.value,
            "total": result.total,
            **{str(k): v for k, v in result.scores.items()},
        },
    )
    # counted once answered: posted and audited (the benchmarks wait on this counter)
    deps.metrics.assessments.labels(service.name, result.decision.value).inc()


def _message(
    name: str,
    assessment_id: int,
    result: AssessmentResult,
    user: str,
    now: datetime,
    release: Mapping[str, Any] | None,
    regions: list[dict[str, Any]],
) -> tuple[str, list[Any]]:
    """The assessment's message: decision, readings, regions, the release and its buttons."""
    text, bl = blocks.assessment_message(
        result, assessment_id=assessment_id, requested_by=user, at=now
    )
    if regions:
        bl.insert(2, blocks.section(region_lines(regions)))
        text += "\n" + region_lines(regions)
    where = release_text(release) if release else "the running release could not be read"
    bl.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{where}_"}]})
    is_rollback_advised = result.decision in (
        Decision.IMMEDIATE_ROLLBACK,
        Decision.ROLLBACK_RECOMMENDED,
    )
    bl.append(assessment_buttons(name, assessment_id, offer_run_now=is_rollback_advised))
    return text, bl


def pressed_assessment(deps: Deps, assessment_id: int | None) -> Assessment | None:
    """The assessment a button was pressed on (read once for all the button's checks)."""
    return deps.repo.get_assessment(assessment_id) if assessment_id is not None else None


def stale_reply(deps: Deps, service: Service, assessment: Assessment | None) -> Reply | None:
    """An assessment's buttons act only on the release it assessed; otherwise what to say, with
    a button for a fresh assessment. None when the assessment still describes what runs."""
    assessed = (assessment.result or {}).get("release") if assessment else None
    why = stale_assessment(deps.kube, service, assessed)
    if why is None:
        return None
    text = f":arrows_counterclockwise: Nothing was started: {why}."
    return Reply(
        text,
        [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            assess_again_button(service.name),
        ],
    )


def assessed_regions(service: Service, found: Assessment | None) -> Service:
    """The regions the assessment read (``assess --region`` narrows what its buttons roll
    back); all of them when it names none or a region left the catalog."""
    names = tuple(
        str(r.get("region")) for r in ((found.result or {}) if found else {}).get("regions", [])
    )
    try:
        return service.only_regions(names) if names and service.regions else service
    except PlanError:
        return service


def _release(deps: Deps, service: Service) -> dict[str, Any] | None:
    """What runs now, for the assessment's buttons (valid for that release only)."""
    try:
        return current_release(deps.kube, service)
    except KubeError as exc:
        log.warning("assessment of %s: cannot read the deployment: %s", service.name, exc)
        return None


def _post(deps: Deps, respond: Respond, channel: str, text: str, bl: list[Any]) -> str | None:
    """Post to the channel; when Slack refuses, answer the user privately with the reason."""
    try:
        resp = deps.slack.chat_postMessage(
            channel=channel, text=text, blocks=bl, unfurl_links=False
        )
        return str(resp["ts"])
    except SlackError as exc:
        error = exc.error
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


def assess_again(deps: Deps, service_name: str, asker: Asker) -> Reply | None:
    """**Assess again** (under a stale button): a fresh assessment, posted like any other; an
    answer only when it cannot start."""
    service = deps.catalog.get(service_name)
    if service is None:
        return Reply(f":x: {service_name} is no longer in the catalog.")
    channel = asker.channel or service.channel
    # never answered by the latest assessment: the button is pressed because the release changed
    if busy := deps.work.assessments.claim(asker.user, service.name, channel, may_reuse=False):
        return Reply(busy)
    submit_claimed(deps, service, asker)
    return None


def _region_names(service: Service) -> tuple[str, ...]:
    return tuple(r.name for r in service.regions)


class ForgetOnRollback:
    """A rollback of a service that starts or ends changes what an assessment would read: the
    next ask assesses anew instead of being answered by the latest assessment."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def rollback_started(self, rollback: Rollback) -> None:
        self.deps.work.assessments.forget(rollback.service)

    def rollback_finished(self, rollback: Rollback) -> None:
        self.deps.work.assessments.forget(rollback.service)


def install(deps: Deps) -> None:
    deps.engine.listeners.append(ForgetOnRollback(deps))
