"""Channels and their membership: conversations.create/info/archive/invite/setTopic/join/list.

Reading a channel's messages (conversations.history/replies) lives with the messages, in
`slack_chat`.
"""

from __future__ import annotations

import re
import time

from bot.sim.slack_store import (
    Handler,
    Params,
    SlackError,
    SlackWorkspace,
    id_list,
    is_set,
    registrar,
    required,
)

_CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
METHODS: dict[str, Handler] = {}
_method = registrar(METHODS)


@_method("conversations.create")
def _conversations_create(workspace: SlackWorkspace, params: Params) -> Params:
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
    if any(channel.name == name for channel in workspace.channels.values()):
        raise SlackError("name_taken")
    is_private = is_set(params.get("is_private"))
    channel = workspace.add_channel(workspace.next_id("C"), name, is_private=is_private)
    channel.creator, channel.created = workspace.bot_user_id, int(time.time())
    return {"channel": channel.to_api(workspace.bot_user_id)}


@_method("conversations.info")
def _conversations_info(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    # as Slack: a private channel the bot is not in does not exist for its token
    if channel.is_private and workspace.bot_user_id not in channel.members:
        raise SlackError("channel_not_found")
    return {"channel": channel.to_api(workspace.bot_user_id)}


@_method("conversations.archive")
def _conversations_archive(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    if channel.is_archived:
        raise SlackError("already_archived")
    channel.is_archived = True
    return {}


@_method("conversations.unarchive")
def _conversations_unarchive(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    if not channel.is_archived:
        raise SlackError("not_archived")
    channel.is_archived = False
    return {}


@_method("conversations.invite")
def _conversations_invite(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    users = id_list(params.get("users"))
    if not users:
        raise SlackError("no_user")
    for user_id in users:
        workspace.user(user_id)
    if workspace.bot_user_id in users:
        raise SlackError("cant_invite_self")
    if set(users) <= channel.members:
        raise SlackError("already_in_channel")
    channel.members.update(users)
    return {"channel": channel.to_api(workspace.bot_user_id)}


@_method("conversations.setTopic")
def _conversations_set_topic(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    topic = str(params.get("topic", ""))
    if len(topic) > 250:
        raise SlackError("too_long")
    channel.topic = topic
    return {"channel": channel.to_api(workspace.bot_user_id)}


@_method("conversations.join")
def _conversations_join(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    channel.members.add(workspace.bot_user_id)
    return {"channel": channel.to_api(workspace.bot_user_id)}


@_method("conversations.list")
def _conversations_list(workspace: SlackWorkspace, params: Params) -> Params:
    types = set(id_list(params.get("types"))) or {"public_channel"}
    kinds = {
        "public_channel": (False, False),
        "private_channel": (True, False),
        "im": (False, True),
    }
    wanted = {kinds[t] for t in types if t in kinds}
    skip_archived = is_set(params.get("exclude_archived"))
    channels = [
        channel.to_api(workspace.bot_user_id)
        for channel in workspace.channels.values()
        if (channel.is_private, channel.is_im) in wanted
        and not (skip_archived and channel.is_archived)
    ]
    return {"channels": channels, "response_metadata": {"next_cursor": ""}}
