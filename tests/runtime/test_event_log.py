"""The bot's own INFO lines are the events a person on call wants: a rollback's start and end."""

from __future__ import annotations

import io
import logging

import pytest

from bot.console import console_session
from bot.runtime.event_log import RollbackEventLog
from bot.settings import Settings


def test_a_rollback_is_logged_once_at_its_start_and_end(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    with console_session(Settings(), is_demo=True, out=out) as session:
        session.bot.deps.engine.listeners.append(RollbackEventLog())
        with caplog.at_level(logging.DEBUG):
            session.handle("/rollback run checkout --immediate 5xx storm")
    events = [r for r in caplog.records if r.name == "rollback-bot.events"]
    started, finished = events
    assert started.levelname == finished.levelname == "INFO"
    assert started.getMessage() == (
        "rollback #1 of checkout started (immediate, requested by U0ONCALL1)"
    )
    assert finished.getMessage().startswith("rollback #1 of checkout succeeded after ")
    # what a person reads at INFO: no routine work (due-work retries, job runs) among it
    chatter = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith(("bot.runtime.due", "apscheduler"))
    ]
    assert chatter == []
