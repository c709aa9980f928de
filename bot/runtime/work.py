"""The bounded pools that run the slow half of a request after ``ack()``.

Bolt's own listener executor only has to parse, authorise, store and ack; anything that waits on the
network (Prometheus, Kubernetes, Slack posts) is handed here so acks never queue behind it.

Two lanes: votes, aborts, acknowledgements, starts and due work run in the ``urgent`` lane;
assessments and dry runs in the ``bulk`` lane, which anyone in the workspace can fill. So a burst
of assessments never delays an approver's vote, and :class:`AssessmentSlots` keeps one person
from filling the bulk lane alone.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Lane = Literal["urgent", "bulk"]
ASSESSMENTS_PER_USER = 3
# An ask this soon after an assessment of the same service was posted is answered by it, as one
# made while it ran is: its readings are no older than those a running assessment hands a late
# asker (five probes of up to ~5 s each), and in an incident ten people asking at once would
# otherwise post ten near-identical assessments, each with its buttons, one after another.
JUST_ASSESSED_SECONDS = 5.0


@dataclass(frozen=True)
class Assessed:
    """The latest assessment of a service that was posted, for :meth:`AssessmentSlots.claim`."""

    assessment_id: int
    asked_by: str
    channel: str
    decision: str
    regions: tuple[str, ...]  # the regions it read (`assess --region`); () for all
    at: float  # on the slots' clock


class AssessmentSlots:
    """Assessments running now: at most ``per_user`` per person, one per service (a second ask
    while one runs is answered by the running one instead of querying everything again, and so
    is one made within ``just_assessed_seconds`` after it was posted)."""

    def __init__(
        self,
        per_user: int = ASSESSMENTS_PER_USER,
        *,
        just_assessed_seconds: float = JUST_ASSESSED_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.just_assessed_seconds = just_assessed_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_user: Counter[str] = Counter()
        self._by_service: dict[str, tuple[str, float]] = {}  # service → (who asked, since)
        self._posted: dict[str, Assessed] = {}  # service → its latest assessment, when posted
        self._changes: Counter[str] = Counter()  # service → rollbacks started or ended

    def claim(
        self,
        user: str,
        service: str,
        channel: str,
        *,
        regions: tuple[str, ...] = (),
        may_reuse: bool = True,
    ) -> str | None:
        """None when the assessment may run (release it when done), else what to answer.
        ``may_reuse=False``: only a running assessment answers (**Assess again** asks for new
        readings because the release changed)."""
        with self._lock:
            running = self._by_service.get(service)
            if running is not None:
                asker, since = running
                age = max(0, int(self._clock() - since))
                return (
                    f":hourglass_flowing_sand: An assessment of *{service}* is already running"
                    f" (asked by <@{asker}> {age} s ago); its result will be posted in"
                    f" <#{channel}> in a moment. Nothing new was started."
                )
            if may_reuse and (just := self._just_posted(service, channel, regions)):
                return just
            if self._by_user[user] >= self.per_user:
                return (
                    f":no_entry: You have {self._by_user[user]} assessments running; wait for one"
                    " to finish before asking for another."
                )
            self._by_user[user] += 1
            self._by_service[service] = (user, self._clock())
            return None

    def _just_posted(self, service: str, channel: str, regions: tuple[str, ...]) -> str | None:
        """The answer from the service's latest assessment, when it was posted moments ago for
        the same regions in ``channel`` (where the asker reads it); else None."""
        posted = self._posted.get(service)
        if posted is None or (posted.regions, posted.channel) != (regions, channel):
            return None
        age = self._clock() - posted.at
        if not 0 <= age < self.just_assessed_seconds:
            return None
        wait = max(1, math.ceil(self.just_assessed_seconds - age))
        who = f"asked by <@{posted.asked_by}>" if posted.asked_by else "for alerts"
        return (
            f":information_source: *{service}* was assessed {int(age)} s ago"
            f" (#{posted.assessment_id}, {posted.decision}, {who}); the result is in"
            f" <#{posted.channel}>. Its readings are no older than a running assessment's"
            f" would be, so nothing new was started; ask again in {wait} s for new ones."
        )

    def release(self, user: str, service: str) -> None:
        with self._lock:
            self._by_user[user] -= 1
            if self._by_user[user] <= 0:
                del self._by_user[user]
            self._by_service.pop(service, None)

    def posted(
        self,
        service: str,
        assessment_id: int,
        *,
        asked_by: str,
        channel: str,
        decision: str,
        regions: tuple[str, ...] = (),
        changes: int,
    ) -> None:
        """An assessment of ``service`` was posted in ``channel``: it answers asks for a while,
        unless the service changed since it began reading (``changes``, see :meth:`changes`)."""
        at = self._clock()
        with self._lock:
            if changes != self._changes[service]:
                return  # a rollback started or ended while it read: its readings are before
            self._posted[service] = Assessed(
                assessment_id, asked_by, channel, decision, regions, at
            )

    def changes(self, service: str) -> int:
        """How many times ``service`` changed so far: read before an assessment's readings."""
        with self._lock:
            return self._changes[service]

    def forget(self, service: str) -> None:
        """The service changed (a rollback started or ended): the next ask assesses anew."""
        with self._lock:
            self._changes[service] += 1
            self._posted.pop(service, None)


class BackgroundWork:
    def __init__(self, max_workers: int, on_failure: Callable[[], None] | None = None) -> None:
        self.max_workers = max_workers  # per lane
        self._pools: dict[Lane, ThreadPoolExecutor] = {
            "urgent": ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="work"),
            "bulk": ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bulk"),
        }
        self._idle = threading.Condition()
        self._in_flight = 0
        self._on_failure = on_failure
        self.failures = 0
        self.assessments = AssessmentSlots()

    def submit(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        tell: Callable[[BaseException], object] | None = None,
        lane: Lane = "urgent",
    ) -> Future[Any]:
        """Run ``fn(*args)`` after the ack, in ``lane``. If it raises, ``tell`` gets the
        exception (to answer the person who is waiting for it) besides the log."""
        with self._idle:
            self._in_flight += 1
        try:
            return self._pools[lane].submit(self._run, name, fn, tell, *args)
        except RuntimeError:  # shut down: nothing will run it
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
            raise

    def _run(
        self,
        name: str,
        fn: Callable[..., Any],
        tell: Callable[[BaseException], object] | None,
        *args: Any,
    ) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            log.exception("background work %s failed", name)
            with self._idle:
                self.failures += 1
            if self._on_failure is not None:
                self._on_failure()
            if tell is not None:
                try:
                    tell(exc)
                except Exception:
                    log.warning("could not tell anyone that %s failed", name)
            return None
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in flight (console, tests); False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=False)
