"""The ``auto_rollback:`` section of ``rollback.yaml`` (issue 14): the automatic guard's settings
and triggers, per service or under ``defaults``.

Only what a trigger says on its own is checked here (pydantic, so every bad trigger of the file
is reported at once); what depends on the service it guards (its signals, its ``health_url``) is
checked in :mod:`bot.catalog.guard`, which also resolves the section into a ``GuardConfig``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.catalog.fields import PromQL, PromQLSignal
from bot.rollback.triggers import HEALTH_CHECK_FAILURES, Comparison, ConfirmTimeout

METRICS = (*get_args(PromQLSignal), HEALTH_CHECK_FAILURES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _metric(v: str | None) -> str | None:
    if v is None or v in METRICS:
        return v
    close = difflib.get_close_matches(v, METRICS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ValueError(
        f"unknown metric {v!r} ({hint}known: {', '.join(METRICS)}; for any other PromQL"
        " write query: instead)"
    )


class TriggerSpec(_Strict):
    """One entry of ``triggers:``: what is read, the limit, and how long it must be beyond it."""

    metric: str | None = None
    query: PromQL | None = None
    # what messages call the trigger; default: the metric, or "query N" for the N-th raw query
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[^\n]*$")
    threshold: float | None = None
    factor: float | None = Field(default=None, gt=0)
    relative_to: Literal["baseline"] | None = None
    comparison: Comparison = Comparison.GREATER_THAN
    duration_seconds: float | None = Field(default=None, gt=0)
    consecutive: bool = False

    _check_metric = field_validator("metric")(_metric)

    @property
    def is_health(self) -> bool:
        return self.metric == HEALTH_CHECK_FAILURES

    @property
    def is_relative(self) -> bool:
        return self.factor is not None or self.relative_to is not None

    @model_validator(mode="after")
    def _says_one_thing(self) -> TriggerSpec:
        # every problem of the trigger in one message, so one check-config run lists them all
        problems = [*_source_problems(self), *_limit_problems(self), *_hold_problems(self)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _source_problems(t: TriggerSpec) -> Iterator[str]:
    if t.metric is None and t.query is None:
        yield (
            "a trigger needs metric: (one of the service's signals, or health_check_failures)"
            " or query: (your own PromQL)"
        )
    if t.metric is not None and t.query is not None:
        yield (
            "metric: and query: together: give one (metric: reads the service's signal,"
            " query: your own PromQL)"
        )


def _limit_problems(t: TriggerSpec) -> Iterator[str]:
    if t.is_health:
        yield from _health_limit_problems(t)
        return
    if t.relative_to is not None and t.factor is None:
        yield "relative_to: baseline needs factor: (it fires beyond factor × the baseline)"
    if t.factor is not None and t.threshold is not None:
        yield (
            "threshold: and factor: together: threshold is an absolute limit, factor ×"
            " the baseline a relative one; give one"
        )
    if not t.is_relative and t.threshold is None:
        yield (
            "missing threshold: (the limit the value is compared with), or factor: with"
            " relative_to: baseline for a limit relative to before the release"
        )


def _health_limit_problems(t: TriggerSpec) -> Iterator[str]:
    if t.is_relative:
        yield (
            "health_check_failures cannot be relative (a probe fails or not): drop"
            " factor:/relative_to: and use threshold: with consecutive: true"
        )
    if "comparison" in t.model_fields_set and t.comparison != Comparison.GREATER_THAN:
        yield "health_check_failures counts failures: comparison must be greater_than (or left out)"
    if t.consecutive and (t.threshold is None or t.threshold < 1 or t.threshold % 1):
        yield (
            "threshold: with consecutive: true is the number of failed probes in a row that"
            " fires: a whole number of at least 1"
        )
    if not t.consecutive and t.duration_seconds is not None and t.threshold is not None:
        yield (
            "health_check_failures with duration_seconds: fires when the probe keeps failing"
            " that long, so it takes no threshold: (a count of failures in a row goes with"
            " consecutive: true instead of duration_seconds:)"
        )


def _hold_problems(t: TriggerSpec) -> Iterator[str]:
    if t.consecutive and not t.is_health:
        yield (
            "consecutive: true counts failed health probes in a row, so it only goes with"
            " metric: health_check_failures; use duration_seconds: here"
        )
    elif t.consecutive and t.duration_seconds is not None:
        yield (
            "duration_seconds: and consecutive: together: give one (how long the failures"
            " must last, or threshold: failed probes in a row)"
        )
    elif not t.consecutive and t.duration_seconds is None:
        also = (
            " (or consecutive: true with threshold: failed probes in a row)" if t.is_health else ""
        )
        yield (
            "missing duration_seconds: how long the condition must hold before the trigger"
            f" fires{also}; one bad reading never fires"
        )


class SafetyChecks(_Strict):
    """Checks before an automatic rollback; a failing one turns it into a question."""

    verify_previous_version_healthy: bool = True
    verify_rollback_tested: bool = False


class AutoRollback(_Strict):
    """The guard's settings (seed 001 "Automatic Rollback System", in its vocabulary)."""

    enabled: bool = False
    watch_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    interval_seconds: float = Field(default=30.0, ge=5, le=3600)  # under 5 s only loads Prometheus
    baseline_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    require_manual_confirmation: bool = False
    confirm_timeout_seconds: float = Field(default=300.0, gt=0, le=24 * 3600)
    on_confirm_timeout: ConfirmTimeout = ConfirmTimeout.ROLLBACK
    max_per_day: int = Field(default=2, ge=0, le=100)  # 0: never automatically, only page and ask
    triggers: list[TriggerSpec] = []
    safety_checks: SafetyChecks = SafetyChecks()
