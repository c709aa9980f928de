"""Watches (`?watch=true` on a list): the events a client such as `kubectl rollout status` reads.

A watch answers with a stream of `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": …}` lines.
The simulator has no event log, so a watch compares snapshots of the matching objects: first
everything newer than the client's resourceVersion, then each change seen on the controllers'
tick, until `timeoutSeconds` pass, the client goes away or the simulator stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

__all__ = ["WatchRequest", "watch_events"]

JSON = Any
_DEFAULT_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class WatchRequest:
    """What a watch covers: `snapshot()` gives the matching objects by uid, as served."""

    snapshot: Callable[[], dict[str, JSON]]
    since: int  # the resourceVersion the client has seen; 0: send everything as ADDED
    timeout_seconds: float

    @staticmethod
    def parse(
        snapshot: Callable[[], dict[str, JSON]], version: str | None, timeout: str | None
    ) -> WatchRequest:
        since = int(version) if version and version.isdigit() else 0
        try:
            seconds = float(timeout) if timeout else _DEFAULT_TIMEOUT_SECONDS
        except ValueError:
            seconds = _DEFAULT_TIMEOUT_SECONDS
        return WatchRequest(snapshot, since, seconds)


def watch_events(
    request: WatchRequest,
    lock: AbstractContextManager[Any],
    refresh: Callable[[], None],
    stopping: threading.Event,
    tick_seconds: float,
) -> Iterator[JSON | None]:
    """The events of one watch; None between ticks (a chance to notice the client left).

    `refresh` runs the controllers (under `lock`) before each snapshot.
    """
    deadline = time.monotonic() + request.timeout_seconds
    with lock:
        refresh()
        seen = request.snapshot()
    for obj in seen.values():
        if _version(obj) > request.since:
            yield {"type": "ADDED" if request.since == 0 else "MODIFIED", "object": obj}
    while time.monotonic() < deadline and not stopping.wait(tick_seconds):
        yield None
        with lock:
            refresh()
            current = request.snapshot()
        for uid, obj in current.items():
            old = seen.get(uid)
            if old is None:
                yield {"type": "ADDED", "object": obj}
            elif _version(old) != _version(obj):
                yield {"type": "MODIFIED", "object": obj}
        for uid in seen.keys() - current.keys():
            yield {"type": "DELETED", "object": seen[uid]}
        seen = current


def _version(obj: JSON) -> int:
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 0
