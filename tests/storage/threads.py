"""Run one callable from many threads at once (a barrier lines them up; no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(count: int, func: Callable[[int], T]) -> list[T | BaseException]:
    """Call `func(i)` for i in range(count) in parallel; each result or raised exception."""
    barrier = threading.Barrier(count)

    def call(index: int) -> T | BaseException:
        barrier.wait(timeout=30)
        try:
            return func(index)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))
