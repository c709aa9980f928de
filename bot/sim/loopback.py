"""What every simulator shares: ``with`` around ``start()``/``stop()``, and its loopback URL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from http.server import HTTPServer
from types import TracebackType
from typing import Self


class LoopbackSimulator(ABC):
    """A simulator serving HTTP on 127.0.0.1 (port 0: the system picks a free port)."""

    _server: HTTPServer | None

    @abstractmethod
    def start(self) -> Self:
        """Start serving; returns self."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and join the server's threads."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (only while started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"
