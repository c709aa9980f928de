"""The bot's own INFO lines for the events a person on call wants in the log: a rollback started,
and how it ended. Routine work (ticks, retries, library calls) stays at DEBUG."""

from __future__ import annotations

import logging

from bot.rollback.lifecycle import RollbackStatus
from storage.models import Rollback

log = logging.getLogger("rollback-bot.events")


def _seconds(rollback: Rollback) -> str:
    if rollback.started_at is None or rollback.finished_at is None:
        return ""
    return f" after {(rollback.finished_at - rollback.started_at).total_seconds():.0f} s"


class RollbackEventLog:
    """A rollback listener (the engine tells it through durable due work, once per event)."""

    def rollback_started(self, rollback: Rollback) -> None:
        log.info(
            "rollback #%s of %s started (%s, requested by %s)",
            rollback.id,
            rollback.service,
            rollback.kind,
            rollback.requested_by,
        )

    def rollback_finished(self, rollback: Rollback) -> None:
        error = f": {rollback.error}" if rollback.error else ""
        level = logging.INFO if rollback.status == RollbackStatus.SUCCEEDED else logging.WARNING
        log.log(
            level,
            "rollback #%s of %s %s%s%s",
            rollback.id,
            rollback.service,
            rollback.status,
            _seconds(rollback),
            error,
        )
