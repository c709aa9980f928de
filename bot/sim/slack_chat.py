"""Messages and their history: chat.* and conversations.history/replies."""

from __future__ import annotations

from bot.sim.slack_blocks import block_errors
from bot.sim.slack_store import (
    MESSAGE_TEXT_LIMIT,
    Handler,
    Params,
    SlackError,
    SlackWorkspace,
    is_set,
    registrar,
    required,
)

METHODS: dict[str, Handler] = {}
_method = registrar(METHODS)


def _message_fields(params: Params) -> Params:
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
def _chat_post_message(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    fields = _message_fields(params)
    if not any(fields.get(k) for k in ("text", "blocks", "attachments")):
        raise SlackError("no_text")
    message = workspace.append_message(channel, fields, params.get("thread_ts"))
    if message.get("thread_ts") and is_set(params.get("reply_broadcast")):
        message["subtype"] = "thread_broadcast"
    return {"channel": channel.id, "ts": message["ts"], "message": dict(message)}


@_method("chat.update")
def _chat_update(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    message = workspace.find_message(channel, required(params, "ts", "message_not_found"))
    # Fields left out keep their old value, as documented for blocks and attachments.
    message.update(_message_fields(params))
    message["edits"] = message.get("edits", 0) + 1
    text = message.get("text", "")
    return {"channel": channel.id, "ts": message["ts"], "text": text, "message": dict(message)}


@_method("chat.postEphemeral")
def _chat_post_ephemeral(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    user = required(params, "user", "user_not_found")
    ephemeral = {"user": user, **_message_fields(params), "message_ts": workspace.next_ts()}
    if "thread_ts" in params:
        ephemeral["thread_ts"] = params["thread_ts"]
    workspace.ephemerals.setdefault(channel.id, []).append(ephemeral)
    return {"message_ts": ephemeral["message_ts"]}


@_method("chat.getPermalink")
def _chat_get_permalink(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    message = workspace.find_message(channel, params.get("message_ts"))
    link = f"https://example.slack.com/archives/{channel.id}/p{message['ts'].replace('.', '')}"
    if message.get("thread_ts", message["ts"]) != message["ts"]:
        link += f"?thread_ts={message['thread_ts']}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


@_method("chat.delete")
def _chat_delete(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.writable_channel(params)
    message = workspace.find_message(channel, params.get("ts"))
    workspace.messages[channel.id].remove(message)
    return {"channel": channel.id, "ts": message["ts"]}


@_method("conversations.history")
def _conversations_history(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    oldest, latest = float(params.get("oldest", 0)), float(params.get("latest", "inf"))
    # History shows top-level messages and broadcast replies, newest first.
    # a message's metadata is only shown to those who ask for it, as Slack does
    has_metadata = is_set(params.get("include_all_metadata"))
    visible = [
        {k: v for k, v in m.items() if k != "metadata" or has_metadata}
        for m in reversed(workspace.messages[channel.id])
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
def _conversations_replies(workspace: SlackWorkspace, params: Params) -> Params:
    channel = workspace.resolve_channel(required(params, "channel", "channel_not_found"))
    ts = params.get("ts")
    has_metadata = is_set(params.get("include_all_metadata"))
    thread = [
        {k: v for k, v in m.items() if k != "metadata" or has_metadata}
        for m in workspace.messages[channel.id]
        if ts in (m["ts"], m.get("thread_ts"))
    ]
    if not thread:
        raise SlackError("thread_not_found")
    return {"messages": thread, "has_more": False, "response_metadata": {"next_cursor": ""}}
