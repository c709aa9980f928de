"""The values and errors of the repository's API: NewStep, NewWork and its exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.rollback.lifecycle import StepStatus


class ActiveRollbackExists(Exception):
    """The service already has an active rollback (the partial unique index said no)."""

    def __init__(self, service: str, existing_id: int) -> None:
        super().__init__(f"a rollback of {service} is already active (#{existing_id})")
        self.service = service
        self.existing_id = existing_id


class RecordNotFound(LookupError):
    """The row to update does not exist."""


@dataclass(frozen=True)
class NewStep:
    """A plan step to persist with `Repository.add_steps` (its position is its index)."""

    phase: str
    name: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    status: str = StepStatus.PENDING  # SKIPPED: a phase a partial rollback does not run
    error: str | None = None  # why a step stored as skipped never runs
    region: str | None = None  # multi-region services: the region and its wave
    wave: int | None = None


@dataclass(frozen=True)
class NewWork:
    """Due work to schedule together with a status change (`set_rollback_status`)."""

    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
