"""`rollback-bot serve` as a real process: port 0, signed requests, migrate, database outages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.__main__ import main
from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester
from storage.db import current_revision, head_revision, make_engine
from tests.conftest import BOT_TOKEN, Harness, catalog_yaml, service_yaml, set_service_values

SECRET = "serve-process-secret"


@pytest.fixture
def served(
    tmp_path: Path, slack: SlackSimulator, prometheus: PrometheusSimulator
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    set_service_values(prometheus, "checkout", error_rate=0.23, latency=6.2, sessions=0.4, db_up=1)
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout"))))
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "ROLLBACK_CONFIG": str(catalog),
        "PROMETHEUS_URL": prometheus.url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    port = None
    seen = []
    for line in proc.stderr:  # the server says where it listens; read until then
        seen.append(line)
        if m := re.search(r"listening on port (\d+)", line):
            port = int(m.group(1))
            break
    assert port, "serve did not start:\n" + "".join(seen)
    yield f"http://127.0.0.1:{port}", proc
    proc.terminate()
    proc.wait(timeout=10)


def test_serve_answers_signed_assess_and_health(
    served: tuple[str, subprocess.Popen[str]], slack: SlackSimulator
) -> None:
    url, _ = served
    with httpx.Client(timeout=10) as http:
        requester = SlackRequester(url, SECRET, http, response_url=slack.response_url("cmd"))
        ack = requester.slash("assess checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
        forged = requester.post_form(
            requester.slash_body("assess checkout", user_id="U0X", channel_id="C0"), secret="x"
        )
        health = http.get(f"{url}/healthz")

    assert ack.status_code == 200 and forged.status_code == 401
    assert health.json() == {"status": "ok"}
    msg = slack.wait_for("chat.postMessage").params
    assert msg["text"].startswith("ROLLBACK RECOMMENDED: checkout — critical 45, high 15")
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_serve_without_secrets_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must both be set" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_migrate_brings_the_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("DATABASE_URL", url)

    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # again: nothing to do

    assert current_revision(make_engine(url)) == head_revision()
    assert f"database at revision {head_revision()}" in capsys.readouterr().out


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


@pytest.fixture
def harness(
    make_harness: Any, prometheus: PrometheusSimulator, tmp_path: Path, kube_sim: KubeSimulator
) -> Harness:
    set_service_values(prometheus, "checkout", error_rate=0.01, latency=0.1, sessions=30, db_up=1)
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    text = catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout")))
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    h: Harness = make_harness(
        text,
        prometheus_url=prometheus.url,
        database_url=f"sqlite:///{db_dir / 'bot.db'}",
        kube=kube,
    )
    return h


def _lose_the_database(h: Harness, tmp_path: Path) -> None:
    h.bot.deps.repo.engine.dispose()
    (tmp_path / "db").rename(tmp_path / "db-gone")  # the file can no longer be opened


def test_healthz_is_503_when_the_database_is_gone(harness: Harness, tmp_path: Path) -> None:
    _lose_the_database(harness, tmp_path)

    resp = httpx.get(f"{harness.server.url}/healthz")

    assert resp.status_code == 503
    assert resp.json() == {"status": "database unreachable"}


def test_command_while_the_database_is_gone_says_so(
    harness: Harness, tmp_path: Path, slack: SlackSimulator
) -> None:
    _lose_the_database(harness, tmp_path)

    ack = harness.slash("assess checkout")
    answer = slack.wait_for("response_url").params

    assert ack.status_code == 200
    assert answer["response_type"] == "ephemeral"
    assert "cannot reach its database" in answer["text"]
    assert "Traceback" not in answer["text"]
    assert slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize("case", ["slack unreachable", "wrong token"])
def test_serve_says_when_slack_refuses_the_token(
    case: str, tmp_path: Path, slack: SlackSimulator
) -> None:
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(catalog_yaml(service_yaml("checkout", None)))
    api_url = "http://127.0.0.1:1/api/" if case == "slack unreachable" else slack.api_url
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", "0"],
        env={
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-not-the-right-one",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "ROLLBACK_CONFIG": str(catalog),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "cannot verify SLACK_BOT_TOKEN with Slack at" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "xoxb-not-the-right-one" not in proc.stderr


def test_a_command_that_fails_before_its_ack_still_gets_an_answer(
    harness: Harness, tmp_path: Path, slack: SlackSimulator
) -> None:
    """`run` stores the rollback before it acks: with the database gone that raises inside the
    listener. Slack gets a 200 (no retry, no "failed" banner), the person an actionable line."""
    _lose_the_database(harness, tmp_path)

    ack = harness.slash("run checkout --immediate 5xx", user_id="U0ONCALL1")

    assert ack.status_code == 200
    answer = ack.json()  # said in the ack itself: nothing was recorded, nothing ran
    assert "cannot reach its database" in answer["text"]
    assert "Traceback" not in answer["text"] and "sqlite" not in answer["text"].lower()
    assert slack.calls_to("chat.postMessage") == []


def test_a_button_whose_work_fails_after_the_ack_still_gets_an_answer(
    harness: Harness, slack: SlackSimulator
) -> None:
    """Approve is acked at once and decided in the background: a failure there is told to the
    person who pressed it instead of vanishing into the log."""
    harness.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    post = slack.wait_for("chat.postMessage", lambda c: "Rollback request #1" in c.params["text"])
    (message,) = [m for m in slack.messages("C0DEPLOYS") if m["ts"] == post.response["ts"]]
    harness.wait_idle()
    button = next(
        e
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "approval_approve"
    )
    harness.bot.deps.repo.engine.dispose()
    with harness.bot.deps.repo.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE approvals RENAME TO approvals_gone")

    resp = harness.requester.click(message, button, user_id="U0APPROVER1", channel_id="C0DEPLOYS")
    answer = slack.wait_for("response_url").params

    assert resp.status_code == 200
    # a table gone under the running bot: said as what it is, with what to do
    assert "has no rollback-bot tables (no table `approvals`)" in answer["text"]
    assert "run `rollback-bot migrate`" in answer["text"]
    assert answer["response_type"] == "ephemeral"
    assert harness.bot.deps.work.failures == 1
