"""The state behind `SlackSimulator`: one workspace, and what its Web API methods share.

The methods themselves live by concern in `slack_chat`, `slack_conversations`, `slack_files`,
`slack_views` and `slack_users`; `slack_methods` dispatches to them.
Not thread-safe on its own: the simulator calls into it while holding its lock.
Errors are raised as `SlackError(code)` and become Slack's `{"ok": false, "error": code}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

Params = dict[str, Any]
Handler = Callable[["SlackWorkspace", Params], Params]

# A fixed epoch keeps ts values readable and stable between runs, like "1700000000.000100".
_EPOCH = 1_700_000_000
MESSAGE_TEXT_LIMIT = 40_000  # Slack: "msg_too_long" beyond this


class SlackError(Exception):
    """A Slack error code such as `channel_not_found`, with Slack's explanations if any."""

    def __init__(self, code: str, details: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details or []


def registrar(table: dict[str, Handler]) -> Callable[[str], Callable[[Handler], Handler]]:
    """A decorator that files a handler in `table` under its Web API method name."""

    def method(name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            table[name] = handler
            return handler

        return register

    return method


def required(params: Params, key: str, error: str = "invalid_arguments") -> Any:
    value = params.get(key)
    if value in (None, ""):
        raise SlackError(error)
    return value


def id_list(value: Any) -> list[str]:
    """Slack takes id lists as "A,B" in form bodies and as arrays in JSON bodies."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def is_set(value: Any) -> bool:
    # Form bodies carry booleans as "1"/"0" (slack_sdk) or "true"/"false" (curl users).
    return value is True or str(value).lower() in ("1", "true")


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    is_archived: bool = False
    topic: str = ""
    members: set[str] = field(default_factory=set)
    creator: str = "U0ADMIN"  # who made it: a workspace admin, or the bot (conversations.create)
    created: int = _EPOCH

    def to_api(self, bot_user_id: str) -> Params:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": False,
            "is_im": self.is_im,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": bot_user_id in self.members,
            "created": self.created,
            "creator": self.creator,
            "topic": {"value": self.topic, "creator": bot_user_id, "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "num_members": len(self.members),
        }


class SlackWorkspace:
    def __init__(
        self,
        *,
        team_id: str,
        bot_user_id: str,
        is_paid_plan: bool,
        is_strict_channels: bool,
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.is_paid_plan = is_paid_plan
        self.is_strict_channels = is_strict_channels
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[Params]] = {}
        self.ephemerals: dict[str, list[Params]] = {}
        self.users: dict[str, Params] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.views: dict[str, Params] = {}
        self.home_views: dict[str, Params] = {}
        self.canvases: dict[str, Params] = {}
        self.files: dict[str, Params] = {}  # by file id, from getUploadURLExternal on
        self._sequence = 0
        self.add_user(bot_user_id, "rollback-bot", is_bot=True)

    # -- set-up --------------------------------------------------------------------------------

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        is_im: bool = False,
        is_archived: bool = False,
        has_bot: bool = True,
    ) -> Channel:
        channel = Channel(channel_id, name, is_private, is_im, is_archived)
        if has_bot:
            channel.members.add(self.bot_user_id)
        self.channels[channel_id] = channel
        self.messages.setdefault(channel_id, [])
        return channel

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        tz: str = "UTC",
        *,
        email: str | None = None,
        is_bot: bool = False,
    ) -> None:
        zone = ZoneInfo(tz)
        now = datetime.now(UTC).astimezone(zone)
        offset = now.utcoffset()
        real = real_name or name
        profile: Params = {"real_name": real, "display_name": name}
        if email is not None:
            profile["email"] = email
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": False,
            "is_bot": is_bot,
            "tz": tz,
            "tz_label": now.tzname(),
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "profile": profile,
        }

    # -- helpers for the methods -----------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}0SIM{self._sequence:05d}"

    def next_ts(self) -> str:
        self._sequence += 1
        micros = self._sequence * 100
        return f"{_EPOCH + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def find_channel(self, ref: Any) -> Channel | None:
        """A channel by id, by name ("#general" works in chat.postMessage too) or DM by user id."""
        ref = str(ref or "")
        named = {channel.name: channel for channel in self.channels.values()}
        direct = "D" + ref[1:] if ref[:1] in ("U", "W") else ""
        return self.channels.get(ref) or named.get(ref.lstrip("#")) or self.channels.get(direct)

    def resolve_channel(self, ref: Any) -> Channel:
        channel = self.find_channel(ref)
        if channel is not None:
            return channel
        ref = str(ref or "")
        if ref in self.users:
            # Posting to a user id opens the bot's DM with that user.
            return self.add_channel("D" + ref[1:], ref, is_im=True)
        if not self.is_strict_channels and re.fullmatch(r"[CG][A-Z0-9]+", ref):
            return self.add_channel(ref, ref.lower())
        raise SlackError("channel_not_found")

    def find_message(self, channel: Channel, ts: Any) -> Params:
        for message in self.messages[channel.id]:
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def writable_channel(self, params: Params) -> Channel:
        channel = self.resolve_channel(required(params, "channel", "channel_not_found"))
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def user(self, user_id: Any) -> Params:
        if user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def append_message(self, channel: Channel, fields: Params, thread_ts: Any) -> Params:
        """Post as the bot (chat.postMessage, a files share), in the thread when given."""
        message: Params = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id}
        message.update({"text": "", **fields, "ts": self.next_ts(), "team": self.team_id})
        if thread_ts:
            # Stricter than Slack, which accepts any thread_ts: a wrong one is a bug to report.
            parent = next((m for m in self.messages[channel.id] if m["ts"] == thread_ts), None)
            if parent is None:
                raise SlackError("thread_not_found")
            # Slack marks the parent as a thread and counts its replies.
            parent.update(thread_ts=parent["ts"], latest_reply=message["ts"])
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            message["thread_ts"] = parent["ts"]
        self.messages[channel.id].append(message)
        return message

    def shared_files(self, channel_id: str) -> list[Params]:
        """Completed uploads shared to a channel, in upload order."""
        return [f for f in self.files.values() if channel_id in f.get("channels", ())]
