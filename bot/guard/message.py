"""The guard's message in the service channel, edited in place at each evaluation: each trigger
with its current value and how long it has been breaching, and the watch time left."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bot.notify.blocks import escape
from bot.rollback.triggers import (
    Comparison,
    GuardConfig,
    Trigger,
    TriggerState,
    breach_text,
)
from storage.guard_models import GuardedRelease, GuardStatus


def _condition(trigger: Trigger) -> str:
    sign = ">" if trigger.comparison == Comparison.GREATER_THAN else "<"
    limit = (
        f"{trigger.factor:g}× its value before the release"
        if trigger.factor is not None
        else f"{trigger.threshold:g}"
    )
    held = (
        f"{trigger.consecutive} times in a row"
        if trigger.consecutive is not None
        else f"for {int(trigger.duration_seconds or 0)} s"
    )
    return f"{trigger.name} {sign} {limit} {held}"


def trigger_line(
    trigger: Trigger, state: TriggerState | None, baseline: float | None, now: datetime
) -> str:
    """``• error_rate > 0.01 for 120 s — now 0.153, breaching for 1m30s``."""
    head = f"• `{escape(_condition(trigger))}`"
    if state is None:
        return f"{head} — not read yet"
    if state.unknown_in_row:
        return f"{head} — :grey_question: unknown ({state.unknown_in_row} in a row)"
    if state.breach_since is not None:
        return f"{head} — :red_circle: {escape(breach_text(trigger, state, baseline, now))}"
    value = "n/a" if state.last_value is None else f"{state.last_value:.4g}"
    return f"{head} — :large_green_circle: now {value}"


def guard_text(
    release: GuardedRelease,
    config: GuardConfig,
    states: Mapping[str, TriggerState],
    now: datetime,
) -> str:
    """The whole message as mrkdwn (also the notification text)."""
    head = _headline(release, config, now)
    lines = [
        trigger_line(t, states.get(t.name), release.baseline.get(t.name), now)
        for t in config.triggers
    ]
    return "\n".join([head, *lines])


def _headline(release: GuardedRelease, config: GuardConfig, now: datetime) -> str:
    what = f"*{escape(release.service)}* {escape(release.release)} (revision {release.revision})"
    if release.status == GuardStatus.FIRED:
        why = escape(release.fired_reason or release.fired_trigger or "a trigger held")
        return f":rotating_light: Guard fired on {what}: {why}."
    if release.status == GuardStatus.ENDED:
        minutes = int(config.watch_minutes)
        return (
            f":white_check_mark: Guard ended for {what}: {minutes} min without a sustained breach."
        )
    if release.status == GuardStatus.SUPERSEDED:
        return f":fast_forward: Guard of {what} ended: a newer release is guarded now."
    left = max(0, int((release.watch_until - now).total_seconds() // 60))
    every = int(config.interval_seconds)
    return (
        f":shield: Guarding {what} for {int(config.watch_minutes)} min: {left} min left,"
        f" evaluated every {every} s. Triggers:"
    )
