"""Drafting customer updates: when a critical rollback starts and when it ends, a draft (seed
002's customer message, from the service's templates) is posted with Publish / Edit in the
incident channel, right after its greeting and after its final update (the notifier's hooks);
in the rollback's channel when the service has no incident channel. Drafting is durable due
work: one draft per rollback and moment (a unique key), one Slack post (a marker, looked for on
a retry). A draft of the start that comes after the end's is not posted at all; one the end
finds unpublished is marked superseded.

Nothing here sends anything to customers: that takes a person's Publish (``publish.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import SlackError
from bot.catalog.load import Service
from bot.customer import blocks
from bot.customer.text import FINISHED, STARTED, draft_for
from bot.deps import Deps
from bot.notify import template_context
from bot.notify.blocks import Block
from bot.rollback import policy
from bot.rollback.lifecycle import DueKind, RollbackKind, customer_draft_key, incident_open_key
from bot.runtime.due import RetryLater
from storage.customer_models import CustomerUpdate
from storage.models import DueWork, Rollback
from storage.repo.customer import NewCustomerUpdate

log = logging.getLogger(__name__)

WAIT_SECONDS = 2.0  # for the incident channel (its opening is due work of its own)
_WAITING = ("pending", "claimed")


def may_publish(service: Service, user: str) -> bool:
    """Customer updates go out in the responders' name: they publish and edit them."""
    return user in service.spec.responders


def publishers(service: Service) -> str:
    return policy.who_may_run(service)


def message_of(update: CustomerUpdate, service: Service | None) -> tuple[str, list[Block]]:
    """The draft's Slack message as it stands now."""
    has_status_page = service is not None and service.status_page is not None
    who = publishers(service) if service else "nobody (the service left the catalog)"
    return blocks.draft_message(update, has_status_page=has_status_page, publishers=who)


def refresh(deps: Deps, update: CustomerUpdate) -> str | None:
    """Show the update's state in its Slack message; Slack's error code when refused."""
    if not update.channel_id or not update.message_ts:
        return None
    text, shown = message_of(update, deps.catalog.get(update.service))
    try:
        deps.slack.chat_update(
            channel=update.channel_id, ts=update.message_ts, text=text, blocks=shown
        )
    except SlackError as exc:
        log.warning("customer update %s: message not updated: %s", update.id, exc.error)
        return exc.error
    return None


class CustomerDrafts:
    """The engine's listener for customer updates, and the handler of their due work."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def rollback_started(self, rollback: Rollback) -> None:
        if not self._has_incident_channel(rollback):  # else the greeting tells (incident_hook)
            self._schedule(rollback, STARTED)

    def rollback_finished(self, rollback: Rollback) -> None:
        if not self._has_incident_channel(rollback):  # else the final update tells
            self._schedule(rollback, FINISHED)

    def incident_hook(self, event: str, rollback: Rollback) -> None:
        """The incident channel's greeting was posted ("greeted"), or its final update
        ("final"): the draft of that moment follows it."""
        self._schedule(rollback, STARTED if event == "greeted" else FINISHED)

    def _has_incident_channel(self, rollback: Rollback) -> bool:
        service = self.deps.catalog.get(rollback.service)
        return service is not None and service.notifications.incident_channel

    def _schedule(self, rollback: Rollback, moment: str) -> None:
        """Only critical (immediate) rollbacks are incidents customers hear of."""
        if rollback.id is None or rollback.kind != RollbackKind.IMMEDIATE:
            return
        payload = {"rollback_id": rollback.id, "moment": moment}
        key = customer_draft_key(rollback.id, moment)
        if self.deps.due.schedule(DueKind.CUSTOMER_DRAFT, key, self.deps.clock(), payload):
            self.deps.kick_due_work()

    def on_due(self, item: DueWork) -> None:
        rollback = self.deps.repo.get_rollback(int(item.payload["rollback_id"]))
        service = self.deps.catalog.get(rollback.service) if rollback else None
        if rollback is None or rollback.id is None or service is None:
            return
        moment = str(item.payload["moment"])
        if moment == STARTED and self.deps.repo.customer_update_of(rollback.id, FINISHED):
            return  # the end was drafted first (no incident channel, a quick rollback): too late
        update = self.deps.repo.customer_update_of(rollback.id, moment)
        if update is None or update.message_ts is None:  # else an earlier try posted it
            update = self._draft(rollback, service, moment, self._channel(rollback, service))
        assert update.id is not None
        if moment != FINISHED:
            return
        now = self.deps.clock()
        for older in self.deps.repo.supersede_customer_updates(rollback.id, update.id, now):
            refresh(self.deps, older)
            self.deps.audit("customer_update.superseded", rollback, update_id=older.id)

    def _draft(
        self, rollback: Rollback, service: Service, moment: str, channel: str
    ) -> CustomerUpdate:
        """Store the draft (once) and post it (once)."""
        assert rollback.id is not None
        now = self.deps.clock()
        context = template_context.build_context(self.deps.repo, rollback, service, now)
        draft = draft_for(service, moment, rollback.status, context)
        update, _ = self.deps.repo.create_customer_update(
            NewCustomerUpdate(
                rollback.id, rollback.service, moment, draft.status, draft.title, draft.message
            ),
            now,
        )
        return update if update.message_ts else self._post(rollback, update, channel)

    def _channel(self, rollback: Rollback, service: Service) -> str:
        """The incident channel once its greeting is there (the draft follows it); the
        rollback's own channel when there is none (disabled, or its opening gave up)."""
        assert rollback.id is not None
        fallback = rollback.channel_id or service.channel
        if not service.notifications.incident_channel:
            return fallback
        opening = self.deps.repo.get_work(incident_open_key(rollback.id))
        is_opening = opening is not None and opening.status in _WAITING
        channel = rollback.incident_channel_id
        if channel and not is_opening:
            return channel
        if channel and self._greeted(rollback.id, channel):
            return channel
        if is_opening:
            raise RetryLater("the incident channel is not open yet", WAIT_SECONDS)
        return channel or fallback

    def _greeted(self, rollback_id: int, channel: str) -> bool:
        events = self.deps.repo.list_audit_events(
            "notification.critical_notice", rollback_id=rollback_id
        )
        return any(e.channel_id == channel for e in events)

    def _post(self, rollback: Rollback, update: CustomerUpdate, channel: str) -> CustomerUpdate:
        """Post the draft once: a retry looks for the marked post before posting again."""
        assert update.id is not None
        now = self.deps.clock()
        marker = post_marker("customer_update", update.id, update.created_at.isoformat())
        is_retry = not self.deps.repo.record_delivery(f"tried:customer_update:{update.id}", now)
        ts = find_marked(self.deps.slack, channel, marker) if is_retry else None
        if ts is None:
            text, shown = message_of(update, self.deps.catalog.get(update.service))
            resp = self.deps.slack.chat_postMessage(
                channel=channel, text=text, blocks=shown, unfurl_links=False, metadata=marker
            )
            ts = str(resp.get("ts"))
        self.deps.repo.set_customer_update_message(update.id, channel, ts, now)
        self.deps.audit(
            "customer_update.drafted",
            rollback,
            channel_id=channel,
            message_ts=ts,
            update_id=update.id,
            moment=update.moment,
            status=update.status,
        )
        posted = self.deps.repo.get_customer_update(update.id) or update
        if posted.state != update.state:  # superseded while it was being posted
            refresh(self.deps, posted)
        return posted


def install(deps: Deps, incident_hooks: list[Callable[[str, Rollback], None]]) -> CustomerDrafts:
    """Listen to the engine and to the incident channel (``incident_hooks``, the notifier's),
    and handle the drafting due work."""
    drafts = CustomerDrafts(deps)
    incident_hooks.append(drafts.incident_hook)
    for name in sorted(
        {s.status_page.token_env for s in deps.catalog.services.values() if s.status_page}
    ):
        if deps.settings.named_secret(name) is None:  # said now, not at 3 am on Publish
            log.warning(
                "%s is not set: customer updates cannot be published to the status page"
                " (Publish will say so; drafts are still posted)",
                name,
            )
    deps.due.register(DueKind.CUSTOMER_DRAFT, drafts.on_due)
    deps.engine.listeners.append(drafts)
    return drafts
