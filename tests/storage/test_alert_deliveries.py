"""Alertmanager's alerts in storage, on SQLite and PostgreSQL: each delivery key and the work
acting on it are stored once, however many replicas receive the same group at once."""

from __future__ import annotations

from datetime import datetime

from storage.repo.records import NewWork
from storage.repository import Repository
from tests.storage.threads import run_in_threads

KEYS = ["alertmanager:firing:a:1", "alertmanager:firing:b:1"]


def test_replicas_receiving_one_group_store_each_alert_and_its_work_once(
    repo: Repository, now: datetime
) -> None:
    def work(fresh: set[str]) -> list[NewWork]:
        return [NewWork("guard.alert_firing", f"w:{k}", now, {"key": k}) for k in sorted(fresh)]

    results = run_in_threads(4, lambda _: repo.accept_alerts(KEYS, now, work))
    fresh = [r for r in results if not isinstance(r, BaseException)]
    assert len(fresh) == 4, results
    assert sorted(k for keys in fresh for k in keys) == KEYS  # each key new exactly once
    assert all(repo.get_work(f"w:{k}") is not None for k in KEYS)
    assert repo.accept_alerts(KEYS, now, work) == set()  # a resend


def test_an_alert_assessment_is_started_once_with_its_audit(
    repo: Repository, now: datetime
) -> None:
    details = [{"key": KEYS[0], "alert": "A"}, {"key": KEYS[1], "alert": "B"}]
    first = repo.start_alert_assessment("grp", "checkout", "alertmanager", "C1", now, details)
    again = repo.start_alert_assessment("grp", "checkout", "alertmanager", "C1", now, details)
    assert first[1] and not again[1] and first[0] == again[0]
    events = repo.list_audit_events(kind="alert.received")
    assert [e.detail["alert"] for e in events] == ["A", "B"]
    assert {e.assessment_id for e in events} == {first[0]}
