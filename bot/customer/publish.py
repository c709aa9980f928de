"""Publish: a responder's press sends the draft to the status page, once.

The press is authorized, audited, then claimed with a compare-and-set that also stores the post
and its idempotency key (so a double click, or another replica's, sends nothing twice) before
the POST. A failure (refused, 5xx, timeout; transient ones retried first) is said in the draft's
thread with what to do, and the draft stays publishable: the next press sends the same key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.adapters.slack.web import SlackError
from bot.adapters.status_page import StatusPage, StatusPageError, StatusUpdate
from bot.catalog.load import Service
from bot.customer.blocks import parse_value
from bot.customer.drafts import may_publish, publishers, refresh
from bot.deps import Deps
from bot.notify.blocks import escape, person
from bot.notify.reply import Reply
from storage.customer_models import CustomerUpdate, StatusPagePost, UpdateState
from storage.models import Rollback

log = logging.getLogger(__name__)

# Seconds between attempts at one press (3 attempts); a list so that tests can shorten it.
RETRY_DELAYS: list[float] = [1.0, 3.0]
# A press that has not finished after this long (its process died) no longer holds the draft.
PUBLISHING_LEASE = timedelta(minutes=2)
TIMEOUT_SECONDS = 10.0  # per attempt (three attempts at most: well inside the lease)
Sleep = Callable[[float], None]
Where = dict[str, str | None]  # channel_id, message_ts of the message pressed on


def idempotency_key(update: CustomerUpdate, version: int) -> str:
    """The same for every attempt at the same text; new once the text is edited."""
    return f"rollback-bot-{update.service}-{update.rollback_id}-{update.id}-v{version}"


def stale_reason(deps: Deps, update: CustomerUpdate, version: int) -> str | None:
    """Why a press on the draft shown at ``version`` is not acted on, or None."""
    if update.state == UpdateState.PUBLISHED:
        at = f"{update.published_at:%H:%M:%S} UTC" if update.published_at else "earlier"
        return (
            f"This update was already published by {person(update.published_by)} at {at};"
            " nothing was sent again."
        )
    if update.state == UpdateState.SUPERSEDED:
        return "This draft was superseded by a newer one (below it); publish that one instead."
    lease_over = update.publishing_since and update.publishing_since < (
        deps.clock() - PUBLISHING_LEASE
    )
    if update.state == UpdateState.PUBLISHING and not lease_over:
        return (
            f"{person(update.publishing_by)} is publishing this update right now;"
            " nothing was sent twice."
        )
    if update.version != version:
        return (
            f"This draft was edited since this button was shown (by {person(update.edited_by)})."
            " Read the text as it is now and press Publish again."
        )
    return None


@dataclass(frozen=True)
class Pressed:
    """A press on a draft's button (or its form): the draft, as shown at ``version``."""

    update: CustomerUpdate
    service: Service
    rollback: Rollback
    version: int


def load_pressed(
    deps: Deps, value: str, user: str, action: str, where: Where | None = None
) -> Pressed | Reply:
    """The draft a button names, if ``user`` may act on it; a refusal is audited."""
    parsed = parse_value(value)
    update = deps.repo.get_customer_update(parsed[0]) if parsed else None
    rollback = deps.repo.get_rollback(update.rollback_id) if update else None
    if parsed is None or update is None or rollback is None:
        return Reply(":x: This customer update no longer exists; nothing was done.")
    service = deps.catalog.get(update.service)
    if service is None:
        return Reply(f":x: {update.service} is no longer in the catalog; nothing was done.")
    if not may_publish(service, user):
        deps.audit(f"customer_update.{action}_refused", rollback, user, **(where or {}))
        return Reply(
            f":no_entry: Only responders of {service.name} may publish or edit its customer"
            f" updates: {publishers(service)}. Nothing was done."
        )
    return Pressed(update, service, rollback, parsed[1])


def publish_press(
    deps: Deps, value: str, user: str, where: Where, sleep: Sleep = time.sleep
) -> Reply:
    """**Publish** under a draft (run after the ack): what the presser is told."""
    pressed = load_pressed(deps, value, user, "publish", where)
    if isinstance(pressed, Reply):
        return pressed
    update, service, rollback, version = (
        pressed.update,
        pressed.service,
        pressed.rollback,
        pressed.version,
    )
    assert update.id is not None
    if (why := stale_reason(deps, update, version)) is not None:
        deps.audit("customer_update.publish_stale", rollback, user, **where, update_id=update.id)
        return Reply(why)
    page = service.status_page
    token = deps.settings.named_secret(page.token_env) if page else None
    if page is None or token is None:
        missing = (
            f"`{page.token_env}` is not set in the bot's environment"
            if page
            else f"no status page is configured for {service.name} (`status_page:`)"
        )
        deps.audit("customer_update.publish_refused", rollback, user, **where, why=missing)
        return Reply(
            f":x: Not published: {missing}. Post the text on the status page by hand, or ask"
            " the bot's operator to configure it and press Publish again."
        )
    key, now = idempotency_key(update, version), deps.clock()
    post = deps.repo.claim_publication(
        update.id, version, user=user, key=key, now=now, stale_before=now - PUBLISHING_LEASE
    )
    if post is None:  # another press (a double click, another replica) got it first
        fresh = deps.repo.get_customer_update(update.id) or update
        return Reply(stale_reason(deps, fresh, version) or "This draft is being published.")
    deps.audit("customer_update.publish", rollback, user, **where, update_id=update.id, key=key)
    # the process's one HTTP pool, which build_deps hands to the engine
    client = StatusPage(deps.engine.http, page.url, token.get_secret_value(), TIMEOUT_SECONDS)
    return _send_and_record(deps, client, post, update, rollback, page.token_env, sleep)


def _send_and_record(
    deps: Deps,
    client: StatusPage,
    post: StatusPagePost,
    update: CustomerUpdate,
    rollback: Rollback,
    token_env: str,
    sleep: Sleep,
) -> Reply:
    assert post.id is not None
    status_update = StatusUpdate(
        incident_id=f"rollback-bot:{update.service}:{update.rollback_id}",
        title=post.title,
        status=post.status,
        message=post.message,
        service=update.service,
        update_id=post.idempotency_key,
        sent_at=deps.clock(),
    )
    attempts, http_status, error = 0, None, None
    for delay in [*RETRY_DELAYS, None]:
        attempts += 1
        try:
            http_status = client.publish(status_update)
            error = None
            break
        except StatusPageError as exc:
            http_status, error = exc.http_status, str(exc)
            log.warning("customer update %s: attempt %d failed: %s", update.id, attempts, exc)
            if not exc.is_transient or delay is None:
                break
            sleep(delay)
    finished = deps.repo.finish_publication(
        post.id,
        is_sent=error is None,
        attempts=attempts,
        http_status=http_status,
        error=error,
        now=deps.clock(),
    )
    refresh(deps, finished)
    kind = "customer_update.published" if error is None else "customer_update.publish_failed"
    deps.audit(kind, rollback, post.requested_by, update_id=update.id, http_status=http_status)
    note = _thread_note(post, error, http_status, attempts, token_env)
    _say_in_thread(deps, finished, note)
    return Reply(note)


def _thread_note(
    post: StatusPagePost, error: str | None, status: int | None, attempts: int, token_env: str
) -> str:
    if error is None:
        return (
            f":white_check_mark: Published to the status page by {person(post.requested_by)}"
            f" (HTTP {status})."
        )
    tried = f"tried {attempts} time{'s' if attempts > 1 else ''}"
    if status in (401, 403):
        todo = f"the status page refused the bot's token: check `{token_env}`, then press Publish"
    elif status is not None and status < 500 and status != 429:
        todo = (
            "the status page refused the update: check `status_page.url` and the body it"
            " expects (README, Customer status updates), then press Publish"
        )
    elif status is None:
        todo = (
            "it may have reached the status page all the same; press Publish again in a"
            " minute (the same update key lets the status page drop a repeat)"
        )
    else:
        todo = "press Publish again in a minute (the same update key lets it drop a repeat)"
    return (
        f":x: The status page did not take this update ({escape(error)}; {tried})."
        f" The draft is still here: {todo}, or post the text on the status page by hand."
        f" (pressed by {person(post.requested_by)})"
    )


def _say_in_thread(deps: Deps, update: CustomerUpdate, text: str) -> None:
    if not update.channel_id or not update.message_ts:
        return
    try:
        deps.slack.chat_postMessage(
            channel=update.channel_id, thread_ts=update.message_ts, text=text, unfurl_links=False
        )
    except SlackError as exc:
        log.warning("customer update %s: thread note not posted: %s", update.id, exc.error)
