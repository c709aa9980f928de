"""Durable due work: items in the ``due_work`` table run once their time has come.

Features register a handler per ``kind`` (scheduled rollback windows, escalation steps, incident
channel updates, SLA checks, review reminders) and schedule items with a unique ``key``, so
scheduling twice is harmless. ``tick()`` claims what is due with a lease (PostgreSQL replicas use
``FOR UPDATE SKIP LOCKED``) and runs the handlers; APScheduler calls it every few seconds and tests
call it directly with an injected clock. A handler that raises is retried with back-off; after
``max_attempts`` the item is marked failed and the error logged. A handler may also ask to run
again later (``RetryLater``, e.g. Slack answered 429): that is bounded too, by ``max_waits``.
A replica that dies holding an item loses its lease and another replica picks the item up
again: handlers are idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from storage.models import DueWork
from storage.repo.records import NewWork
from storage.repository import Repository

log = logging.getLogger(__name__)

WorkHandler = Callable[[DueWork], None]
GiveUpHandler = Callable[[DueWork, str], None]  # the item and its last error


class RetryLater(Exception):
    """Raised by a handler that cannot finish yet; the item runs again after ``seconds``."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class DueWorkRunner:
    """``lease_seconds`` has no default on purpose: it is ``ROLLBACK_BOT_LEASE_SECONDS``, how
    soon another replica takes over the work of one that died (a hard-coded 120 s here once
    delayed the pages of a crashed process by two minutes). The heartbeat renews the leases of
    running items every third of it, so a short lease never makes a slow handler run twice."""

    def __init__(
        self,
        repo: Repository,
        clock: Callable[[], datetime],
        worker: str,
        *,
        lease_seconds: float,
        batch: int = 20,
        max_attempts: int = 5,
        max_waits: int = 100,
        parallel: int = 4,
    ) -> None:
        self.repo, self.clock, self.worker = repo, clock, worker
        self.lease = timedelta(seconds=lease_seconds)
        self.batch, self.max_attempts, self.max_waits = batch, max_attempts, max_waits
        self.handlers: dict[str, WorkHandler] = {}
        self.give_up_handlers: dict[str, GiveUpHandler] = {}
        self.parallel = parallel
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="due")
        # A handler may take longer than the lease (Slack Retry-After sleeps, a re-assessment):
        # a heartbeat renews the claims of running items so no other replica runs them too.
        self._running: set[int] = set()
        self._running_lock = threading.Lock()
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew_loop, name="due-lease", daemon=True)
        self._heartbeat.start()

    def register(
        self, kind: str, handler: WorkHandler, on_give_up: GiveUpHandler | None = None
    ) -> None:
        """``on_give_up`` runs once when an item fails for good (say so where people look)."""
        if kind in self.handlers:
            raise ValueError(f"a handler for due work {kind!r} is already registered")
        self.handlers[kind] = handler
        if on_give_up is not None:
            self.give_up_handlers[kind] = on_give_up

    def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Mapping[str, Any] | None = None
    ) -> bool:
        """Store the item (once per key); False if the key was already scheduled. A kind no
        handler is registered for yet waits until a replica that has one claims it."""
        return self.repo.schedule_work(kind, key, due_at, self.clock(), payload)

    def schedule_all(self, works: Sequence[NewWork]) -> int:
        """Store several items in one transaction (each once per key); how many were new."""
        return self.repo.schedule_works(works, self.clock())

    def cancel(self, key: str) -> bool:
        return self.repo.cancel_work(key, self.clock())

    def tick(self) -> int:
        """Run every item that is due now; returns how many ran (whatever their outcome)."""
        if not self.handlers:
            return 0
        ran = 0
        while True:
            items = self.repo.claim_due_work(
                self.worker, self.clock(), self.lease, limit=self.batch, kinds=self.handlers
            )
            if not items:
                return ran
            try:
                for _ in self._pool.map(self._run, items):
                    pass
            except (RuntimeError, CancelledError):
                # shutting down: the claims lapse and another process runs the items
                log.info("due work: shutting down with %d item(s) claimed", len(items))
                return ran
            ran += len(items)
            if len(items) < self.batch:
                return ran

    def _renew_loop(self) -> None:
        period = max(0.05, self.lease.total_seconds() / 3)
        while not self._stopped.wait(period):
            with self._running_lock:
                running = set(self._running)
            if not running:
                continue
            try:
                self.repo.renew_work(running, self.worker, self.clock() + self.lease)
            except Exception:  # the database is away: the next round tries again
                log.exception("due work: could not renew the leases of %s", sorted(running))

    def _run(self, item: DueWork) -> None:
        assert item.id is not None
        with self._running_lock:
            self._running.add(item.id)
        try:
            self._run_claimed(item)
        finally:
            with self._running_lock:
                self._running.discard(item.id)

    def _run_claimed(self, item: DueWork) -> None:
        assert item.id is not None
        try:
            self.handlers[item.kind](item)
        except RetryLater as exc:
            if item.waits + 1 >= self.max_waits:  # waiting for something that never comes
                log.error("due work %s gave up after %d waits: %s", item.key, item.waits + 1, exc)
                if self.repo.fail_work(item.id, self.worker, str(exc), self.clock()):
                    self._give_up(item, str(exc))
                return
            retry_at = self.clock() + timedelta(seconds=exc.seconds)
            log.debug("due work %s: %s; again at %s", item.key, exc, retry_at.isoformat())
            self.repo.fail_work(
                item.id, self.worker, str(exc), self.clock(), retry_at=retry_at, is_wait=True
            )
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if item.attempts >= self.max_attempts:
                log.exception("due work %s failed for good after %d tries", item.key, item.attempts)
                if self.repo.fail_work(item.id, self.worker, error, self.clock()):
                    self._give_up(item, error)
                return
            backoff = timedelta(seconds=min(300, 5 * 2 ** (item.attempts - 1)))
            log.exception("due work %s failed (try %d); retrying", item.key, item.attempts)
            self.repo.fail_work(
                item.id, self.worker, error, self.clock(), retry_at=self.clock() + backoff
            )
            return
        self.repo.complete_work(item.id, self.worker, self.clock())

    def _give_up(self, item: DueWork, error: str) -> None:
        handler = self.give_up_handlers.get(item.kind)
        if handler is None:
            return
        try:
            handler(item, error)
        except Exception:
            log.exception("due work %s: the give-up handler failed too", item.key)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel what has not started; ``wait`` for what has (never from a handler)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._stopped.set()
