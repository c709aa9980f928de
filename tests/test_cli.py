"""The real command line with bad environment values: one line naming the variable and what is
allowed, exit code 2, never a traceback (issue 12, item 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ALLOWED
from tests.conftest import catalog_yaml, service_yaml

# every variable README's "Configuration" table documents, with a value that cannot work
BAD_VALUES = {
    "SLACK_BOT_TOKEN": "hunter2-not-a-token",
    "SLACK_SIGNING_SECRET": "two words",
    "SLACK_APP_TOKEN": "xoxb-not-an-app-token",
    "SLACK_API_URL": "slack.com/api",
    "DATABASE_URL": "rollback.db",
    "ROLLBACK_CONFIG": "/nonexistent/rollback.yaml",
    "PROMETHEUS_URL": "localhost:9090",
    "KUBECONFIG": "/nonexistent/kubeconfig",
    "TWILIO_ACCOUNT_SID": "SK123",
    "TWILIO_AUTH_TOKEN": "with a space",
    "TWILIO_FROM_NUMBER": "555-0100",
    "TWILIO_API_URL": "ftp://api.twilio.com",
    "PUBLIC_URL": "bot.example.com",
    "ALERTMANAGER_TOKEN": "two words",
    "ALERTMANAGER_SERVICE_LABEL": "1service",
    "PORT": "abc",
    "ROLLBACK_BOT_HTTP_THREADS": "0",
    "ROLLBACK_BOT_WORKERS": "four",
    "ROLLBACK_BOT_QUERY_TIMEOUT_SECONDS": "-1",
    "ROLLBACK_BOT_LOG_LEVEL": "verbose",
    "ROLLBACK_BOT_LEASE_SECONDS": "inf",
    "ROLLBACK_BOT_TICK_SECONDS": "2s",
}
SECRETS = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "TWILIO_AUTH_TOKEN",
    "ALERTMANAGER_TOKEN",
}


def documented_variables() -> set[str]:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("Environment (secrets and endpoints):", 1)[1].split("\n\n", 2)[1]
    rows = [row.split("|")[1] for row in table.splitlines()[2:]]  # the first column
    return {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row)}


def test_every_documented_variable_is_tried() -> None:
    assert documented_variables() == set(BAD_VALUES)
    assert {name.lower() for name in BAD_VALUES} == set(ALLOWED)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in BAD_VALUES}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "rollback.yaml"
    path.write_text(catalog_yaml(service_yaml("checkout", None)))
    return path


@pytest.mark.parametrize(("name", "value"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_a_bad_value_is_one_line_and_exit_2(
    name: str, value: str, catalog: Path, tmp_path: Path
) -> None:
    env = {"ROLLBACK_CONFIG": str(catalog), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    proc = run_cli("check-config", env={**env, name: value})

    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"rollback-bot: {name}")
    assert "is not allowed: " in line
    if name in SECRETS:
        assert value not in line  # a wrong secret may be a right one pasted elsewhere
    else:
        assert repr(value) in line


def test_several_bad_values_are_all_named(catalog: Path) -> None:
    proc = run_cli(
        "check-config", env={"PORT": "abc", "ROLLBACK_BOT_LOG_LEVEL": "verbose", "KUBECONFIG": ""}
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "rollback-bot: PORT='abc' is not allowed: a whole number from 0 to 65535",
        "rollback-bot: ROLLBACK_BOT_LOG_LEVEL='verbose' is not allowed: one of DEBUG, INFO,"
        " WARNING, ERROR, CRITICAL (any case)",
    ]  # an empty KUBECONFIG= means unset


@pytest.mark.parametrize("level", ["debug", "Warning", "ERROR"])
def test_log_levels_in_any_case(level: str, catalog: Path) -> None:
    proc = run_cli("check-config", str(catalog), env={"ROLLBACK_BOT_LOG_LEVEL": level})
    assert proc.returncode == 0, proc.stderr


def test_help_names_no_file_users_lack_and_lists_the_environment() -> None:
    proc = run_cli("--help", env={})
    assert proc.returncode == 0
    assert "CONTRACT" not in proc.stdout
    for name in BAD_VALUES:
        assert name in proc.stdout
