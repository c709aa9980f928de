"""Field formats of ``rollback.yaml``: id patterns, value types and the validators of both."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

from bot.rollback.assess import PROMQL_SIGNALS, Signal
from bot.rollback.plan import PHASES

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")
SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

Strategy = Literal["undo", "blue-green", "canary", "http"]
STRATEGY_SECTIONS = {"blue-green": "blue_green", "canary": "canary", "http": "http_rollback"}
PhaseName = Literal[
    "preparation",
    "stop_traffic",
    "database",
    "application",
    "cache",
    "traffic_restoration",
    "verification",
    "cleanup",
]
PromQLSignal = Literal["error_rate", "latency_p95_seconds", "user_sessions_per_min", "db_up"]
assert {Signal(s) for s in get_args(PromQLSignal)} == set(PROMQL_SIGNALS)
assert get_args(PhaseName) == PHASES


def _user_id(v: str) -> str:
    if not SLACK_USER.match(v):
        raise ValueError(f"{v!r} is not a Slack user id (U… or W…)")
    return v


SlackUserId = Annotated[str, AfterValidator(_user_id)]


def _service_name(v: str) -> str:
    if not SERVICE_NAME.match(v):
        raise ValueError(f"service name {v!r} must be lowercase letters, digits and dashes")
    return v


def _promql(v: str) -> str:
    if not v.strip():
        raise ValueError("the query is empty")
    return v


ServiceName = Annotated[str, AfterValidator(_service_name)]
PromQL = Annotated[str, AfterValidator(_promql)]


def _channel_id(v: str | None) -> str | None:
    if v is not None and not SLACK_CHANNEL.match(v):
        raise ValueError(f"{v!r} is not a Slack channel id (C… or G…)")
    return v


def _timezone(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{v!r} is not a time zone: use an IANA name like Europe/Berlin") from None
    return v


def _channel_ids(v: list[str]) -> list[str]:
    for channel in v:
        _channel_id(channel)
    return v
