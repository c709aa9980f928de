"""Who is who in the simulated workspace: auth.test, users.info, usergroups.users.list."""

from __future__ import annotations

from bot.sim.slack_store import Handler, Params, SlackError, SlackWorkspace, registrar

METHODS: dict[str, Handler] = {}
_method = registrar(METHODS)


@_method("auth.test")
def _auth_test(workspace: SlackWorkspace, params: Params) -> Params:
    return {
        "url": "https://example.slack.com/",
        "team": "Example Workspace",
        "team_id": workspace.team_id,
        "user": "rollback-bot",
        "user_id": workspace.bot_user_id,
        "bot_id": workspace.bot_id,
        "is_enterprise_install": False,
    }


@_method("users.info")
def _users_info(workspace: SlackWorkspace, params: Params) -> Params:
    return {"user": dict(workspace.user(params.get("user")))}


@_method("usergroups.users.list")
def _usergroups_users_list(workspace: SlackWorkspace, params: Params) -> Params:
    group = params.get("usergroup")
    if group not in workspace.usergroups:
        raise SlackError("no_such_subteam")
    return {"users": list(workspace.usergroups[group])}
