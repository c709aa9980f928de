"""A server binary of the integration tests (Prometheus, Alertmanager) run on a free 127.0.0.1
port from a temporary directory, ready when ``/-/ready`` answers 200; on exit the process is
terminated and the directory removed. Subclasses say how to prepare the directory and what
command line to run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


class LoopbackDaemon:
    name = "daemon"  # in paths and errors

    def __init__(self, startup_timeout_s: float = 30.0) -> None:
        self.startup_timeout_s = startup_timeout_s
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def prepare(self, directory: Path) -> Path:
        """Write what the daemon needs into ``directory``; returns its config file."""
        raise NotImplementedError

    def command(self, config: Path, port: int) -> list[str]:
        raise NotImplementedError

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._dir is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._dir = Path(tempfile.mkdtemp(prefix=f"rollback-bot-{self.name}-"))
        try:
            config = self.prepare(self._dir)
            for attempt in range(3):
                if self._launch(config, last_attempt=attempt == 2):
                    return
        except BaseException:
            self.stop()
            raise

    def _launch(self, config: Path, *, last_attempt: bool) -> bool:
        """Start it and wait for /-/ready; False (to retry) if the port was taken meanwhile."""
        self._port = free_port()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(config, self._port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    log_tail = tail(self.log_path)
                    self._process = None
                    if not last_attempt and "address already in use" in log_tail:
                        return False
                    raise RuntimeError(
                        f"{self.name} exited with status {code} during startup:\n{log_tail}"
                    )
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not ready after {self.startup_timeout_s:g} s:\n"
                        + tail(self.log_path)
                    )
                time.sleep(0.05)  # polling an external process, not waiting for an outcome

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        directory, self._dir = self._dir, None
        self._port = None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
