"""A service's ``auto_rollback:`` resolved into a :class:`GuardConfig` (its problems are found by
:mod:`bot.catalog.guard_checks`, before anything runs on it).

A service's section overrides ``defaults.auto_rollback`` key by key, as ``approval:`` does;
``triggers:`` is one key, so a service that writes it replaces the default list whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from bot.catalog.auto_rollback import AutoRollback, TriggerSpec
from bot.catalog.spec import ServiceSpec
from bot.rollback.triggers import Comparison, GuardConfig, Trigger

_M = TypeVar("_M", bound=BaseModel)


def overlay(default: _M, override: _M | None) -> _M:
    """The default with the keys the override wrote replaced; nested sections key by key too."""
    if override is None:
        return default
    update = {}
    for key in override.model_fields_set:
        value, base = getattr(override, key), getattr(default, key)
        nested = isinstance(value, BaseModel) and isinstance(base, BaseModel)
        update[key] = overlay(base, value) if nested else value
    return default.model_copy(update=update)


def trigger_names(triggers: Sequence[TriggerSpec]) -> list[str]:
    """Each trigger's name: its own, else the metric, else ``query N`` (the N-th raw query)."""
    names, queries = [], 0
    for t in triggers:
        if t.metric is None:
            queries += 1
        names.append(t.name or t.metric or f"query {queries}")
    return names


def _trigger(t: TriggerSpec, name: str, signals: Mapping[Any, str]) -> Trigger | None:
    """None when the trigger reads a signal the service does not define (reported elsewhere)."""
    if t.is_health:  # the probe reads 1 for a failure, 0 for a success
        count = int(t.threshold) if t.consecutive and t.threshold is not None else None
        return Trigger(
            name=name,
            comparison=Comparison.GREATER_THAN,
            threshold=0.5,
            duration_seconds=None if count else t.duration_seconds,
            consecutive=count,
            query=None,
        )
    query = t.query if t.metric is None else signals.get(t.metric)
    if query is None:
        return None
    return Trigger(
        name=name,
        comparison=t.comparison,
        threshold=None if t.is_relative else t.threshold,
        factor=t.factor,
        duration_seconds=t.duration_seconds,
        query=query,
    )


def guard_config(section: AutoRollback, spec: ServiceSpec) -> GuardConfig:
    """The resolved section (``section`` already overlaid on the defaults) of one service."""
    names = trigger_names(section.triggers)
    made = (_trigger(t, n, spec.signals) for t, n in zip(section.triggers, names, strict=True))
    checks = section.safety_checks
    return GuardConfig(
        is_enabled=section.enabled,
        watch_minutes=section.watch_minutes,
        interval_seconds=section.interval_seconds,
        baseline_minutes=section.baseline_minutes,
        requires_confirmation=section.require_manual_confirmation,
        confirm_timeout_seconds=section.confirm_timeout_seconds,
        on_confirm_timeout=section.on_confirm_timeout,
        max_per_day=section.max_per_day,
        triggers=tuple(t for t in made if t is not None),
        verify_previous_version_healthy=checks.verify_previous_version_healthy,
        verify_rollback_tested=checks.verify_rollback_tested,
    )
