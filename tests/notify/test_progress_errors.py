"""The progress message when Slack refuses it for good: given up once, never retried for ever;
and what the editor keeps per rollback is forgotten once the final state is shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.adapters.slack.web import slack_web_client
from bot.catalog.load import parse_catalog
from bot.execution.steps.table import plan_rows
from bot.notify.progress import SlackProgress
from bot.sim.slack_api import SlackSimulator
from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.conftest import BOT_TOKEN, catalog_yaml, service_yaml

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
NAMES = [f"svc{i}" for i in range(4)]


@dataclass
class Setup:
    repo: Repository
    progress: SlackProgress
    slack: SlackSimulator

    def new_rollback(self, service: str) -> int:
        catalog = self.progress.catalog
        rollback = self.repo.create_rollback(
            service=service, kind="immediate", strategy="undo", requested_by="U1",
            reason="", target_revision=None, assessment_id=None, channel_id="C0DEPLOYS",
            status="running", now=NOW, steps=plan_rows(catalog.services[service].plan()),
        )  # fmt: skip
        assert rollback.id is not None
        return rollback.id

    def step_done(self, rollback_id: int) -> None:
        """Finish the next pending step (the message then reads differently)."""
        step = next(s for s in self.repo.list_steps(rollback_id) if s.status == "pending")
        assert step.id is not None
        self.repo.start_step(step.id, NOW)
        self.repo.finish_step(step.id, "succeeded", NOW)

    def finish(self, rollback_id: int) -> None:
        self.repo.set_rollback_status(rollback_id, "succeeded", NOW)
        self.progress.changed(rollback_id, is_final=True)


@pytest.fixture
def setup(tmp_path: Path, slack: SlackSimulator) -> Iterator[Setup]:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    catalog = parse_catalog(catalog_yaml(*(service_yaml(n, None) for n in NAMES)))
    client = slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)
    progress = SlackProgress(
        client, Repository(engine), catalog, lambda: NOW, edits_per_minute=600, burst=10
    )
    yield Setup(Repository(engine), progress, slack)
    engine.dispose()


def given_up_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not trying again" in r.getMessage()]


def test_an_edit_slack_refuses_for_good_is_given_up_not_retried(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.notify.progress")
    rollback_id = setup.new_rollback("svc0")
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)
    assert len(setup.slack.calls_to("chat.postMessage")) == 1

    setup.slack.inject_error("chat.update", "message_not_found")  # someone deleted it
    setup.step_done(rollback_id)
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)  # not dirty any more: nothing left to retry
    assert len(setup.slack.calls_to("chat.update")) == 1  # a retry would have gone through

    setup.step_done(rollback_id)  # later changes of the lost message are not sent either
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)
    assert len(setup.slack.calls_to("chat.update")) == 1
    assert setup.progress.tracked() == {rollback_id}  # until it ends

    setup.finish(rollback_id)
    assert setup.progress.flush(timeout=10)
    assert len(setup.slack.calls_to("chat.update")) == 1
    assert setup.progress.tracked() == set()
    (logged,) = given_up_logs(caplog)  # said once, with Slack's reason
    assert f"rollback #{rollback_id}" in logged and "message_not_found" in logged


def test_a_first_post_into_a_missing_channel_is_given_up_not_retried(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.notify.progress")
    rollback_id = setup.new_rollback("svc1")
    setup.slack.inject_error("chat.postMessage", "channel_not_found")
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)
    setup.progress.note(rollback_id, "a detail for the thread")  # no message, no thread
    setup.step_done(rollback_id)
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)

    assert len(setup.slack.calls_to("chat.postMessage")) == 1  # a retry would have posted
    rollback = setup.repo.get_rollback(rollback_id)
    assert rollback is not None and rollback.progress_ts is None
    (logged,) = given_up_logs(caplog)
    assert "channel_not_found" in logged

    setup.finish(rollback_id)
    assert setup.progress.flush(timeout=10)
    assert setup.progress.tracked() == set()


def test_a_passing_error_is_still_retried_until_the_final_state_lands(setup: Setup) -> None:
    rollback_id = setup.new_rollback("svc2")
    setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)

    setup.slack.inject_error("chat.update", "internal_error")  # Slack's own trouble: may pass
    setup.finish(rollback_id)
    assert setup.progress.flush(timeout=10)

    assert len(setup.slack.calls_to("chat.update")) == 2
    (message,) = setup.slack.messages("C0DEPLOYS")
    assert "SUCCEEDED" in message["text"]
    assert setup.progress.tracked() == set()


def test_nothing_is_kept_about_rollbacks_whose_final_state_is_shown(setup: Setup) -> None:
    ids = [setup.new_rollback(name) for name in NAMES]
    for rollback_id in ids:
        setup.progress.changed(rollback_id)
    assert setup.progress.flush(timeout=10)
    assert setup.progress.tracked() == set(ids)  # running: what each message reads is kept

    for rollback_id in ids[:3]:
        setup.finish(rollback_id)
    assert setup.progress.flush(timeout=10)

    assert setup.progress.tracked() == {ids[3]}
    finals = [m["text"] for m in setup.slack.messages("C0DEPLOYS") if "SUCCEEDED" in m["text"]]
    assert len(finals) == 3
