"""Reads made once: the checks of one drill read one moment of the cluster, several of them the
same objects at the same time (the target, the dry run of each step); each object is fetched once
and shared, read-only. Writes are never cached. A failed read is not kept: the next one retries."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.is_done = False
        self.value: Any = None


class ReadOnce:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable, fetch: Callable[[], T]) -> T:
        """The value read for ``key``; the first caller fetches it, the others wait for it."""
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:
            if not entry.is_done:
                entry.value, entry.is_done = fetch(), True
            value: T = entry.value
            return value

    def clear(self) -> None:
        """Forget every read (after a 409 Conflict: the object changed since)."""
        with self._lock:
            self._entries.clear()
