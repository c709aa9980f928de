"""Modals and App Home: views.open/push/update/publish, checked against Block Kit's limits."""

from __future__ import annotations

from bot.sim.slack_blocks import view_errors
from bot.sim.slack_store import Handler, Params, SlackError, SlackWorkspace, registrar, required

METHODS: dict[str, Handler] = {}
_method = registrar(METHODS)


def _store_view(workspace: SlackWorkspace, params: Params, view_id: str) -> Params:
    view = required(params, "view")
    if not isinstance(view, dict) or "type" not in view:
        raise SlackError("invalid_arguments")
    if errors := view_errors(view):
        raise SlackError("invalid_arguments", errors)
    stored = {"blocks": [], "private_metadata": "", "callback_id": "", **view}
    stored.update(id=view_id, team_id=workspace.team_id, hash=workspace.next_id("h"))
    stored.update(state={"values": {}}, app_id="A0SIM", bot_id=workspace.bot_id)
    workspace.views[view_id] = stored
    return stored


@_method("views.open")
def _views_open(workspace: SlackWorkspace, params: Params) -> Params:
    required(params, "trigger_id", "invalid_trigger_id")
    return {"view": dict(_store_view(workspace, params, workspace.next_id("V")))}


@_method("views.push")
def _views_push(workspace: SlackWorkspace, params: Params) -> Params:
    return _views_open(workspace, params)


@_method("views.update")
def _views_update(workspace: SlackWorkspace, params: Params) -> Params:
    views = workspace.views
    external = {v["external_id"]: v["id"] for v in views.values() if "external_id" in v}
    view_id = params.get("view_id") or external.get(params.get("external_id"))
    if view_id not in views:
        raise SlackError("not_found")
    # A stale hash means someone else updated the view in between.
    if params.get("hash") not in (None, views[view_id]["hash"]):
        raise SlackError("hash_conflict")
    return {"view": dict(_store_view(workspace, params, str(view_id)))}


@_method("views.publish")
def _views_publish(workspace: SlackWorkspace, params: Params) -> Params:
    user_id = required(params, "user_id")
    if (params.get("view") or {}).get("type") != "home":
        raise SlackError("invalid_arguments")
    view = _store_view(workspace, params, workspace.next_id("V"))
    workspace.home_views[user_id] = view
    return {"view": dict(view)}
