"""A real Alertmanager for the integration tests (Debian package ``prometheus-alertmanager``).

- ``RealAlertmanager(webhook_url, token)`` writes a config whose one receiver posts to
  ``webhook_url`` with ``Authorization: Bearer <token>`` (``http_config.authorization`` with a
  ``credentials_file``, as deploy/alertmanager.yml does), with short group timings so a test takes
  seconds; it runs the binary on a free 127.0.0.1 port, clustering off, and removes everything on
  exit;
- ``alerting_config`` is the part of a prometheus.yml that sends alerts to it, with a rule file;
- ``require_alertmanager`` skips (or, with ``ROLLBACK_BOT_REQUIRE_SERVICES=1``, fails) the calling
  test when the binary is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.prometheus_server import REQUIRE_SERVICES_ENV, _free_port, _tail

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"


def require_alertmanager() -> str:
    """The alertmanager binary, or skip the test (fail if services are required)."""
    if not os.access(ALERTMANAGER_BIN, os.X_OK):
        reason = (
            f"Alertmanager integration test needs {ALERTMANAGER_BIN}"
            " (Debian/Ubuntu: apt-get install prometheus-alertmanager)"
        )
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_SERVICES_ENV}=1 forbids skipping")
        pytest.skip(reason)
    return ALERTMANAGER_BIN


def alertmanager_config(webhook_url: str, token_file: Path) -> str:
    """One route, one webhook receiver; grouped by alert and service, sent within a second."""
    return (
        "route:\n"
        "  receiver: rollback-bot\n"
        "  group_by: [alertname, service]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: rollback-bot\n"
        "    webhook_configs:\n"
        f"      - url: '{webhook_url}'\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f"            credentials_file: '{token_file}'\n"
    )


def alerting_config(alertmanager_target: str, rule_file: Path) -> str:
    """prometheus.yml lines that load ``rule_file`` and send its alerts to Alertmanager."""
    return (
        f"rule_files: ['{rule_file}']\n"
        "alerting:\n"
        "  alertmanagers:\n"
        "    - static_configs:\n"
        f"        - targets: ['{alertmanager_target}']\n"
    )


class RealAlertmanager:
    """``with RealAlertmanager(url, token) as am: am.target`` (``127.0.0.1:<port>``)."""

    def __init__(self, webhook_url: str, token: str, *, startup_timeout_s: float = 30.0) -> None:
        self.webhook_url = webhook_url
        self.token = token
        self.startup_timeout_s = startup_timeout_s
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def target(self) -> str:
        if self._port is None:
            raise RuntimeError("RealAlertmanager is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}"

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("RealAlertmanager is not running")
        return self._dir / "alertmanager.log"

    def __enter__(self) -> RealAlertmanager:
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
        self._dir = Path(tempfile.mkdtemp(prefix="rollback-bot-alertmanager-"))
        try:
            token_file = self._dir / "token"
            token_file.write_text(self.token, encoding="utf-8")
            config = self._dir / "alertmanager.yml"
            config.write_text(alertmanager_config(self.webhook_url, token_file), encoding="utf-8")
            for attempt in range(3):
                if self._launch(config, last_attempt=attempt == 2):
                    return
        except BaseException:
            self.stop()
            raise

    def _launch(self, config: Path, *, last_attempt: bool) -> bool:
        """Start it and wait for /-/ready; False (to retry) if the port was taken."""
        assert self._dir is not None
        self._port = _free_port()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    require_alertmanager(),
                    f"--config.file={config}",
                    f"--storage.path={self._dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self._port}",
                    "--cluster.listen-address=",  # a single instance: no gossip port
                    "--log.level=debug",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    log_tail = _tail(self.log_path)
                    self._process = None
                    if not last_attempt and "address already in use" in log_tail:
                        return False
                    raise RuntimeError(f"alertmanager exited with status {code}:\n{log_tail}")
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"alertmanager not ready after {self.startup_timeout_s:g} s:\n"
                        + _tail(self.log_path)
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
