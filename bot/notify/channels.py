"""Incident channel lifecycle: create ``rb-<service>-<yyyymmdd>-<id>``, invite, topic, updates.

Opening is idempotent: the channel id is stored on the rollback with a compare-and-set, so a
second opener (a retried due-work item, another replica) uses the stored channel and archives a
duplicate it may have created. Periodic updates are durable due work ("incident.update", one
key per rollback and sequence number) that reschedules itself while the rollback is active.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.catalog import Service, UserGroup
from bot.due import DueWorkRunner
from bot.notify import template_context, templates
from storage.models import ACTIVE_STATUSES, DueWork, Rollback
from storage.repository import Repository

log = logging.getLogger(__name__)

UPDATE_KIND = "incident.update"
MAX_NAME_LENGTH = 80
MAX_SUFFIX = 50
TOPIC_LIMIT = 250  # conversations.setTopic answers too_long beyond this
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


def channel_name(service: str, rollback_id: int, day: datetime, attempt: int = 1) -> str:
    """``rb-<service>-<yyyymmdd>-<id>`` (``-2``, ``-3``… on later attempts), Slack-valid."""
    tail = f"-{day:%Y%m%d}-{rollback_id}" + (f"-{attempt}" if attempt > 1 else "")
    head = "rb-" + _NOT_NAME.sub("-", service.lower()).strip("-")
    return head[: MAX_NAME_LENGTH - len(tail)].rstrip("-") + tail


def update_key(rollback_id: int, sequence: int) -> str:
    return f"incident-update:{rollback_id}:{sequence}"


def update_prefix(rollback_id: int) -> str:
    return f"incident-update:{rollback_id}:"


class IncidentChannels:
    def __init__(
        self,
        slack: WebClient,
        repo: Repository,
        due: DueWorkRunner,
        clock: Callable[[], datetime],
        group_members: Callable[[Iterable[str]], set[str]],
    ) -> None:
        self.slack, self.repo, self.due, self.clock = slack, repo, due, clock
        self.group_members = group_members
        self._locks: dict[int, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # --- opening ---------------------------------------------------------------------------

    def open(self, rollback: Rollback, service: Service) -> str:
        """The rollback's incident channel, created, filled and scheduled on first call."""
        assert rollback.id is not None
        with self.lock_for(rollback.id):
            fresh = self.repo.get_rollback(rollback.id)
            if fresh is not None and fresh.incident_channel_id:
                return fresh.incident_channel_id
            channel_id, name = self._create(rollback)
            if not self.repo.set_incident_channel(rollback.id, channel_id):
                # another replica won the race: ours is a duplicate nobody will use
                self._call_quietly("conversations_archive", channel=channel_id)
                winner = self.repo.get_rollback(rollback.id)
                assert winner is not None and winner.incident_channel_id is not None
                return winner.incident_channel_id
            self.repo.add_audit_event(
                "incident_channel.created",
                now=self.clock(),
                service=rollback.service,
                rollback_id=rollback.id,
                channel_id=channel_id,
                detail={"name": name},
            )
        self._invite(channel_id, self._invitees(rollback, service))
        current = self.repo.get_rollback(rollback.id) or rollback
        self.set_topic(current, service)
        if current.status in ACTIVE_STATUSES:
            self.schedule_update(rollback.id, 1, service)
        return channel_id

    def lock_for(self, rollback_id: int) -> threading.RLock:
        """Held while a rollback's channel is opened and greeted, so that its final update,
        posted by another thread, always comes after the greeting."""
        with self._locks_guard:
            return self._locks.setdefault(rollback_id, threading.RLock())

    def _create(self, rollback: Rollback) -> tuple[str, str]:
        assert rollback.id is not None
        day = rollback.started_at or rollback.created_at
        for attempt in range(1, MAX_SUFFIX + 1):
            name = channel_name(rollback.service, rollback.id, day, attempt)
            try:
                resp = self.slack.conversations_create(name=name)
            except SlackApiError as exc:
                # an archived channel keeps its name too: take the next suffix, never unarchive
                if exc.response.get("error") == "name_taken":
                    continue
                raise
            return str(resp["channel"]["id"]), name
        raise RuntimeError(f"no free incident channel name after {MAX_SUFFIX} tries")

    def _invitees(self, rollback: Rollback, service: Service) -> list[str]:
        users = [rollback.requested_by, *service.spec.responders]
        groups = []
        for approver in service.spec.approvers:
            if isinstance(approver, UserGroup):
                groups.append(approver.usergroup)
            else:
                users.append(approver)
        if groups:
            users.extend(sorted(self.group_members(groups)))
        return list(dict.fromkeys(u for u in users if templates.mention(u).startswith("<@")))

    def _invite(self, channel_id: str, users: list[str]) -> None:
        """One call per user: Slack fails a whole batch for one bad id, which must not cost the
        others their invitation."""
        for user in users:
            try:
                self.slack.conversations_invite(channel=channel_id, users=user)
            except SlackApiError as exc:
                log.info("incident channel %s: %s not invited (%s)", channel_id, user, _error(exc))

    # --- topic and updates -----------------------------------------------------------------

    def set_topic(self, rollback: Rollback, service: Service) -> None:
        if not rollback.incident_channel_id:
            return
        context = template_context.build_context(self.repo, rollback, service, self.clock())
        topic = templates.render(service, "incident_topic", context)
        if len(topic) > TOPIC_LIMIT:
            topic = topic[: TOPIC_LIMIT - 1] + "…"
        self._call_quietly(
            "conversations_setTopic", channel=rollback.incident_channel_id, topic=topic
        )

    def schedule_update(self, rollback_id: int, sequence: int, service: Service) -> None:
        every = timedelta(minutes=service.notifications.update_every_minutes)
        self.due.schedule(
            UPDATE_KIND,
            update_key(rollback_id, sequence),
            self.clock() + every,
            {"rollback_id": rollback_id, "sequence": sequence},
        )

    def post_update(self, rollback: Rollback, service: Service, audit_kind: str) -> str | None:
        """Post the incident_update template to the incident channel (once per audit kind)."""
        channel = rollback.incident_channel_id
        assert rollback.id is not None
        if not channel or self._already(rollback.id, audit_kind):
            return None
        context = template_context.build_context(self.repo, rollback, service, self.clock())
        text = templates.render(service, "incident_update", context)
        resp = self.slack.chat_postMessage(channel=channel, text=text, unfurl_links=False)
        self.repo.add_audit_event(
            audit_kind,
            now=self.clock(),
            service=rollback.service,
            rollback_id=rollback.id,
            channel_id=channel,
            message_ts=str(resp.get("ts")),
        )
        return str(resp.get("ts"))

    def _already(self, rollback_id: int, kind: str) -> bool:
        return bool(self.repo.list_audit_events(kind=kind, rollback_id=rollback_id))

    def on_update_due(self, item: DueWork, service_for: Callable[[str], Service | None]) -> None:
        """Due-work handler: schedule the next update, then post this one while the rollback
        is active. Next first: a post that fails (and is retried, or given up) must not end the
        series; the key makes scheduling it again on a retry harmless."""
        rollback = self.repo.get_rollback(int(item.payload["rollback_id"]))
        if rollback is None or rollback.status not in ACTIVE_STATUSES:
            return  # the final update is posted by the end of the rollback
        service = service_for(rollback.service)
        if service is None:
            return
        sequence = int(item.payload["sequence"])
        self.schedule_update(int(item.payload["rollback_id"]), sequence + 1, service)
        self.set_topic(rollback, service)
        self.post_update(rollback, service, f"notification.incident_update.{sequence}")

    def finish(self, rollback: Rollback, service: Service) -> None:
        """The final update and topic; later periodic updates are cancelled."""
        assert rollback.id is not None
        self.repo.cancel_work_with_prefix(update_prefix(rollback.id), self.clock())
        self.post_update(rollback, service, "notification.incident_final")
        self.set_topic(rollback, service)

    def _call_quietly(self, method: str, **kwargs: str) -> None:
        try:
            getattr(self.slack, method)(**kwargs)
        except SlackApiError as exc:
            log.warning("%s on %s failed: %s", method, kwargs.get("channel"), _error(exc))


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or exc)
