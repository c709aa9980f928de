"""Slack Web API client set-up: the retry policy every call of the bot gets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

log = logging.getLogger(__name__)

# Slack answers these when the message will not go through however often we try: the channel
# (gone, archived, read-only, not joinable), the token or its scopes, or the message itself.
# Anything else (ratelimited, internal_error, fatal_error, service_unavailable, …) may pass.
PERMANENT_ERRORS = frozenset(
    {
        # the channel
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "is_private",
        "method_not_supported_for_channel_type",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
        "ekm_access_denied",
        # the token and its scopes
        "missing_scope",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "not_allowed_token_type",
        "access_denied",
        "org_login_required",
        "enterprise_is_restricted",
        "two_factor_setup_required",
        # the message
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
    }
)


# Methods that create something: a 500 may come after Slack did it, so a blind resend makes a
# second one (an orphaned progress message, a second incident channel). Their callers retry
# themselves, looking first for what the lost answer would have named. A 503 (Slack did not
# take the request) is still resent at once.
CREATING_METHODS = frozenset(
    {"chat.postMessage", "conversations.create", "files.completeUploadExternal", "canvases.create"}
)


class ServerErrorRetryUnlessCreating(ServerErrorRetryHandler):
    """slack_sdk's 5xx retry, except a 500 to a method that creates (CREATING_METHODS)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        if method in CREATING_METHODS and response is not None and response.status_code == 500:
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def slack_web_client(token: SecretStr, base_url: str) -> WebClient:
    """A WebClient that honours 429 Retry-After and retries connection errors and 5xx (not for
    methods that create: see CREATING_METHODS)."""
    return WebClient(
        token=token.get_secret_value(),
        base_url=base_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryUnlessCreating(max_retry_count=2),
        ],
    )


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
        client: WebClient,
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
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
            kept = "keeping the last known members" if cached else "it grants nobody"
            log.warning("cannot list members of user group %s (%s); %s", group, why, kept)
            return None
        members = frozenset(str(u) for u in users)
        with self._lock:
            self._cache[group] = (now, members)
        return members


class UserNames:
    """Display names of user ids for documents people read (the review), cached: ``users.info``
    once per person and ``ttl`` seconds. Slack trouble leaves the id as it is."""

    def __init__(
        self, client: WebClient, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def name(self, user_id: str) -> str | None:
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except Exception as exc:  # Slack errors, timeouts, connection errors alike
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
            log.info("users.info %s: %s; the review shows the id", user_id, why)
            return None
        profile = user.get("profile") or {}
        found = (  # a document reads best with full names
            user.get("real_name") or profile.get("real_name") or profile.get("display_name")
        ) or user.get("name")
        name = str(found) if found else None
        with self._lock:
            self._cache[user_id] = (self.clock(), name)
        return name


def post_marker(kind: str, *key: object) -> dict[str, Any]:
    """Message metadata naming what a post is for (``kind`` and the parts of a key unique to it,
    e.g. a rollback's id and start time), so a post whose answer was lost can be found again
    instead of posted twice."""
    return {
        "event_type": f"rollback_bot_{kind}",
        "event_payload": {"key": ":".join(str(part) for part in key)},
    }


def find_marked(
    client: WebClient, channel: str, marker: dict[str, Any], thread_ts: str | None = None
) -> str | None:
    """The ts of the message carrying ``marker`` among the latest 200 of the channel (or of the
    thread), else None — also when Slack cannot be asked (a duplicate beats a missing post)."""
    try:
        if thread_ts:
            found = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            found = client.conversations_history(
                channel=channel, include_all_metadata=True, limit=200
            )
    except Exception as exc:  # Slack errors, a missing history scope, timeouts alike
        why = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
        log.warning("cannot look for an earlier post in %s: %s", channel, why)
        return None
    for message in found.get("messages") or []:
        if message.get("metadata") == marker:
            return str(message["ts"])
    return None


def open_view(client: WebClient, trigger_id: str, view: dict[str, Any]) -> str | None:
    """Open a modal; Slack's error code when it refuses (``expired_trigger_id`` when Slack was
    slow to deliver the click), else None."""
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        log.warning("views.open failed: %s", error)
        return error
    return None


def tell_privately(client: WebClient, channel: str, user: str, text: str) -> None:
    """An ephemeral note in the channel, or a direct message when that is not possible."""
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.info("ephemeral to %s in %s failed (%s); sending a DM", user, channel, exc)
        client.chat_postMessage(channel=user, text=text)
