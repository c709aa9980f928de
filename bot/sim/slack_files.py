"""Documents: file uploads (the v2 flow, files.*) and canvases (canvases.*, paid plans only)."""

from __future__ import annotations

import mimetypes

from bot.sim.slack_store import (
    Handler,
    Params,
    SlackError,
    SlackWorkspace,
    id_list,
    registrar,
    required,
)

METHODS: dict[str, Handler] = {}
_method = registrar(METHODS)

# -- canvases --------------------------------------------------------------------------------------


def _canvas(workspace: SlackWorkspace, params: Params) -> Params:
    if not workspace.is_paid_plan:
        raise SlackError("free_teams_cannot_create_non_tabbed_canvases")
    canvas_id = params.get("canvas_id")
    if canvas_id not in workspace.canvases:
        raise SlackError("canvas_not_found")
    return workspace.canvases[canvas_id]


@_method("canvases.create")
def _canvases_create(workspace: SlackWorkspace, params: Params) -> Params:
    if not workspace.is_paid_plan:
        raise SlackError("free_teams_cannot_create_non_tabbed_canvases")
    content = params.get("document_content") or {}
    canvas_id = workspace.next_id("F")
    workspace.canvases[canvas_id] = {
        "id": canvas_id,
        "title": params.get("title", ""),
        "markdown": content.get("markdown", ""),
        "channel_id": params.get("channel_id"),
        "access": {},
        "changes": [],
    }
    return {"canvas_id": canvas_id}


@_method("canvases.access.set")
def _canvases_access_set(workspace: SlackWorkspace, params: Params) -> Params:
    canvas = _canvas(workspace, params)
    targets = id_list(params.get("channel_ids")) + id_list(params.get("user_ids"))
    if not targets:
        raise SlackError("invalid_arguments")
    level = required(params, "access_level")
    canvas["access"].update(dict.fromkeys(targets, level))
    return {}


@_method("canvases.getContent")
def _canvases_get_content(workspace: SlackWorkspace, params: Params) -> Params:
    canvas = _canvas(workspace, params)
    if params.get("content_type") not in (None, "", "markdown"):
        raise SlackError("invalid_arguments")  # only markdown is simulated
    return {"content": canvas["markdown"]}


@_method("canvases.edit")
def _canvases_edit(workspace: SlackWorkspace, params: Params) -> Params:
    canvas = _canvas(workspace, params)
    changes = required(params, "changes")
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


# -- files (upload v2) -----------------------------------------------------------------------------


@_method("files.getUploadURLExternal")
def _files_get_upload_url_external(workspace: SlackWorkspace, params: Params) -> Params:
    file_id = workspace.next_id("F")
    name, length = required(params, "filename"), int(required(params, "length"))
    workspace.files[file_id] = {"id": file_id, "name": name, "length": length, "content": None}
    # The simulator adds upload_url: it alone knows the address it listens on.
    return {"file_id": file_id}


def _file_object(workspace: SlackWorkspace, file: Params) -> Params:
    mimetype = mimetypes.guess_type(file["name"])[0] or "text/plain"
    link = f"https://example.slack.com/files/{workspace.bot_user_id}/{file['id']}/{file['name']}"
    public = {k: v for k, v in file.items() if k not in ("content", "length")}
    return {**public, "mimetype": mimetype, "size": file["length"], "permalink": link}


@_method("files.completeUploadExternal")
def _files_complete_upload_external(workspace: SlackWorkspace, params: Params) -> Params:
    entries = required(params, "files")
    channels = id_list(params.get("channel_id")) + id_list(params.get("channels"))
    shared = [workspace.writable_channel({"channel": c}) for c in channels]
    completed = []
    for entry in entries:
        file = workspace.files.get(entry.get("id"))
        if file is None or file["content"] is None:
            raise SlackError("file_not_found")
        file.update(title=entry.get("title") or file["name"], user=workspace.bot_user_id)
        file.update(channels=[c.id for c in shared], thread_ts=params.get("thread_ts"))
        completed.append(file)
    for channel in shared:
        # Slack shares the files as one message from the bot, in the thread when given.
        fields = {"text": params.get("initial_comment", ""), "upload": True}
        fields["files"] = [_file_object(workspace, f) for f in completed]
        message = workspace.append_message(channel, fields, params.get("thread_ts"))
        for file in completed:
            file.setdefault("shares", []).append({"channel": channel.id, "ts": message["ts"]})
    return {"files": [{"id": f["id"], "title": f["title"]} for f in completed]}


@_method("files.info")
def _files_info(workspace: SlackWorkspace, params: Params) -> Params:
    file = workspace.files.get(str(params.get("file")))
    if file is None or file["content"] is None:
        raise SlackError("file_not_found")
    return {"file": _file_object(workspace, file)}
