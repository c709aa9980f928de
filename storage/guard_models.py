"""The automatic guard's tables: the revision each service was last seen at (and whether its
guard is paused), and each new release under watch with its triggers' remembered state.

A separate module so that `storage.models` stays under the size limit; the tables register on
the same `SQLModel.metadata` (the Alembic environment imports both modules).

The trigger states are stored as plain JSON (ISO datetimes) so that a restart or another
replica carries on a trigger's timer where it stood; `states_to_json` / `states_from_json`
convert them.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.rollback.triggers import TriggerState
from storage.models import UTCDateTime

# `Rollback.requested_by` of the rollbacks the guard starts (what `max_per_day` counts).
GUARD_ACTOR = "rollback-bot-guard"


class GuardStatus(StrEnum):
    WATCHING = "watching"  # inside its watch window: evaluated every interval
    FIRED = "fired"  # a trigger fired: rolled back or asked (exactly once)
    ENDED = "ended"  # the watch window passed without a trigger firing
    SUPERSEDED = "superseded"  # a newer release of the service is watched instead


class GuardedService(SQLModel, table=True):
    """What the guard knows of one service between polls (one row a service)."""

    __tablename__ = "guard_services"

    service: str = Field(primary_key=True)
    last_revision: str | None = None  # the Deployment revision last seen
    is_paused: bool = False
    paused_by: str | None = None
    changed_at: datetime = Field(sa_type=UTCDateTime())


class GuardedRelease(SQLModel, table=True):
    """One new release of a service, watched for `watch_minutes` by one replica at a time."""

    __tablename__ = "guarded_releases"
    # no separate index on service: the unique constraint leads with it
    __table_args__ = (sa.UniqueConstraint("service", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    service: str
    revision: str
    release: str  # what people call it, e.g. "app=checkout:v1.2"
    detected_at: datetime = Field(sa_type=UTCDateTime())
    watch_until: datetime = Field(sa_type=UTCDateTime())
    next_at: datetime = Field(sa_type=UTCDateTime(), index=True)  # the next evaluation
    status: str = GuardStatus.WATCHING
    # trigger name → the signal's value before the release (None: could not be read)
    baseline: dict[str, float | None] = Field(default_factory=dict, sa_type=sa.JSON)
    # trigger name → its TriggerState as JSON (see `states_to_json`)
    states: dict[str, dict[str, Any]] = Field(default_factory=dict, sa_type=sa.JSON)
    evaluations: int = 0
    fired_trigger: str | None = None
    fired_reason: str | None = None
    rollback_id: int | None = Field(default=None, foreign_key="rollbacks.id")
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # the "Guarding checkout v1.2 …" message, edited in place
    channel_id: str | None = None
    message_ts: str | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime())

    @property
    def trigger_states(self) -> dict[str, TriggerState]:
        """The stored states as `TriggerState`s."""
        return states_from_json(self.states)


# --- the JSON of trigger states --------------------------------------------------------------


def states_to_json(states: Mapping[str, TriggerState]) -> dict[str, dict[str, Any]]:
    """Trigger states as JSON-ready dicts: datetimes as ISO strings, non-finite floats as None
    (PostgreSQL's JSON has no NaN, and Prometheus can answer one)."""
    return {name: _state_to_json(state) for name, state in states.items()}


def states_from_json(data: Mapping[str, Any]) -> dict[str, TriggerState]:
    """The inverse of `states_to_json`. Keys it does not know are ignored and missing ones take
    their defaults, so rows written by an older or newer version still load."""
    return {name: _state_from_json(value) for name, value in data.items()}


def finite_or_none(value: float | None) -> float | None:
    """`value` unless it is NaN or infinite (which JSON on PostgreSQL cannot hold)."""
    return value if value is None or math.isfinite(value) else None


def _state_to_json(state: TriggerState) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in fields(state):
        value = getattr(state, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, float):
            value = finite_or_none(value)
        data[field.name] = value
    return data


def _state_from_json(data: Mapping[str, Any]) -> TriggerState:
    hints = typing.get_type_hints(TriggerState)
    values: dict[str, Any] = {}
    for field in fields(TriggerState):
        if field.name not in data:
            continue
        value = data[field.name]
        if value is not None and _holds_datetime(hints[field.name]):
            value = _aware(datetime.fromisoformat(value))
        values[field.name] = value
    return TriggerState(**values)


def _holds_datetime(hint: Any) -> bool:
    return hint is datetime or datetime in typing.get_args(hint)  # `datetime | None`


def _aware(moment: datetime) -> datetime:
    """Stored datetimes carry their offset; a naive one (hand-written JSON) is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
