"""How often the progress messages may be edited: Slack's ``chat.update`` is Tier 3 (about 50
calls a minute per workspace), so every edit spends a token of one shared budget, and a waiting
rollback's clocks move in steps rather than at every edit the budget would allow."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from storage.models import Rollback

# Slack's Tier 3 allows about 50 calls a minute: refill 40/min plus a burst of 10 keeps any
# 60-second window at or under 50.
EDITS_PER_MINUTE = 40.0
BURST = 10
# The same message is edited at most this often unless its state is final: a fast rollback
# then costs one edit, and the budget goes to messages whose state really moved on.
MIN_EDIT_INTERVAL_SECONDS = 2.0
# A waiting rollback's message shows its clocks in steps of this: the time alone changes what a
# person reads a few times a minute, not at every edit the pacing would allow (about 30 a
# minute per rollback with 2 s between edits), so waiting rollbacks stay inside Tier 3.
CLOCK_STEP = timedelta(seconds=15)


def shown_time(rollback: Rollback, now: datetime) -> datetime:
    """``now`` rounded down to a CLOCK_STEP after the start, while the rollback runs."""
    started = rollback.started_at or rollback.created_at
    if rollback.finished_at is not None or now <= started:
        return now
    return now - (now - started) % CLOCK_STEP


class EditBudget:
    """A token bucket: ``edits_per_minute`` refill, at most ``burst`` saved up."""

    def __init__(self, edits_per_minute: float = EDITS_PER_MINUTE, burst: int = BURST) -> None:
        self._rate = edits_per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._refilled = time.monotonic()

    def take(self, stop: threading.Event) -> None:
        """Spend one token, waiting for it (returns early once ``stop`` is set)."""
        while True:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            if stop.wait((1 - self._tokens) / self._rate):  # the editor's own pacing
                return

    def give_back(self) -> None:
        """A token taken for an edit that sent nothing."""
        self._tokens = min(self._burst, self._tokens + 1)
