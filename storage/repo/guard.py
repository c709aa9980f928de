"""The automatic guard: revisions seen per service, releases under watch, their claims.

Each watched release is evaluated by one replica at a time: `claim_due_releases` leases it
(PostgreSQL replicas skip rows another replica is claiming, FOR UPDATE SKIP LOCKED; SQLite has
one writer, so the plain select is already exclusive there), `save_evaluation` stores what the
evaluation learnt only while the lease is still the caller's, and `end_guarding` moves a release
out of watching exactly once, so a trigger fires once however many replicas run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from bot.rollback.triggers import TriggerState
from storage.guard_models import (
    GUARD_ACTOR,
    GuardedRelease,
    GuardedService,
    GuardStatus,
    finite_or_none,
    states_to_json,
)
from storage.models import Rollback
from storage.repo.base import RepositoryBase

_T = TypeVar("_T")

# What callers pass as states: `TriggerState`s, or their JSON (`states_to_json`) as stored.
States = Mapping[str, TriggerState] | Mapping[str, Mapping[str, Any]]


class GuardMixin(RepositoryBase):
    """The guard's services and watched releases."""

    def guarded_service(self, service: str) -> GuardedService | None:
        """What the guard knows of `service` (None before its first revision or pause)."""
        with self._read() as session:
            return session.get(GuardedService, service)

    def see_revision(self, service: str, revision: str, now: datetime) -> str | None:
        """Store `revision` as the service's last seen one and return the one before it (None
        at first sight). Atomic: of two replicas seeing a change together, one gets the old
        revision and the other the new one, so only one of them takes it for a new release."""

        def change(row: GuardedService) -> str | None:
            previous = row.last_revision
            if previous != revision:
                row.last_revision = revision
                row.changed_at = now
            return previous

        return self._change_service(service, now, change)

    def set_guard_paused(self, service: str, is_paused: bool, by: str, now: datetime) -> None:
        """Pause or resume the guard of `service` (`by`: who paused it; cleared on resume)."""

        def change(row: GuardedService) -> None:
            row.is_paused = is_paused
            row.paused_by = by if is_paused else None
            row.changed_at = now

        self._change_service(service, now, change)

    def _change_service(
        self, service: str, now: datetime, change: Callable[[GuardedService], _T]
    ) -> _T:
        """Apply `change` to the service's row under a row lock, creating the row if missing;
        a replica creating it at the same moment makes the insert fail once: then it exists."""
        for attempt in range(2):
            try:
                with self._write() as session:
                    query = (
                        select(GuardedService)
                        .where(GuardedService.service == service)
                        .with_for_update()
                    )
                    row = session.exec(query).first()
                    if row is None:
                        row = GuardedService(service=service, changed_at=now)
                        session.add(row)
                    return change(row)
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def start_guarding(
        self,
        service: str,
        revision: str,
        release: str,
        now: datetime,
        watch_until: datetime,
        baseline: Mapping[str, float | None],
        states: States,
    ) -> GuardedRelease | None:
        """Watch a new release from `now` (first evaluation due at once); None when this
        (service, revision) was guarded before. In the same transaction the service's
        watching releases become superseded (a duplicate supersedes nothing)."""
        row = GuardedRelease(
            service=service,
            revision=revision,
            release=release,
            detected_at=now,
            watch_until=watch_until,
            next_at=now,
            baseline={name: finite_or_none(value) for name, value in baseline.items()},
            states=_states_json(states),
        )
        supersede = (
            sa.update(GuardedRelease)
            .where(
                col(GuardedRelease.service) == service,
                col(GuardedRelease.status) == GuardStatus.WATCHING,
            )
            .values(status=GuardStatus.SUPERSEDED, ended_at=now)
        )
        try:
            with self._write() as session:
                session.exec(supersede)
                session.add(row)
        except IntegrityError:  # the unique (service, revision): seen before
            return None
        return row

    def guarded_release(self, release_id: int) -> GuardedRelease | None:
        """One guarded release, or None."""
        with self._read() as session:
            return session.get(GuardedRelease, release_id)

    def claim_due_releases(
        self, now: datetime, worker: str, lease: timedelta, limit: int = 500
    ) -> list[GuardedRelease]:
        """Lease to `worker` the watching releases due for evaluation whose lease is free or
        lapsed (a replica that died mid-evaluation is taken over). Asked every second: when
        nothing is due, one indexed read and no write transaction."""
        due = (
            col(GuardedRelease.status) == GuardStatus.WATCHING,
            col(GuardedRelease.next_at) <= now,
            sa.or_(
                col(GuardedRelease.claimed_until).is_(None),
                col(GuardedRelease.claimed_until) <= now,
            ),
        )
        with self._read() as session:
            if session.exec(select(GuardedRelease.id).where(*due).limit(1)).first() is None:
                return []
        query = (
            select(GuardedRelease)
            .where(*due)
            .order_by(col(GuardedRelease.next_at), col(GuardedRelease.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as session:
            releases = list(session.exec(query).all())
            for release in releases:
                release.claimed_by = worker
                release.claimed_until = now + lease
        return releases

    def save_evaluation(
        self,
        release_id: int,
        worker: str,
        states: States,
        evaluations: int,
        next_at: datetime,
    ) -> bool:
        """Store one evaluation's outcome and give the lease back; False (nothing stored) when
        `worker` no longer holds the release: another replica took it over."""
        statement = (
            sa.update(GuardedRelease)
            .where(col(GuardedRelease.id) == release_id, col(GuardedRelease.claimed_by) == worker)
            .values(
                states=_states_json(states),
                evaluations=evaluations,
                next_at=next_at,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def end_guarding(
        self,
        release_id: int,
        status: str,
        now: datetime,
        *,
        fired_trigger: str | None = None,
        fired_reason: str | None = None,
        rollback_id: int | None = None,
    ) -> bool:
        """Move a watching release to `status` (fired, ended, superseded) exactly once; False
        when it had already moved on. The lease is left alone: the evaluation that fired may
        still save its states."""
        if status not in tuple(GuardStatus) or status == GuardStatus.WATCHING:
            raise ValueError(f"cannot end guarding as {status!r}")
        values: dict[str, Any] = {"status": status, "ended_at": now}
        if fired_trigger is not None:
            values["fired_trigger"] = fired_trigger
        if fired_reason is not None:
            values["fired_reason"] = fired_reason
        if rollback_id is not None:
            values["rollback_id"] = rollback_id
        statement = (
            sa.update(GuardedRelease)
            .where(
                col(GuardedRelease.id) == release_id,
                col(GuardedRelease.status) == GuardStatus.WATCHING,
            )
            .values(**values)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def set_guard_rollback(self, release_id: int, rollback_id: int) -> bool:
        """Record the rollback a fired release started, once (when it was started after
        `end_guarding`); False if one was recorded already."""
        statement = (
            sa.update(GuardedRelease)
            .where(col(GuardedRelease.id) == release_id, col(GuardedRelease.rollback_id).is_(None))
            .values(rollback_id=rollback_id)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def set_guard_message(self, release_id: int, channel_id: str, ts: str) -> None:
        """Remember the "Guarding …" message (edited in place on each evaluation)."""
        statement = (
            sa.update(GuardedRelease)
            .where(col(GuardedRelease.id) == release_id)
            .values(channel_id=channel_id, message_ts=ts)
        )
        with self._write() as session:
            session.exec(statement)

    def list_guarded(
        self,
        service: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int = 50,
    ) -> list[GuardedRelease]:
        """Guarded releases, newest first, optionally of one service and/or some statuses."""
        query = select(GuardedRelease).order_by(col(GuardedRelease.id).desc()).limit(limit)
        if service is not None:
            query = query.where(GuardedRelease.service == service)
        if statuses is not None:
            query = query.where(col(GuardedRelease.status).in_(list(statuses)))
        with self._read() as session:
            return list(session.exec(query).all())

    def guarded_services(self) -> dict[str, GuardedService]:
        """What the guard knows of every service, by name (one query a round)."""
        with self._read() as session:
            return {row.service: row for row in session.exec(select(GuardedService)).all()}

    def count_guarded(self, status: str) -> int:
        """How many releases have ``status`` (the guarded-releases gauge)."""
        query = (
            select(func.count())
            .select_from(GuardedRelease)
            .where(col(GuardedRelease.status) == status)
        )
        with self._read() as session:
            return int(session.exec(query).one())

    def count_guard_rollbacks(self, service: str, since: datetime) -> int:
        """Rollbacks of `service` the guard started since `since` (for `max_per_day`)."""
        query = (
            select(func.count())
            .select_from(Rollback)
            .where(
                col(Rollback.service) == service,
                col(Rollback.requested_by) == GUARD_ACTOR,
                col(Rollback.created_at) >= since,
            )
        )
        with self._read() as session:
            return int(session.exec(query).one())


def _states_json(states: States) -> dict[str, dict[str, Any]]:
    """Stored form of `states`, whether given as `TriggerState`s or already as their JSON."""
    data: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if isinstance(state, TriggerState):
            data.update(states_to_json({name: state}))
        else:
            data[name] = dict(state)
    return data
