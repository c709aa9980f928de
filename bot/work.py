"""The bounded pool that runs the slow half of a request after ``ack()``.

Bolt's own listener executor only has to parse, authorise, store and ack; anything that waits on the
network (Prometheus, Kubernetes, Slack posts) is handed here so acks never queue behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class BackgroundWork:
    def __init__(self, max_workers: int, on_failure: Callable[[], None] | None = None) -> None:
        self.max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="work")
        self._idle = threading.Condition()
        self._in_flight = 0
        self._on_failure = on_failure
        self.failures = 0

    def submit(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        tell: Callable[[BaseException], object] | None = None,
    ) -> Future[Any]:
        """Run ``fn(*args)`` after the ack. If it raises, ``tell`` gets the exception (to answer
        the person who is waiting for it) besides the log."""
        with self._idle:
            self._in_flight += 1
        return self._pool.submit(self._run, name, fn, tell, *args)

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
        self._pool.shutdown(wait=True, cancel_futures=False)
