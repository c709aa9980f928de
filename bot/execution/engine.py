"""Runs rollback plans: claims a rollback, runs its steps in order, persists every transition.

Durable by construction: the plan's steps are rows before the first one runs; a step is marked
running before it acts and finished after; the rollback is leased to one worker (several bot
processes on one PostgreSQL never run it twice) and the lease is renewed between steps and while
waiting. On start-up ``resume_all`` picks up rollbacks whose lease has lapsed: finished steps are
skipped, the step that was in flight runs again (steps are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.adapters.prometheus import PrometheusAPI
from bot.catalog.load import Catalog, Service
from bot.execution.abort_summary import abort_summary
from bot.execution.contracts import (
    Interrupted,
    LeaseLost,
    ProgressSink,
    RollbackListeners,
    worker_name,
)
from bot.execution.steps.base import Aborted, StepContext, StepFailed
from bot.execution.steps.table import STEPS
from bot.notify.blocks import escape
from bot.regions.waves import region_prometheus, run_waves, service_state
from bot.rollback.lifecycle import (
    IN_ENGINE,
    DueKind,
    RollbackStatus,
    StepOutcome,
    StepStatus,
    finished_key,
    finished_kind,
    started_key,
)
from storage.models import AuditEvent, Rollback, RollbackStep
from storage.repo.records import NewWork
from storage.repository import Repository

log = logging.getLogger(__name__)


def started_work(rollback_id: int, now: datetime) -> NewWork:
    """Stored in the same transaction that makes a rollback `running` (created so, or moved
    there from approved): the notices, pages and SLA check that follow cannot be lost."""
    return NewWork(DueKind.ROLLBACK_STARTED, started_key(rollback_id), now, {"id": rollback_id})


MANUAL_GATE = "manual_gate"  # the step kind whose Continue button the progress message shows
ABORT_POLL_SECONDS = 1.0  # how often a waiting step looks for an abort made on another replica


class Engine:
    def __init__(
        self,
        *,
        repo: Repository,
        catalog: Catalog,
        kube: KubernetesClient,
        http: HttpClient,
        prometheus: PrometheusAPI | None,
        clock: Callable[[], datetime],
        progress: ProgressSink,
        max_parallel: int = 16,
        lease_seconds: float,  # ROLLBACK_BOT_LEASE_SECONDS: no default, so none is forgotten
        worker: str | None = None,
    ) -> None:
        self.repo, self.catalog, self.kube, self.http = repo, catalog, kube, http
        self.prometheus, self.clock, self.progress = prometheus, clock, progress
        self.worker = worker or worker_name()
        self.lease = timedelta(seconds=lease_seconds)
        self.max_parallel = max_parallel
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="rollback")
        self._aborts: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: set[int] = set()
        self._stopping = threading.Event()
        self.listeners = RollbackListeners()
        # Called after a start or an end is stored: the app runs that due work at once.
        self.kick_due_work: Callable[[], None] = lambda: None

    # --- starting --------------------------------------------------------------------------

    def submit(self, rollback_id: int) -> None:
        with self._lock:
            if rollback_id in self._running:
                return
            self._running.add(rollback_id)
            self._aborts.setdefault(rollback_id, threading.Event())
        try:
            self._pool.submit(self._run_guarded, rollback_id)
        except RuntimeError:  # shutting down: the stored rollback is resumed by the next process
            log.info("rollback #%d not started here: the bot is shutting down", rollback_id)
            with self._idle:
                self._running.discard(rollback_id)
                self._idle.notify_all()

    def resume_all(self) -> list[int]:
        """Submit every rollback left running (or aborting) whose lease has lapsed."""
        found = self.repo.list_unclaimed_rollbacks(self.clock(), statuses=IN_ENGINE)
        for rollback in found:
            assert rollback.id is not None
            log.info("resuming rollback #%d of %s", rollback.id, rollback.service)
            self.submit(rollback.id)
        return [r.id for r in found if r.id is not None]

    def request_abort(self, rollback_id: int) -> None:
        """Wake a local wait at once; other replicas see the status within ABORT_POLL_SECONDS."""
        with self._lock:
            event = self._aborts.get(rollback_id)
        if event is not None:
            event.set()

    def wait_idle(self, timeout: float) -> bool:
        """No rollback running here and the progress messages show their last state."""
        deadline = time.monotonic() + timeout
        with self._idle:
            if not self._idle.wait_for(lambda: not self._running, timeout=timeout):
                return False
        return self.progress.flush(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        """Stop at the next wait or step boundary. Running rollbacks stay `running` with their
        steps as they are (never aborted by a restart); the lease is given back and the next
        process resumes them."""
        self._stopping.set()
        for event in list(self._aborts.values()):
            event.set()  # wake the waits; they see _stopping and interrupt, not abort
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- running ---------------------------------------------------------------------------

    def _run_guarded(self, rollback_id: int) -> None:
        try:
            self.run(rollback_id)
        except Exception:
            log.exception("rollback #%d: engine error", rollback_id)
        finally:
            with self._idle:
                self._running.discard(rollback_id)
                self._idle.notify_all()

    def run(self, rollback_id: int) -> None:
        if not self.repo.claim_rollback(rollback_id, self.worker, self.clock(), self.lease):
            log.debug("rollback #%d is held by another worker", rollback_id)
            return
        try:
            self._run_claimed(rollback_id)
        finally:
            self.repo.release_rollback(rollback_id, self.worker)

    def _run_claimed(self, rollback_id: int) -> None:
        rollback = self._get(rollback_id)
        service = self.catalog.target_of(rollback.service)  # a rehearsal: the staging twin
        if service is None:
            self._finish(
                rollback_id,
                RollbackStatus.FAILED,
                f"{rollback.service} is no longer in the catalog",
            )
            return
        if rollback.status not in IN_ENGINE:
            # approved rollbacks are moved to running (and their start stored) by their start
            # due work before they are handed over; anything else is not the engine's to run
            log.warning("rollback #%d is %s, not running: not run", rollback_id, rollback.status)
            return
        self.progress.changed(rollback_id)
        steps = self.repo.list_steps(rollback_id)
        run = run_waves if any(s.region for s in steps) else Engine.run_steps  # regions: waves
        outcome, error = run(self, rollback_id, service, steps)
        if outcome == StepOutcome.ABORTED or (
            outcome == StepOutcome.SUCCEEDED and self._is_abort_requested(rollback_id)
        ):  # an abort asked during the last step is said too
            self._abort(rollback_id)
        elif outcome == StepOutcome.FAILED:
            self._finish(rollback_id, RollbackStatus.FAILED, error)
        elif outcome == StepOutcome.SUCCEEDED:
            self._finish(rollback_id, RollbackStatus.SUCCEEDED, None)

    def run_steps(
        self, rollback_id: int, service: Service, steps: list[RollbackStep]
    ) -> tuple[StepOutcome, str | None]:
        """Run the steps not finished yet, in order: how the run ended, and why it failed.
        LEASE_LOST also stands for "stopping here" (another process resumes it)."""
        phase = None
        for step in steps:
            if step.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
                continue
            if self._is_abort_requested(rollback_id):
                return StepOutcome.ABORTED, None
            if self._stopping.is_set():
                log.info("rollback #%d: stopping; the next process resumes it", rollback_id)
                return StepOutcome.LEASE_LOST, None
            if step.phase != phase:
                phase = step.phase
                self._tell("phase_started", rollback_id, phase)
            outcome, error = self._run_step(rollback_id, service, step)
            if outcome != StepOutcome.SUCCEEDED:
                return outcome, f"{step.name}: {error}" if error else None
        return StepOutcome.SUCCEEDED, None

    def tell_region_started(self, rollback_id: int, region: str) -> None:
        """The listeners' optional ``region_started`` (each region's SLA clock starts here)."""
        self._tell("region_started", rollback_id, region)

    def _run_step(
        self, rollback_id: int, service: Service, step: RollbackStep
    ) -> tuple[StepOutcome, str | None]:
        """Run one step and store how it ended; the outcome, and the error when it failed."""
        assert step.id is not None
        step_id = step.id
        previous = dict(step.detail)
        self.repo.start_step(step_id, self.clock())
        self.progress.changed(rollback_id)
        ctx = self._step_context(rollback_id, service, step, previous)
        if step.kind == MANUAL_GATE and "continued_by" not in previous:
            prompt = str(previous.get("params", {}).get("prompt") or "Continue when ready")
            self.progress.gate(rollback_id, step_id, prompt)
        started = time.monotonic()
        try:
            kind = STEPS.get(step.kind)
            if kind is None:
                raise StepFailed(f"unknown step kind {step.kind!r}")
            detail = kind.run(ctx, previous.get("params", {}))
        except Exception as exc:
            return self._step_stopped(rollback_id, service, step, exc)
        detail["seconds"] = round(time.monotonic() - started, 3)
        audit = self._step_event(rollback_id, service, step, "succeeded", seconds=detail["seconds"])
        self.repo.finish_step(
            step_id, StepStatus.SUCCEEDED, self.clock(), detail=detail, audit=audit
        )
        label = f"{step.region}: {step.name}" if step.region else step.name
        self.progress.note(rollback_id, f":white_check_mark: *{label}* ({detail['seconds']:.1f} s)")
        if not self.repo.claim_rollback(rollback_id, self.worker, self.clock(), self.lease):
            log.warning(
                "rollback #%d: lease lost to another worker after %s", rollback_id, step.name
            )
            return StepOutcome.LEASE_LOST, None  # never run the next step twice
        return StepOutcome.SUCCEEDED, None

    def _step_stopped(
        self, rollback_id: int, service: Service, step: RollbackStep, exc: Exception
    ) -> tuple[StepOutcome, str | None]:
        """A step's run raised: store what that means for the step, and say what comes next."""
        assert step.id is not None
        if isinstance(exc, Aborted):
            error = f"aborted while running: {exc}" if str(exc) else "aborted while running"
            self.repo.finish_step(step.id, StepStatus.FAILED, self.clock(), error=error)
            return StepOutcome.ABORTED, error
        if isinstance(exc, LeaseLost):
            log.warning(
                "rollback #%d: lease lost to another worker during %s", rollback_id, step.name
            )
            return StepOutcome.LEASE_LOST, None
        if isinstance(exc, Interrupted):
            log.info("rollback #%d: %s interrupted by shutdown", rollback_id, step.name)
            return StepOutcome.LEASE_LOST, None  # stop here; the step stays running, resumed
        if isinstance(exc, StepFailed):
            audit = self._step_event(rollback_id, service, step, "failed", error=str(exc))
            self.repo.finish_step(
                step.id, StepStatus.FAILED, self.clock(), error=str(exc), audit=audit
            )
            label = f"{step.region}: {step.name}" if step.region else step.name
            self.progress.note(rollback_id, f":x: *{label}* failed: {escape(str(exc))}")
            return StepOutcome.FAILED, str(exc)
        log.error("rollback #%d step %s raised", rollback_id, step.name, exc_info=exc)
        error = f"internal error ({type(exc).__name__}); the bot's log has the details"
        self.repo.finish_step(step.id, StepStatus.FAILED, self.clock(), error=error)
        return StepOutcome.FAILED, error

    def _step_context(
        self, rollback_id: int, service: Service, step: RollbackStep, previous: dict[str, Any]
    ) -> StepContext:
        """What a step's run gets: the clients, and waits, notes and detail tied to this step."""
        step_id = step.id
        assert step_id is not None
        return StepContext(
            rollback_id=rollback_id,
            position=step.position,
            service=service,
            target=KubeTarget(service.context, service.namespace),
            kube=self.kube,
            http=self.http,
            prometheus=region_prometheus(self.prometheus, self.http, service),
            clock=self.clock,
            wait=lambda seconds: self._wait(rollback_id, seconds),
            remember=lambda detail: self._remember(step_id, detail),
            previous=previous,
            timeout_seconds=float(previous.get("timeout_seconds", 120)),
            note=lambda text: self.progress.note(rollback_id, text),
            fresh_detail=lambda: self._step_detail(step_id),
        )

    def _step_event(
        self, rollback_id: int, service: Service, step: RollbackStep, outcome: str, **detail: Any
    ) -> AuditEvent:
        """The audit event stored with a step's end (same transaction)."""
        return AuditEvent(
            kind=f"step.{outcome}",
            created_at=self.clock(),
            service=service.name,
            rollback_id=rollback_id,
            detail={"step": step.name, "phase": step.phase, "kind": step.kind, **detail},
        )

    def _wait(self, rollback_id: int, seconds: float) -> None:
        """Sleep that an abort interrupts (local at once, remote within ABORT_POLL_SECONDS)."""
        event = self._aborts.setdefault(rollback_id, threading.Event())
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            poll = min(ABORT_POLL_SECONDS, self.lease.total_seconds() / 3)
            if event.wait(min(max(remaining, 0.0), poll)) or self._is_abort_requested(rollback_id):
                if self._stopping.is_set() and not self._is_abort_requested(rollback_id):
                    raise Interrupted()
                raise Aborted()
            if not self.repo.claim_rollback(rollback_id, self.worker, self.clock(), self.lease):
                raise LeaseLost()
            self.progress.changed(rollback_id)
            if remaining <= poll:
                return

    def _remember(self, step_id: int, detail: Mapping[str, Any]) -> None:
        self.repo.record_step_detail(step_id, detail)

    def _is_abort_requested(self, rollback_id: int) -> bool:
        return self._get(rollback_id).status == RollbackStatus.ABORTING

    def _step_detail(self, step_id: int) -> dict[str, Any]:
        step = self.repo.get_step(step_id)
        return dict(step.detail) if step is not None else {}

    def _abort(self, rollback_id: int) -> None:
        now = self.clock()
        steps = self.repo.list_steps(rollback_id)
        for s in steps:
            if s.status in (StepStatus.PENDING, StepStatus.RUNNING) and s.id is not None:
                self.repo.finish_step(s.id, StepStatus.SKIPPED, now, error="not run: aborted")
        aborted = self._get(rollback_id)  # its error says who aborted it and why
        self._finish(rollback_id, RollbackStatus.ABORTED, aborted.error)
        service = self.catalog.target_of(aborted.service)
        state = None
        if service is not None:  # a multi-region one: each region, as the steps left it
            state = service_state(self.kube, service, self.repo.list_steps(rollback_id))
        self.progress.note(rollback_id, abort_summary(steps, state))

    def _finish(self, rollback_id: int, status: RollbackStatus, error: str | None) -> None:
        # What follows the end (notices, pages, the review, metrics) is due work stored with
        # the final status: a crash right after it cannot lose them.
        now, rollback = self.clock(), self._get(rollback_id)
        finished = NewWork(
            finished_kind(rollback.kind), finished_key(rollback_id), now, {"id": rollback_id}
        )
        event = AuditEvent(
            kind=f"rollback.{status}",
            created_at=now,
            service=rollback.service,
            rollback_id=rollback_id,
            detail={"error": error} if error else {},
        )
        self.repo.set_rollback_status(
            rollback_id, status, now, error=error, schedule=[finished], audit=event
        )
        self.progress.changed(rollback_id, is_final=True)
        with self._lock:
            self._aborts.pop(rollback_id, None)
        self.kick_due_work()

    def tell_started(self, rollback_id: int) -> None:
        """Run the listeners' ``rollback_started`` (from the durable STARTED due work)."""
        self._tell("rollback_started", rollback_id)

    def tell_finished(self, rollback_id: int) -> None:
        """Run the listeners' ``rollback_finished`` (from the durable FINISHED due work)."""
        self._tell("rollback_finished", rollback_id)

    def _tell(self, event: str, rollback_id: int, *args: Any) -> None:
        self.listeners.tell(event, self._get(rollback_id), *args)

    def _get(self, rollback_id: int) -> Rollback:
        rollback = self.repo.get_rollback(rollback_id)
        if rollback is None:
            raise LookupError(f"rollback #{rollback_id} not found")
        return rollback
