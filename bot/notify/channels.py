"""Incident channel lifecycle: create ``rb-<service>-<yyyymmdd>-<id>``, invite, topic, updates.

Opening is idempotent: the channel id is stored on the rollback with a compare-and-set, so a
second opener (a retried due-work item, another replica) uses the stored channel and archives a
duplicate it may have created. It is resumable too: until one call has scheduled the first
update, invited everyone and set the topic (audited as ``incident_channel.ready``), every later
call does those again, each being harmless to repeat. Periodic updates are durable due work
("incident.update", one key per rollback and sequence number) that reschedules itself while the
rollback is active.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import SlackClient, SlackError
from bot.catalog.load import Service
from bot.notify import template_context, templates
from bot.rollback.lifecycle import (
    ACTIVE,
    DueKind,
    incident_update_key,
    incident_update_prefix,
)
from bot.runtime.due import DueWorkRunner, RetryLater
from storage.models import DueWork, Rollback
from storage.repository import Repository

log = logging.getLogger(__name__)

READY_KIND = "incident_channel.ready"  # audited once the first update, invites and topic are done
RETRY_SECONDS = 10.0
# Slack's own trouble, worth another try; any other refusal of an invite is about the user
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
MAX_NAME_LENGTH = 80
MAX_SUFFIX = 50
TOPIC_LIMIT = 250  # conversations.setTopic answers too_long beyond this
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


def channel_name(service: str, rollback_id: int, day: datetime, attempt: int = 1) -> str:
    """``rb-<service>-<yyyymmdd>-<id>`` (``-2``, ``-3``… on later attempts), Slack-valid."""
    tail = f"-{day:%Y%m%d}-{rollback_id}" + (f"-{attempt}" if attempt > 1 else "")
    head = "rb-" + _NOT_NAME.sub("-", service.lower()).strip("-")
    return head[: MAX_NAME_LENGTH - len(tail)].rstrip("-") + tail


class IncidentChannels:
    def __init__(
        self,
        slack: SlackClient,
        repo: Repository,
        due: DueWorkRunner,
        clock: Callable[[], datetime],
        approver_members: Callable[[Service], set[str]],
    ) -> None:
        self.slack, self.repo, self.due, self.clock = slack, repo, due, clock
        self.approver_members = approver_members  # its approver user groups' members
        self._locks: dict[int, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # --- opening ---------------------------------------------------------------------------

    def open(self, rollback: Rollback, service: Service) -> str:
        """The rollback's incident channel, created, filled and scheduled on first call; a call
        after an interruption completes what is missing (see :meth:`fill`)."""
        assert rollback.id is not None
        with self.lock_for(rollback.id):
            channel_id = self.ensure_channel(rollback)
            self.fill(rollback, service, channel_id)
        return channel_id

    def ensure_channel(self, rollback: Rollback) -> str:
        """The channel stored on the rollback, or a new one, stored with a compare-and-set."""
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
            self._audit("incident_channel.created", rollback, channel_id, name=name)
            return channel_id

    def fill(self, rollback: Rollback, service: Service, channel_id: str) -> None:
        """Schedule the first update, invite the people, set the topic, unless done already.

        The channel is stored before this runs, so an interruption anywhere (a crash, a
        timeout, a template error) leaves a channel that the next call fills: every part is
        harmless to repeat (a unique due-work key, ``already_in_channel``, the same topic), and
        ``incident_channel.ready`` is audited once all of them got through. An invitation
        refused for the user (unknown, the bot itself, already in) is only logged; Slack
        trouble (5xx, rate limit, no connection) raises :class:`RetryLater` after the other
        parts, so that the due work runs again; other errors propagate (retried with back-off).
        """
        assert rollback.id is not None
        with self.lock_for(rollback.id):
            if self._already(rollback.id, READY_KIND):
                return
            current = self.repo.get_rollback(rollback.id) or rollback
            if current.status in ACTIVE:
                # first, no Slack call needed: the series must not wait for invites or topic
                self.schedule_update(rollback.id, 1, service)
            try:
                unsettled = self._invite(channel_id, self._invitees(rollback, service))
                is_topic_set = self.set_topic(current, service)
            except (OSError, HTTPException) as exc:  # a timeout, a refused or dropped connection
                raise RetryLater(
                    f"incident channel {channel_id} not set up: Slack unreachable ({exc!r})",
                    RETRY_SECONDS,
                ) from exc
            if unsettled:
                raise RetryLater(
                    f"incident channel {channel_id}: {', '.join(unsettled)} not invited yet",
                    RETRY_SECONDS,
                )
            if not is_topic_set:
                raise RetryLater(f"incident channel {channel_id}: no topic yet", RETRY_SECONDS)
            self._audit(READY_KIND, rollback, channel_id)

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
            except SlackError as exc:
                if exc.error != "name_taken":
                    raise
                # ours already, when an earlier create took effect but its answer was lost
                if (mine := self._created_by_us(name, rollback)) is not None:
                    return mine, name
                continue  # an archived channel keeps its name too: never unarchive
            return str(resp["channel"]["id"]), name
        raise RuntimeError(f"no free incident channel name after {MAX_SUFFIX} tries")

    def _created_by_us(self, name: str, rollback: Rollback) -> str | None:
        """The id of the open channel ``name`` if this bot created it since the rollback began
        (its create answered 5xx or timed out after Slack made it), else None."""
        try:
            me = str(self.slack.auth_test().get("user_id") or "")
            listed = self.slack.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000
            )
        except SlackError as exc:
            log.warning("cannot check who made #%s: %s", name, _error(exc))
            return None
        since = rollback.created_at.timestamp() - 60
        for channel in listed.get("channels") or []:
            if (
                channel.get("name") == name
                and channel.get("creator") == me
                and float(channel.get("created") or 0) >= since
            ):
                log.info("rollback #%s: its incident channel #%s exists already", rollback.id, name)
                return str(channel["id"])
        return None

    def _invitees(self, rollback: Rollback, service: Service) -> list[str]:
        listed = [a for a in service.spec.approvers if isinstance(a, str)]
        members = sorted(self.approver_members(service))
        users = [rollback.requested_by, *service.spec.responders, *listed, *members]
        return list(dict.fromkeys(u for u in users if templates.mention(u).startswith("<@")))

    def _invite(self, channel_id: str, users: list[str]) -> list[str]:
        """One call per user: Slack fails a whole batch for one bad id, which must not cost the
        others their invitation. Returns the users to try again (Slack's trouble, not theirs);
        a connection error propagates at once (the next call would wait just as long)."""
        unsettled = []
        for user in users:
            try:
                self.slack.conversations_invite(channel=channel_id, users=user)
            except SlackError as exc:
                is_transient = _is_transient(exc)
                log.log(
                    logging.WARNING if is_transient else logging.INFO,
                    "incident channel %s: %s not invited%s (%s)",
                    channel_id,
                    user,
                    " yet" if is_transient else "",
                    _error(exc),
                )
                if is_transient:
                    unsettled.append(user)
        return unsettled

    # --- topic and updates -----------------------------------------------------------------

    def set_topic(self, rollback: Rollback, service: Service) -> bool:
        """Set the incident_topic; False when Slack failed for its own reasons (worth another
        try: the next phase or update sets it anyway)."""
        if not rollback.incident_channel_id:
            return True
        context = template_context.build_context(self.repo, rollback, service, self.clock())
        topic = templates.render(service, "incident_topic", context)
        if len(topic) > TOPIC_LIMIT:
            topic = topic[: TOPIC_LIMIT - 1] + "…"
        error = self._call_quietly(
            "conversations_setTopic", channel=rollback.incident_channel_id, topic=topic
        )
        return error is None or not _is_transient(error)

    def schedule_update(self, rollback_id: int, sequence: int, service: Service) -> None:
        every = timedelta(minutes=service.notifications.update_every_minutes)
        self.due.schedule(
            DueKind.INCIDENT_UPDATE,
            incident_update_key(rollback_id, sequence),
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
        marker = post_marker("update", rollback.id, rollback.created_at, audit_kind)
        found = (
            find_marked(self.slack, channel, marker)
            if self._tried(rollback.id, audit_kind)
            else None
        )
        resp = (
            {"ts": found}
            if found
            else self.slack.chat_postMessage(
                channel=channel, text=text, unfurl_links=False, metadata=marker
            )
        )
        self._audit(audit_kind, rollback, channel, message_ts=str(resp.get("ts")))
        return str(resp.get("ts"))

    def _audit(
        self,
        kind: str,
        rollback: Rollback,
        channel_id: str,
        message_ts: str | None = None,
        **detail: Any,
    ) -> None:
        self.repo.add_audit_event(
            kind,
            now=self.clock(),
            service=rollback.service,
            rollback_id=rollback.id,
            channel_id=channel_id,
            message_ts=message_ts,
            detail=detail,
        )

    def _already(self, rollback_id: int, kind: str) -> bool:
        return bool(self.repo.list_audit_events(kind=kind, rollback_id=rollback_id))

    def _tried(self, rollback_id: int, kind: str) -> bool:
        """Whether this update was sent before without its answer recorded (the first attempt
        is recorded now, as a delivery key): then it is looked for before posting again."""
        return not self.repo.record_delivery(f"tried:{kind}:{rollback_id}", self.clock())

    def on_update_due(self, item: DueWork, service_for: Callable[[str], Service | None]) -> None:
        """Due-work handler: schedule the next update, then post this one while the rollback
        is active. Next first: a post that fails (and is retried, or given up) must not end the
        series; the key makes scheduling it again on a retry harmless."""
        rollback = self.repo.get_rollback(int(item.payload["rollback_id"]))
        if rollback is None or rollback.status not in ACTIVE:
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
        self.repo.cancel_work_with_prefix(incident_update_prefix(rollback.id), self.clock())
        self.post_update(rollback, service, "notification.incident_final")
        self.set_topic(rollback, service)

    def _call_quietly(self, method: str, **kwargs: str) -> SlackError | None:
        """Call Slack; a refusal is logged and returned, not raised."""
        try:
            getattr(self.slack, method)(**kwargs)
        except SlackError as exc:
            log.warning("%s on %s failed: %s", method, kwargs.get("channel"), _error(exc))
            return exc
        return None


def _error(exc: SlackError) -> str:
    return str(exc.error or exc)


def _is_transient(exc: SlackError) -> bool:
    """Slack failed for its own reasons (429 and 5xx left over by the client's retry handlers)."""
    status = exc.status
    return status == 429 or status >= 500 or _error(exc) in _TRANSIENT_ERRORS
