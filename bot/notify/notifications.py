"""Rollback notices: critical, completion, failure and SLA breach; the incident channel; pages.

The engine tells :class:`Notifier` when a rollback starts and ends. The listener only writes
durable due-work items (one key per notice, so a second call after a crash schedules nothing
new) and hands a due-work tick to the background pool; the notices go out from the due-work
handlers. A notice reaches each channel once: every successful post is audited with its
channel, and a retried item skips the channels already done. Critical notices fan out to all
channels at once in a bounded pool; the SlackClient's retry handlers honour 429 Retry-After and
retry 5xx, so a rate limit delays a message but never loses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.approvals.shared import approver_members
from bot.catalog.load import Service
from bot.notify import limits, template_context, templates
from bot.notify.channels import IncidentChannels
from bot.notify.notice_posts import send_once
from bot.notify.threads import anchor_of
from bot.regions.sla import RegionSla, breached_region
from bot.regions.waves import service_state
from bot.rollback.lifecycle import (
    IN_ENGINE,
    DueKind,
    RollbackKind,
    RollbackStatus,
    critical_notice_key,
    finished_notice_key,
    incident_open_key,
    incident_topic_key,
    incident_topic_prefix,
    incident_update_prefix,
    page_start_key,
    sla_key,
)
from bot.runtime.due import RetryLater
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

FANOUT_WORKERS = 16
RETRY_SECONDS = 10.0
_STATE_NOTICES = ("failure_notice", "aborted_notice")
# In the service channel every notice goes in the thread of the rollback's progress message (the
# one top-level message of a rollback there). These ask someone to act now, so they are also
# shown in the channel (reply_broadcast): a failure to take over, a rollback past its SLA. The
# critical, completion and abort notices only tell what the progress message already shows.
BROADCAST = frozenset({"failure_notice", "sla_breach"})
# The notice (template name) a rollback's end sends, by how it ended.
FINISHED_NOTICES: dict[str, str] = {
    RollbackStatus.SUCCEEDED: "completion_notice",
    RollbackStatus.FAILED: "failure_notice",
    RollbackStatus.ABORTED: "aborted_notice",
}


class Notifier:
    """The engine's RollbackListener for notifications, and the handlers of their due work."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.channels = IncidentChannels(
            deps.slack, deps.repo, deps.due, deps.clock, lambda s: approver_members(deps, s)
        )
        self._pool = ThreadPoolExecutor(max_workers=FANOUT_WORKERS, thread_name_prefix="fanout")
        self.incident_hooks: list[Callable[[str, Rollback], None]] = []  # "greeted" | "final"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- listener (quick, idempotent) ------------------------------------------------------

    def rollback_started(self, rollback: Rollback) -> None:
        service = self.deps.catalog.get(rollback.service)
        if service is None or rollback.id is None:
            return
        rid, now = rollback.id, self.deps.clock()
        work: list[NewWork] = []
        payload = {"rollback_id": rid}
        if rollback.kind == RollbackKind.IMMEDIATE:
            work.append(NewWork(DueKind.NOTIFY_CRITICAL, critical_notice_key(rid), now, payload))
            if service.notifications.incident_channel:
                work.append(NewWork(DueKind.INCIDENT_OPEN, incident_open_key(rid), now, payload))
            work.append(
                self._page(rollback, "critical", f"CRITICAL rollback of {rollback.service} started")
            )
        started = rollback.started_at or now
        deadline = started + timedelta(minutes=service.sla_minutes)
        if not service.regions:  # a multi-region rollback has one SLA per region instead
            work.append(NewWork(DueKind.SLA_CHECK, sla_key(rid), deadline, payload))
        self.deps.due.schedule_all(work)  # one transaction: the engine waits for this
        self._kick()

    def rollback_finished(self, rollback: Rollback) -> None:
        if rollback.id is None:
            return
        rid, now = rollback.id, self.deps.clock()
        self.deps.due.cancel(sla_key(rid))
        self.deps.repo.cancel_work_with_prefix(incident_update_prefix(rid), now)
        self.deps.repo.cancel_work_with_prefix(incident_topic_prefix(rid), now)  # the end sets it
        payload = {"rollback_id": rid}
        work = [NewWork(DueKind.NOTIFY_FINISHED, finished_notice_key(rid), now, payload)]
        if rollback.status == RollbackStatus.FAILED:
            work.append(self._page(rollback, "failed", f"Rollback of {rollback.service} FAILED"))
        self.deps.due.schedule_all(work)
        self._kick()

    def phase_started(self, rollback: Rollback, phase: str) -> None:
        """The incident channel's topic follows the phases (Slack: setTopic is Tier 2)."""
        service = self.deps.catalog.get(rollback.service)
        if rollback.kind != RollbackKind.IMMEDIATE or service is None or rollback.id is None:
            return
        if not service.notifications.incident_channel:
            return
        rid = rollback.id
        key = incident_topic_key(rid, phase)  # once per phase, also across a resume
        self.deps.due.schedule(DueKind.INCIDENT_TOPIC, key, self.deps.clock(), {"rollback_id": rid})
        self._kick()

    def _page(self, rollback: Rollback, reason: str, summary: str) -> NewWork:
        """Paging goes to the escalation ladder (bot/paging/ladder.py) as due work."""
        assert rollback.id is not None
        return NewWork(
            DueKind.PAGE_START,
            page_start_key(rollback.id, reason),
            self.deps.clock(),
            {"rollback_id": rollback.id, "reason": reason, "summary": summary[:120]},
        )

    def _kick(self) -> None:
        """Run what was just scheduled now, not at the next scheduler tick."""
        self.deps.kick_due_work()

    # --- due-work handlers -----------------------------------------------------------------

    def _load(self, item: DueWork) -> tuple[Rollback, Service] | None:
        rollback = self.deps.repo.get_rollback(int(item.payload["rollback_id"]))
        if rollback is None:
            return None
        service = self.deps.catalog.get(rollback.service)
        if service is None:
            log.warning(
                "rollback #%s: %s left the catalog; no notice", rollback.id, rollback.service
            )
            return None
        return rollback, service

    def on_critical(self, item: DueWork) -> None:
        loaded = self._load(item)
        if loaded is None:
            return
        rollback, service = loaded
        if service.notifications.incident_channel and rollback.id is not None:
            rollback = self._with_incident_channel(rollback)  # so the notice can link it
        self.post(rollback, service, "critical_notice", self._notice_channels(rollback, service))

    def _with_incident_channel(self, rollback: Rollback) -> Rollback:
        """The rollback with its incident channel created (the opening fills it in later); as
        it was when Slack refuses: the notice then goes out without the link."""
        assert rollback.id is not None
        fresh = self.deps.repo.get_rollback(rollback.id) or rollback
        if fresh.incident_channel_id:  # without waiting for the lock the opening holds
            return fresh
        try:
            self.channels.ensure_channel(rollback)
        except Exception as exc:  # the notice must not wait for the channel
            log.warning("rollback #%s: incident channel not created yet: %r", rollback.id, exc)
        return self.deps.repo.get_rollback(rollback.id) or rollback

    def on_open(self, item: DueWork) -> None:
        loaded = self._load(item)
        if loaded is None:
            return
        rollback, service = loaded
        assert rollback.id is not None
        with self.channels.lock_for(rollback.id):
            channel = self.channels.ensure_channel(rollback)
            try:
                # resumable: a retry after an interruption completes what is missing
                self.channels.fill(rollback, service, channel)
            finally:
                # greeted even while invites or topic wait for a retry; once (audited per channel)
                fresh = self.deps.repo.get_rollback(rollback.id) or rollback
                self.post(fresh, service, "critical_notice", [channel])
                self._tell_hooks("greeted", fresh)

    def _tell_hooks(self, event: str, rollback: Rollback) -> None:
        for hook in self.incident_hooks:  # e.g. customer update drafts, which follow these
            try:
                hook(event, rollback)
            except Exception:
                log.exception("rollback #%s: %s hook %r failed", rollback.id, event, hook)

    def on_topic(self, item: DueWork) -> None:
        loaded = self._load(item)
        if loaded is None:
            return
        rollback, service = loaded
        if rollback.status not in IN_ENGINE:
            return  # the end sets the final topic
        assert rollback.id is not None
        if not rollback.incident_channel_id:
            opening = self.deps.repo.get_work(incident_open_key(rollback.id))
            if opening is not None and opening.status in ("pending", "claimed"):
                raise RetryLater("the incident channel is not open yet", 2)
            return  # no channel (opening failed or gave up): nothing to keep current
        self.channels.set_topic(rollback, service)

    def on_finished(self, item: DueWork) -> None:
        loaded = self._load(item)
        if loaded is None:
            return
        rollback, service = loaded
        name = FINISHED_NOTICES.get(rollback.status)
        if name is None:
            return
        self.post(rollback, service, name, self._notice_channels(rollback, service))
        if rollback.kind == RollbackKind.IMMEDIATE and service.notifications.incident_channel:
            assert rollback.id is not None
            with self.channels.lock_for(rollback.id):  # after the greeting, never before
                try:
                    self.channels.open(rollback, service)  # no-op unless it has not run yet
                    fresh = self.deps.repo.get_rollback(rollback.id) or rollback
                    self.channels.finish(fresh, service)
                finally:  # also when Slack refuses the channel: the hooks have fallbacks
                    self._tell_hooks("final", rollback)

    def on_sla_check(self, item: DueWork) -> None:
        loaded = self._load(item)
        if loaded is None:
            return
        rollback, service = loaded
        if rollback.status not in IN_ENGINE or rollback.id is None:
            return
        region = item.payload.get("region")
        where = ""
        if region is not None:  # one region's SLA: breached only while that region runs
            breached = breached_region(self.deps.repo, rollback, service, region)
            if breached is None:
                return
            service, where = breached, f" in {region}"
        channels = [service.channel]
        if rollback.incident_channel_id:
            channels.append(rollback.incident_channel_id)
        summary = f"Rollback of {rollback.service}{where} is past its SLA"
        self.deps.due.schedule_all([self._page(rollback, "sla", summary)])
        self.post(rollback, service, "sla_breach", channels)

    def on_update(self, item: DueWork) -> None:
        self.channels.on_update_due(item, self.deps.catalog.get)

    # --- posting ---------------------------------------------------------------------------

    def _notice_channels(self, rollback: Rollback, service: Service) -> list[str]:
        channels = [rollback.channel_id or service.channel]
        if rollback.kind == RollbackKind.IMMEDIATE:
            channels += service.notifications.critical_channels
        return list(dict.fromkeys(c for c in channels if c))

    def post(
        self, rollback: Rollback, service: Service, name: str, channels: Iterable[str]
    ) -> None:
        """Render ``name`` and post it to every channel not yet given it, all at once.

        Raises RetryLater when a channel failed for a reason that may pass (the item runs
        again for the channels still missing); permanent refusals are audited and logged.
        """
        assert rollback.id is not None
        # a region's notice (its SLA breach) is its own: one per region, each once
        kind = f"notification.{name}" + (f".{service.region.name}" if service.region else "")
        # delivered, or refused for good (audited as ``….failed``): neither is tried again
        done = {
            e.channel_id
            for k in (kind, f"{kind}.failed")
            for e in self.deps.repo.list_audit_events(k, rollback_id=rollback.id)
        }
        todo = [c for c in dict.fromkeys(channels) if c not in done]
        if not todo:
            return

        # a notice at the end says which pods run which release (availableReplicas cannot)
        kube, repo = self.deps.kube, self.deps.repo
        state = None
        if name in _STATE_NOTICES:
            steps = repo.list_steps(rollback.id) if service.regions else []
            state = ("\n" if service.regions else "") + service_state(kube, service, steps)
        context = template_context.build_context(
            self.deps.repo,
            rollback,
            service,
            self.deps.clock(),
            is_sms_enabled=self.deps.settings.is_sms_enabled,
            service_state=state,
        )
        text = limits.message_text(templates.render(service, name, context))
        broadcast = name in BROADCAST
        results = list(
            self._pool.map(
                lambda c: send_once(
                    self.deps,
                    rollback,
                    kind,
                    c,
                    text,
                    anchor_of(self.deps, rollback, c),
                    broadcast,
                ),
                todo,
            )
        )
        failed = [c for c, is_transient in zip(todo, results, strict=True) if is_transient]
        if failed:
            raise RetryLater(f"{name} not delivered to {', '.join(failed)} yet", RETRY_SECONDS)


def install(deps: Deps) -> Notifier:
    """Register the due-work handlers and listen to the engine."""
    notifier = Notifier(deps)
    deps.due.register(DueKind.NOTIFY_CRITICAL, notifier.on_critical)
    deps.due.register(DueKind.INCIDENT_OPEN, notifier.on_open)
    deps.due.register(DueKind.NOTIFY_FINISHED, notifier.on_finished)
    deps.due.register(DueKind.INCIDENT_TOPIC, notifier.on_topic)
    deps.due.register(DueKind.SLA_CHECK, notifier.on_sla_check)
    deps.due.register(DueKind.INCIDENT_UPDATE, notifier.on_update)
    deps.engine.listeners.append(notifier)
    deps.engine.listeners.append(RegionSla(deps.repo, deps.catalog, deps.due, deps.clock))
    deps.closers.append(notifier.close)
    return notifier
