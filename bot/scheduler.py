"""APScheduler drives the in-process ticks; the durable state they act on is in the database.

APScheduler 3 cannot share a job store between processes, so it only holds fixed-id interval
jobs here; what they pick up (rollbacks whose lease lapsed, due work) lives in our tables and is
claimed with leases, so any number of replicas tick safely.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from bot.due import DueWorkRunner
from bot.engine import Engine

log = logging.getLogger(__name__)


def start_scheduler(
    engine: Engine,
    due: DueWorkRunner,
    *,
    resume_every_seconds: float,
    due_every_seconds: float = 2.0,
) -> BackgroundScheduler:
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
    scheduler.start()
    return scheduler
