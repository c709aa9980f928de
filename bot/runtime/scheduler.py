"""APScheduler drives the in-process ticks; the durable state they act on is in the database.

APScheduler 3 cannot share a job store between processes, so it only holds fixed-id interval
jobs here; what they pick up (rollbacks whose lease lapsed, due work) lives in our tables and is
claimed with leases, so any number of replicas tick safely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.execution.engine import Engine
from bot.runtime.due import DueWorkRunner

log = logging.getLogger(__name__)


def start_scheduler(
    engine: Engine,
    due: DueWorkRunner,
    *,
    resume_every_seconds: float,
    due_every_seconds: float = 2.0,
    refresh_groups: Callable[[], object] | None = None,
    groups_every_seconds: float = 150.0,
    guard_round: Callable[[], object] | None = None,
    guard_every_seconds: float = 5.0,
    guard_evaluate: Callable[[], object] | None = None,
    guard_evaluate_every_seconds: float = 1.0,
) -> BackgroundScheduler:
    """``refresh_groups`` (approver user groups) runs at once and then every
    ``groups_every_seconds``, keeping the membership cache warm for button presses.
    ``guard_round`` notices new releases; ``guard_evaluate`` only claims the guard evaluations
    that are due (one indexed query when none is), so each runs on its own schedule."""
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    scheduler.add_job(
        engine.resume_all,
        "interval",
        seconds=resume_every_seconds,
        id="resume-rollbacks",
        replace_existing=True,
    )
    scheduler.add_job(
        due.tick, "interval", seconds=due_every_seconds, id="due-work", replace_existing=True
    )
    if refresh_groups is not None:
        scheduler.add_job(
            refresh_groups,
            "interval",
            seconds=groups_every_seconds,
            id="refresh-user-groups",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
    if guard_round is not None:  # each guarded release has its own interval; this is the tick
        scheduler.add_job(
            guard_round,
            "interval",
            seconds=guard_every_seconds,
            id="guard-round",
            replace_existing=True,
        )
    if guard_evaluate is not None:
        scheduler.add_job(
            guard_evaluate,
            "interval",
            seconds=guard_evaluate_every_seconds,
            id="guard-evaluate",
            replace_existing=True,
        )
    scheduler.start()
    return scheduler
