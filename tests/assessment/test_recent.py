"""The one rule for a service's recent assessment (a planned request's basis, the reason of an
immediate rollback typed without one): the newest, finished, started less than an hour ago."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.assessment.recent import RECENT_ASSESSMENT, recent_assessment
from storage.db import make_engine, migrate
from storage.repository import Repository

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    engine = make_engine(f"sqlite:///{tmp_path / 'recent.db'}")
    migrate(engine)
    try:
        yield Repository(engine)
    finally:
        engine.dispose()


def done(repo: Repository, started: datetime, finished: datetime, service: str = "web") -> int:
    assessment_id = repo.create_assessment(service, "U0ONCALL1", "C0DEPLOYS", started)
    repo.complete_assessment(
        assessment_id,
        decision="MONITOR",
        critical=0,
        high=0,
        medium=0,
        total=0,
        inputs={},
        result={},
        now=finished,
    )
    return assessment_id


def test_the_newest_finished_assessment_of_the_last_hour_is_recent(repo: Repository) -> None:
    assert recent_assessment(repo, "web", NOW) is None
    first = done(repo, NOW - timedelta(minutes=50), NOW - timedelta(minutes=49))
    second = done(repo, NOW - timedelta(minutes=10), NOW - timedelta(minutes=9))
    found = recent_assessment(repo, "web", NOW)
    assert found is not None and found.id == second != first
    assert recent_assessment(repo, "api", NOW) is None  # another service's is not


def test_its_age_counts_from_its_start_and_an_hour_is_too_old(repo: Repository) -> None:
    started = NOW - RECENT_ASSESSMENT
    done(repo, started, started + timedelta(minutes=2))  # finished 58 minutes ago
    assert recent_assessment(repo, "web", NOW) is None
    assert recent_assessment(repo, "web", NOW - timedelta(seconds=1)) is not None


@pytest.mark.parametrize("newer", ["failed", "running"])
def test_a_newer_assessment_that_failed_or_still_runs_hides_an_older_one(
    repo: Repository, newer: str
) -> None:
    done(repo, NOW - timedelta(minutes=20), NOW - timedelta(minutes=19))
    pending = repo.create_assessment("web", "U0ONCALL1", "C0DEPLOYS", NOW - timedelta(minutes=1))
    if newer == "failed":
        repo.fail_assessment(pending, "PrometheusError: unreachable", NOW)
    assert recent_assessment(repo, "web", NOW) is None
