"""Slack lookups the bot caches: members of user groups (approvers), people's names and
channel names."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

from bot.adapters.slack.web import SlackClient, why

log = logging.getLogger(__name__)

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


class UserGroupMembers:
    """Members of Slack user groups (``usergroups.users.list``), cached for ``ttl_seconds``.

    Approver lists may name user groups; their membership is asked of Slack at most once per
    ttl per group. When Slack cannot answer, the last known members are used for up to
    ``max_stale_seconds`` (a short Slack hiccup does not lock approvers out), then nobody: a
    removed approver must not keep approving because the lookup stays broken (e.g. a revoked
    ``usergroups:read`` scope). Listed user ids are unaffected. Every failure is logged.
    """

    def __init__(
        self,
        client: SlackClient,
        *,
        ttl_seconds: float = 300.0,
        max_stale_seconds: float = 1200.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl_seconds, clock
        self.max_stale = max_stale_seconds
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def refresh(self, group_ids: Iterable[str]) -> int:
        """Ask Slack again for every group, cached or not (the scheduler does this every half
        ttl, so a button press finds the cache warm and never waits on Slack before its ack).
        Returns how many groups were refreshed; a group Slack cannot answer keeps its members."""
        refreshed = 0
        for group in dict.fromkeys(group_ids):
            refreshed += self._fetch(group, self._cached(group)) is not None
        return refreshed

    def members(self, group_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for group in group_ids:
            found |= self._members_of(group)
        return found

    def _cached(self, group: str) -> tuple[float, frozenset[str]] | None:
        with self._lock:
            return self._cache.get(group)

    def _members_of(self, group: str) -> frozenset[str]:
        cached = self._cached(group)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        fetched = self._fetch(group, cached)
        if fetched is not None:
            return fetched
        if cached is None:
            return frozenset()
        if self.clock() - cached[0] > self.max_stale:
            log.error(
                "user group %s: Slack has not answered for %.0f min; its members approve"
                " nothing until it does (listed user ids still can)",
                group,
                (self.clock() - cached[0]) / 60,
            )
            return frozenset()
        return cached[1]

    def _fetch(
        self, group: str, cached: tuple[float, frozenset[str]] | None
    ) -> frozenset[str] | None:
        """Members as Slack lists them now (and cached), or None when Slack cannot answer."""
        now = self.clock()
        try:
            users = self.client.usergroups_users_list(usergroup=group).get("users") or []
        except Exception as exc:  # Slack errors, timeouts, connection errors alike
            reason = why(exc)
            kept = "keeping the last known members" if cached else "it grants nobody"
            log.warning("cannot list members of user group %s (%s); %s", group, reason, kept)
            return None
        members = frozenset(str(u) for u in users)
        with self._lock:
            self._cache[group] = (now, members)
        return members


class UserNames:
    """Display names of user ids for documents people read (the review), cached: ``users.info``
    once per person and ``ttl`` seconds. Slack trouble leaves the id as it is."""

    def __init__(
        self, client: SlackClient, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def name(self, user_id: str) -> str | None:
        if not _SLACK_USER.match(user_id):  # e.g. the automatic guard: not a person to look up
            return None
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except Exception as exc:  # Slack errors, timeouts, connection errors alike
            reason = why(exc)
            log.info("users.info %s: %s; the review shows the id", user_id, reason)
            return None
        profile = user.get("profile") or {}
        found = (  # a document reads best with full names
            user.get("real_name") or profile.get("real_name") or profile.get("display_name")
        ) or user.get("name")
        name = str(found) if found else None
        with self._lock:
            self._cache[user_id] = (self.clock(), name)
        return name


class ChannelNames:
    """``#name`` of channel ids (``conversations.info``), for text read outside Slack (an SMS
    names the channel to answer in), cached for ``ttl`` seconds. A channel Slack will not show
    (``channel_not_found``, a missing scope) or Slack trouble leaves the id; that answer is
    cached only ``retry_seconds``."""

    def __init__(
        self,
        client: SlackClient,
        ttl: float = 3600.0,
        retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl, self.retry, self.clock = client, ttl, retry_seconds, clock
        self._cache: dict[str, tuple[float, float, str]] = {}  # id -> (at, ttl, shown)
        self._lock = threading.Lock()
        self._lookups: dict[str, threading.Lock] = {}  # channel id -> its lookup in flight

    def shown(self, channel_id: str) -> str:
        # one lookup per channel at a time: texts to a level go out in parallel, and each would
        # otherwise miss the cache and ask Slack again
        with self._lock:
            lookup = self._lookups.setdefault(channel_id, threading.Lock())
        with lookup:
            cached = self._cache.get(channel_id)
            if cached is not None and self.clock() - cached[0] < cached[1]:
                return cached[2]
            try:
                channel = self.client.conversations_info(channel=channel_id).get("channel") or {}
            except Exception as exc:  # Slack errors, timeouts, connection errors alike
                log.info("conversations.info %s: %s; naming it by its id", channel_id, why(exc))
                name, ttl = "", self.retry
            else:
                name, ttl = str(channel.get("name") or ""), self.ttl
            shown = f"#{name}" if name else channel_id
            self._cache[channel_id] = (self.clock(), ttl, shown)
            return shown
