"""What the engine tells the outside world (the Slack progress reporter, the listeners that send
notices, pages and reviews) and the two ways a run stops without ending the rollback."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Protocol

from storage.models import Rollback

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """What the engine tells the outside world; the Slack progress reporter implements it."""

    def changed(self, rollback_id: int, *, is_final: bool = False) -> None: ...

    def note(self, rollback_id: int, text: str) -> None: ...

    def gate(self, rollback_id: int, step_id: int, prompt: str) -> None: ...

    def flush(self, timeout: float) -> bool: ...


class RollbackListener(Protocol):
    """Told (through durable due work) when a rollback starts and when it ends; must be quick and
    idempotent (a crash right after the start can tell it twice). Notifications, paging and
    reviews listen here."""

    def rollback_started(self, rollback: Rollback) -> None: ...

    def rollback_finished(self, rollback: Rollback) -> None: ...


class PhaseListener(Protocol):
    """Optional, beside RollbackListener: told when a phase's first step is about to run (also
    again after a resume). Same rules: quick and idempotent."""

    def phase_started(self, rollback: Rollback, phase: str) -> None: ...


class Interrupted(Exception):
    """This process is stopping: leave the rollback running for the next process to resume."""


class LeaseLost(Exception):
    """Another worker took this rollback over (we stalled past the lease): stop touching it."""


class RollbackListeners(list[RollbackListener]):
    """The engine's listeners (workflows append theirs at start-up)."""

    def tell(self, event: str, rollback: Rollback, *args: Any) -> None:
        """Notify listeners (those that have the event: phase_started is optional); one failing
        never stops the rollback or the other listeners."""
        for listener in self:
            handler = getattr(listener, event, None)
            if handler is None:
                continue
            try:
                handler(rollback, *args)
            except Exception:
                log.exception("rollback #%s: %s listener %r failed", rollback.id, event, listener)


def worker_name() -> str:
    """This process among the replicas (leases and claims are held in its name)."""
    return f"{socket.gethostname()}:{os.getpid()}"
