"""The state behind `SlackSimulator`: one workspace and the Web API methods that act on it.

Not thread-safe on its own: the simulator calls into it while holding its lock.
Errors are raised as `SlackError(code)` and become Slack's `{"ok": false, "error": code}`.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.sim.slack_blocks import block_errors, invalid, view_errors

Params = dict[str, Any]
Handler = Callable[["SlackWorkspace", Params], Params]

# A fixed epoch keeps ts values readable and stable between runs, like "1700000000.000100".
_EPOCH = 1_700_000_000
_CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
_METHODS: dict[str, Handler] = {}
MESSAGE_TEXT_LIMIT = 40_000  # Slack: "msg_too_long" beyond this


class SlackError(Exception):
    """A Slack error code such as `channel_not_found`, with Slack's explanations if any."""

    def __init__(self, code: str, details: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details or []


def _method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _METHODS[name] = handler
        return handler

    return register


def is_supported(method: str) -> bool:
    return method in _METHODS


def _required(params: Params, key: str, error: str = "invalid_arguments") -> Any:
    value = params.get(key)
    if value in (None, ""):
        raise SlackError(error)
    return value


def _id_list(value: Any) -> list[str]:
    """Slack takes id lists as "A,B" in form bodies and as arrays in JSON bodies."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _is_set(value: Any) -> bool:
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
    ) -> Channel:
        channel = Channel(channel_id, name, is_private, is_im, is_archived)
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

    # -- helpers ---------------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}0SIM{self._sequence:05d}"

    def _next_ts(self) -> str:
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

    def _find_message(self, channel: Channel, ts: Any) -> Params:
        for message in self.messages[channel.id]:
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def _writable_channel(self, params: Params) -> Channel:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def _user(self, user_id: Any) -> Params:
        if user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def call(self, method: str, params: Params) -> Params:
        """Run one Web API method; the answer is what Slack would send with HTTP 200."""
        params = {key: value for key, value in params.items() if value is not None}
        try:
            return {"ok": True, **_METHODS[method](self, params)}
        except SlackError as error:
            if error.details:
                return invalid(error.code, error.details)
            return {"ok": False, "error": error.code}

    # -- auth, chat ------------------------------------------------------------------------------

    @_method("auth.test")
    def _auth_test(self, params: Params) -> Params:
        return {
            "url": "https://example.slack.com/",
            "team": "Example Workspace",
            "team_id": self.team_id,
            "user": "rollback-bot",
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _message_fields(self, params: Params) -> Params:
        """The message parts of a post or edit, refused as Slack refuses them: blocks beyond
        Block Kit's limits (``invalid_blocks``), text over 40,000 characters."""
        keys = ("text", "blocks", "attachments", "metadata")
        fields = {k: params[k] for k in keys if k in params}
        if "blocks" in fields and (errors := block_errors(fields["blocks"])):
            raise SlackError("invalid_blocks", errors)
        if len(str(fields.get("text") or "")) > MESSAGE_TEXT_LIMIT:
            raise SlackError("msg_too_long")
        return fields

    @_method("chat.postMessage")
    def _chat_post_message(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        fields = self._message_fields(params)
        if not any(fields.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackError("no_text")
        message = self._append_message(channel, fields, params.get("thread_ts"))
        if message.get("thread_ts") and _is_set(params.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        return {"channel": channel.id, "ts": message["ts"], "message": dict(message)}

    def _append_message(self, channel: Channel, fields: Params, thread_ts: Any) -> Params:
        message: Params = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id}
        message.update({"text": "", **fields, "ts": self._next_ts(), "team": self.team_id})
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

    @_method("chat.update")
    def _chat_update(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        message = self._find_message(channel, _required(params, "ts", "message_not_found"))
        # Fields left out keep their old value, as documented for blocks and attachments.
        message.update(self._message_fields(params))
        message["edits"] = message.get("edits", 0) + 1
        text = message.get("text", "")
        return {"channel": channel.id, "ts": message["ts"], "text": text, "message": dict(message)}

    @_method("chat.postEphemeral")
    def _chat_post_ephemeral(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        user = _required(params, "user", "user_not_found")
        ephemeral = {"user": user, **self._message_fields(params), "message_ts": self._next_ts()}
        if "thread_ts" in params:
            ephemeral["thread_ts"] = params["thread_ts"]
        self.ephemerals.setdefault(channel.id, []).append(ephemeral)
        return {"message_ts": ephemeral["message_ts"]}

    @_method("chat.getPermalink")
    def _chat_get_permalink(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        message = self._find_message(channel, params.get("message_ts"))
        link = f"https://example.slack.com/archives/{channel.id}/p{message['ts'].replace('.', '')}"
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            link += f"?thread_ts={message['thread_ts']}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    @_method("chat.delete")
    def _chat_delete(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        message = self._find_message(channel, params.get("ts"))
        self.messages[channel.id].remove(message)
        return {"channel": channel.id, "ts": message["ts"]}

    # -- conversations ---------------------------------------------------------------------------

    @_method("conversations.create")
    def _conversations_create(self, params: Params) -> Params:
        name = str(params.get("name", ""))
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        # Archived channels keep their name, so a new channel cannot take it either.
        if any(channel.name == name for channel in self.channels.values()):
            raise SlackError("name_taken")
        is_private = _is_set(params.get("is_private"))
        channel = self.add_channel(self.next_id("C"), name, is_private=is_private)
        channel.creator, channel.created = self.bot_user_id, int(time.time())
        return {"channel": channel.to_api(self.bot_user_id)}

    @_method("conversations.info")
    def _conversations_info(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        return {"channel": channel.to_api(self.bot_user_id)}

    @_method("conversations.archive")
    def _conversations_archive(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        if channel.is_archived:
            raise SlackError("already_archived")
        channel.is_archived = True
        return {}

    @_method("conversations.unarchive")
    def _conversations_unarchive(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        if not channel.is_archived:
            raise SlackError("not_archived")
        channel.is_archived = False
        return {}

    @_method("conversations.invite")
    def _conversations_invite(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        users = _id_list(params.get("users"))
        if not users:
            raise SlackError("no_user")
        for user_id in users:
            self._user(user_id)
        if self.bot_user_id in users:
            raise SlackError("cant_invite_self")
        if set(users) <= channel.members:
            raise SlackError("already_in_channel")
        channel.members.update(users)
        return {"channel": channel.to_api(self.bot_user_id)}

    @_method("conversations.setTopic")
    def _conversations_set_topic(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        topic = str(params.get("topic", ""))
        if len(topic) > 250:
            raise SlackError("too_long")
        channel.topic = topic
        return {"channel": channel.to_api(self.bot_user_id)}

    @_method("conversations.join")
    def _conversations_join(self, params: Params) -> Params:
        channel = self._writable_channel(params)
        channel.members.add(self.bot_user_id)
        return {"channel": channel.to_api(self.bot_user_id)}

    @_method("conversations.list")
    def _conversations_list(self, params: Params) -> Params:
        types = set(_id_list(params.get("types"))) or {"public_channel"}
        kinds = {
            "public_channel": (False, False),
            "private_channel": (True, False),
            "im": (False, True),
        }
        wanted = {kinds[t] for t in types if t in kinds}
        skip_archived = _is_set(params.get("exclude_archived"))
        channels = [
            channel.to_api(self.bot_user_id)
            for channel in self.channels.values()
            if (channel.is_private, channel.is_im) in wanted
            and not (skip_archived and channel.is_archived)
        ]
        return {"channels": channels, "response_metadata": {"next_cursor": ""}}

    @_method("conversations.history")
    def _conversations_history(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        oldest, latest = float(params.get("oldest", 0)), float(params.get("latest", "inf"))
        # History shows top-level messages and broadcast replies, newest first.
        # a message's metadata is only shown to those who ask for it, as Slack does
        has_metadata = _is_set(params.get("include_all_metadata"))
        visible = [
            {k: v for k, v in m.items() if k != "metadata" or has_metadata}
            for m in reversed(self.messages[channel.id])
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
            if oldest < float(m["ts"]) < latest
        ]
        limit = int(params.get("limit", 100))
        return {
            "messages": visible[:limit],
            "has_more": len(visible) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    @_method("conversations.replies")
    def _conversations_replies(self, params: Params) -> Params:
        channel = self.resolve_channel(_required(params, "channel", "channel_not_found"))
        ts = params.get("ts")
        has_metadata = _is_set(params.get("include_all_metadata"))
        thread = [
            {k: v for k, v in m.items() if k != "metadata" or has_metadata}
            for m in self.messages[channel.id]
            if ts in (m["ts"], m.get("thread_ts"))
        ]
        if not thread:
            raise SlackError("thread_not_found")
        return {"messages": thread, "has_more": False, "response_metadata": {"next_cursor": ""}}

    # -- views -----------------------------------------------------------------------------------

    def _store_view(self, params: Params, view_id: str) -> Params:
        view = _required(params, "view")
        if not isinstance(view, dict) or "type" not in view:
            raise SlackError("invalid_arguments")
        if errors := view_errors(view):
            raise SlackError("invalid_arguments", errors)
        stored = {"blocks": [], "private_metadata": "", "callback_id": "", **view}
        stored.update(id=view_id, team_id=self.team_id, hash=self.next_id("h"))
        stored.update(state={"values": {}}, app_id="A0SIM", bot_id=self.bot_id)
        self.views[view_id] = stored
        return stored

    @_method("views.open")
    def _views_open(self, params: Params) -> Params:
        _required(params, "trigger_id", "invalid_trigger_id")
        return {"view": dict(self._store_view(params, self.next_id("V")))}

    @_method("views.push")
    def _views_push(self, params: Params) -> Params:
        return self._views_open(params)

    @_method("views.update")
    def _views_update(self, params: Params) -> Params:
        external = {v["external_id"]: v["id"] for v in self.views.values() if "external_id" in v}
        view_id = params.get("view_id") or external.get(params.get("external_id"))
        if view_id not in self.views:
            raise SlackError("not_found")
        # A stale hash means someone else updated the view in between.
        if params.get("hash") not in (None, self.views[view_id]["hash"]):
            raise SlackError("hash_conflict")
        return {"view": dict(self._store_view(params, str(view_id)))}

    @_method("views.publish")
    def _views_publish(self, params: Params) -> Params:
        user_id = _required(params, "user_id")
        if (params.get("view") or {}).get("type") != "home":
            raise SlackError("invalid_arguments")
        view = self._store_view(params, self.next_id("V"))
        self.home_views[user_id] = view
        return {"view": dict(view)}

    # -- users -----------------------------------------------------------------------------------

    @_method("users.info")
    def _users_info(self, params: Params) -> Params:
        return {"user": dict(self._user(params.get("user")))}

    @_method("usergroups.users.list")
    def _usergroups_users_list(self, params: Params) -> Params:
        group = params.get("usergroup")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    # -- canvases --------------------------------------------------------------------------------

    def _canvas(self, params: Params) -> Params:
        if not self.is_paid_plan:
            raise SlackError("free_teams_cannot_create_non_tabbed_canvases")
        canvas_id = params.get("canvas_id")
        if canvas_id not in self.canvases:
            raise SlackError("canvas_not_found")
        return self.canvases[canvas_id]

    @_method("canvases.create")
    def _canvases_create(self, params: Params) -> Params:
        if not self.is_paid_plan:
            raise SlackError("free_teams_cannot_create_non_tabbed_canvases")
        content = params.get("document_content") or {}
        canvas_id = self.next_id("F")
        self.canvases[canvas_id] = {
            "id": canvas_id,
            "title": params.get("title", ""),
            "markdown": content.get("markdown", ""),
            "channel_id": params.get("channel_id"),
            "access": {},
            "changes": [],
        }
        return {"canvas_id": canvas_id}

    @_method("canvases.access.set")
    def _canvases_access_set(self, params: Params) -> Params:
        canvas = self._canvas(params)
        targets = _id_list(params.get("channel_ids")) + _id_list(params.get("user_ids"))
        if not targets:
            raise SlackError("invalid_arguments")
        level = _required(params, "access_level")
        canvas["access"].update(dict.fromkeys(targets, level))
        return {}

    @_method("canvases.getContent")
    def _canvases_get_content(self, params: Params) -> Params:
        canvas = self._canvas(params)
        if params.get("content_type") not in (None, "", "markdown"):
            raise SlackError("invalid_arguments")  # only markdown is simulated
        return {"content": canvas["markdown"]}

    @_method("canvases.edit")
    def _canvases_edit(self, params: Params) -> Params:
        canvas = self._canvas(params)
        changes = _required(params, "changes")
        for change in changes:
            # Whole-document operations are applied; section-level ones are only recorded.
            markdown = (change.get("document_content") or {}).get("markdown", "")
            operation = change.get("operation")
            if operation == "replace" and "section_id" not in change:
                canvas["markdown"] = markdown
            elif operation == "insert_at_end":
                canvas["markdown"] += markdown
            elif operation == "insert_at_start":
                canvas["markdown"] = markdown + canvas["markdown"]
            elif operation == "rename":
                canvas["title"] = (change.get("title_content") or {}).get("markdown", "")
            canvas["changes"].append(change)
        return {}

    # -- files (upload v2) -----------------------------------------------------------------------

    @_method("files.getUploadURLExternal")
    def _files_get_upload_url_external(self, params: Params) -> Params:
        file_id = self.next_id("F")
        name, length = _required(params, "filename"), int(_required(params, "length"))
        self.files[file_id] = {"id": file_id, "name": name, "length": length, "content": None}
        # The simulator adds upload_url: it alone knows the address it listens on.
        return {"file_id": file_id}

    def _file_object(self, file: Params) -> Params:
        mimetype = mimetypes.guess_type(file["name"])[0] or "text/plain"
        link = f"https://example.slack.com/files/{self.bot_user_id}/{file['id']}/{file['name']}"
        public = {k: v for k, v in file.items() if k not in ("content", "length")}
        return {**public, "mimetype": mimetype, "size": file["length"], "permalink": link}

    @_method("files.completeUploadExternal")
    def _files_complete_upload_external(self, params: Params) -> Params:
        entries = _required(params, "files")
        channels = _id_list(params.get("channel_id")) + _id_list(params.get("channels"))
        shared = [self._writable_channel({"channel": c}) for c in channels]
        completed = []
        for entry in entries:
            file = self.files.get(entry.get("id"))
            if file is None or file["content"] is None:
                raise SlackError("file_not_found")
            file.update(title=entry.get("title") or file["name"], user=self.bot_user_id)
            file.update(channels=[c.id for c in shared], thread_ts=params.get("thread_ts"))
            completed.append(file)
        for channel in shared:
            # Slack shares the files as one message from the bot, in the thread when given.
            fields = {"text": params.get("initial_comment", ""), "upload": True}
            fields["files"] = [self._file_object(f) for f in completed]
            message = self._append_message(channel, fields, params.get("thread_ts"))
            for file in completed:
                file.setdefault("shares", []).append({"channel": channel.id, "ts": message["ts"]})
        return {"files": [{"id": f["id"], "title": f["title"]} for f in completed]}

    @_method("files.info")
    def _files_info(self, params: Params) -> Params:
        file = self.files.get(str(params.get("file")))
        if file is None or file["content"] is None:
            raise SlackError("file_not_found")
        return {"file": self._file_object(file)}

    def shared_files(self, channel_id: str) -> list[Params]:
        """Completed uploads shared to a channel, in upload order."""
        return [f for f in self.files.values() if channel_id in f.get("channels", ())]
