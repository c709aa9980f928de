"""``drills:`` in ``rollback.yaml``: when a readiness drill runs by itself, and how recent a
successful drill must be for the guard's ``verify_rollback_tested``.

    drills: {schedule: weekly, day: tue, at: "10:00"}      # every Tuesday, 10:00 service time
    drills: {schedule: monthly, day: 1, at: "09:30"}        # the 1st of every month
    drills: {schedule: monthly, day: mon}                   # the first Monday of every month

Under ``defaults:`` or a service (whose keys override the default's one by one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.catalog.yaml_lines import Path_, line_for

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERIOD_DAYS = {"weekly": 7, "monthly": 31}  # the longest gap between two scheduled drills
UNSCHEDULED_FRESH_DAYS = 14.0  # verify_rollback_tested without a schedule: two weeks
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
MAX_DAY_OF_MONTH = 28  # every month has it


class Drills(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: Literal["weekly", "monthly"] | None = None
    day: str | int | None = None  # weekly: mon … sun; monthly: 1 … 28, or mon … sun (the first)
    at: str = "10:00"  # HH:MM in the service's time zone
    # verify_rollback_tested: a successful drill at most this old (default: 2 × the schedule)
    max_age_days: float | None = Field(default=None, gt=0, le=366)

    @field_validator("day")
    @classmethod
    def _day(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, str):
            if v.lower()[:3] not in WEEKDAYS or v.lower() not in _day_names(v.lower()[:3]):
                raise ValueError(f"{v!r} is not a day: use mon … sun, or 1 … 28 (monthly)")
            return v.lower()[:3]
        if v is not None and not 1 <= v <= MAX_DAY_OF_MONTH:
            raise ValueError(f"{v} is not a day of every month: use 1 … {MAX_DAY_OF_MONTH}")
        return v

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not _CLOCK.match(v):
            raise ValueError(f'{v!r} is not a time of day: use HH:MM, e.g. "10:00"')
        return v

    @model_validator(mode="after")
    def _day_fits_schedule(self) -> Drills:
        if problem := day_problem(self):
            raise ValueError(problem)
        return self

    @property
    def period_days(self) -> int | None:
        return PERIOD_DAYS[self.schedule] if self.schedule else None

    @property
    def fresh_days(self) -> float:
        """How old the last successful drill may be before the service counts as untested."""
        if self.max_age_days is not None:
            return self.max_age_days
        return 2.0 * self.period_days if self.period_days else UNSCHEDULED_FRESH_DAYS


def _day_names(short: str) -> set[str]:
    full = {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }
    return {short, full[short]}


def day_problem(d: Drills) -> str | None:
    """Why ``day`` does not go with ``schedule`` (checked again once a service's keys are laid
    over the defaults' ones), or None."""
    if d.schedule == "weekly" and isinstance(d.day, int):
        return f"day: {d.day} is a day of the month, and a weekly drill needs mon … sun"
    return None


def drill_problems(
    resolved: Mapping[str, Drills],
    written: Mapping[str, bool],
    source: str,
    lines: Mapping[Path_, int],
) -> list[str]:
    """A service's ``drills:`` that only goes wrong over the defaults' (a day of the month under
    a weekly default); ``written``: whether the service has its own ``drills:``."""
    out = []
    for name, drills in resolved.items():
        if (problem := day_problem(drills)) is None:
            continue
        at: Path_ = ("services", name, "drills") if written.get(name) else ("defaults", "drills")
        dotted = ".".join(str(p) for p in at)
        out.append(f"{source}:{line_for(at, lines)}: {dotted}: {problem} (services.{name})")
    return out
