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
from pathlib import Path

import pytest

from tests.loopback_daemon import LoopbackDaemon
from tests.prometheus_server import REQUIRE_SERVICES_ENV

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


class RealAlertmanager(LoopbackDaemon):
    """``with RealAlertmanager(url, token) as am: am.target`` (``127.0.0.1:<port>``)."""

    name = "alertmanager"

    def __init__(self, webhook_url: str, token: str, *, startup_timeout_s: float = 30.0) -> None:
        super().__init__(startup_timeout_s)
        self.webhook_url = webhook_url
        self.token = token

    def prepare(self, directory: Path) -> Path:
        token_file = directory / "token"
        token_file.write_text(self.token, encoding="utf-8")
        config = directory / "alertmanager.yml"
        config.write_text(alertmanager_config(self.webhook_url, token_file), encoding="utf-8")
        return config

    def command(self, config: Path, port: int) -> list[str]:
        return [
            require_alertmanager(),
            f"--config.file={config}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
            "--log.level=debug",
        ]
