"""What a readiness check answers: ✓, ✗ or unknown, with the reason and what to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"  # could not be told: never counted as ready


MARKS = {State.OK: "✓", State.FAILED: "✗", State.UNKNOWN: "unknown"}


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "Permissions"
    state: State
    reason: str  # what was found
    todo: str = ""  # what to do about it (empty when ✓)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reason": self.reason, "todo": self.todo}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        return cls(
            str(data.get("name", "")),
            State(str(data.get("state", State.UNKNOWN))),
            str(data.get("reason", "")),
            str(data.get("todo", "")),
        )


def ok(name: str, reason: str) -> Check:
    return Check(name, State.OK, reason)


def failed(name: str, reason: str, todo: str) -> Check:
    return Check(name, State.FAILED, reason, todo)


def unknown(name: str, reason: str, todo: str) -> Check:
    return Check(name, State.UNKNOWN, reason, todo)
