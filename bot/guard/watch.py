"""The guard's rounds on each replica: every few seconds notice new releases (``tick``), and
every second evaluate the guarded releases whose time has come (``evaluate_due``: one indexed
claim, nothing more when nothing is due; claimed, so that with several replicas each release is
evaluated by one at a time), store every trigger's state, fire, or end the watch. A release is
thus evaluated within a second of its own schedule, not at the next detection round."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta

from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.contracts import worker_name
from bot.guard import alerts, firing, oncall
from bot.guard.readings import Reading, read_baselines, read_many
from bot.guard.releases import NewRelease, ReleaseWatcher, detect, record_rollback_result
from bot.rollback.triggers import (
    BLIND_AFTER,
    GuardConfig,
    Trigger,
    TriggerState,
    Verdict,
    breach_text,
    evaluate,
    is_blind,
)
from storage.guard_models import GuardedRelease, GuardStatus, states_from_json, states_to_json
from storage.models import Rollback

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # a replica that stalls this long loses its claim on a release
# The rounds tick every few seconds and a tick may come a few milliseconds early: an evaluation
# due this little later is taken now (claimed early) and judged at its due time, so evaluations
# stay exactly one interval apart and a breach is judged on whole intervals, never a hair short.
TICK_SLACK = timedelta(seconds=0.5)


def is_guarded(service: Service) -> bool:
    """The guard watches this service: enabled, and in one cluster (it does not watch regions
    yet; check-config refuses the combination)."""
    return service.guard.is_enabled and not service.regions


class Guard:
    """The guard of every service with ``auto_rollback.enabled``."""

    def __init__(self, deps: Deps) -> None:
        self.deps, self.prometheus = deps, deps.reader.prometheus
        self.worker = worker_name()
        self._evaluating = threading.Lock()  # one evaluation pass at a time in this process
        self._skipped: set[str] = set()  # regions: services not guarded (logged once)

    def services(self) -> list[Service]:
        enabled = [s for s in self.deps.catalog.services.values() if s.guard.is_enabled]
        for s in enabled:
            if s.regions and s.name not in self._skipped:  # check-config refuses it; said once
                self._skipped.add(s.name)
                log.warning(
                    "guard: not watching %s: it runs in regions (%s) and the guard does not"
                    " watch regions yet (set auto_rollback.enabled: false for it)",
                    *(s.name, ", ".join(r.name for r in s.regions)),
                )
        return [s for s in enabled if is_guarded(s)]

    def tick(self) -> None:
        """One round: new releases, then the evaluations that are due."""
        now = self.deps.clock()
        known = self.deps.repo.guarded_services()
        active = [s for s in self.services() if not (s.name in known and known[s.name].is_paused)]
        seen = {name: row.last_revision for name, row in known.items()}
        for new in detect(self.deps.kube, self.deps.repo, active, now, seen=seen):
            self.start(new, now)
        self.evaluate_due()
        self.deps.metrics.guarded_releases.set(self.deps.repo.count_guarded(GuardStatus.WATCHING))

    def evaluate_due(self) -> int:
        """The evaluations that are due now (the scheduler asks every second); how many ran.
        A pass still running in this process makes this one a no-op (no pile-up)."""
        if not self._evaluating.acquire(blocking=False):
            return 0
        try:
            now = self.deps.clock()
            due = self.deps.repo.claim_due_releases(now + TICK_SLACK, self.worker, LEASE)
            if due:
                self.evaluate(due, now)
            return len(due)
        finally:
            self._evaluating.release()

    def watch_releases(self) -> ReleaseWatcher:
        """Watches on the guarded services' Deployments that run a round as soon as one changes
        revision (the rounds alone notice it too, at their tick)."""
        watcher = ReleaseWatcher(
            self.deps.kube,
            lambda: self.deps.work.submit("guard round", self.tick, lane="bulk"),
        )
        watcher.start(self.services())
        return watcher

    # --- starting a watch ----------------------------------------------------------------------

    def start(self, new: NewRelease, now: datetime) -> GuardedRelease | None:
        config = _config(new.service)
        # the window before the release: it appeared at most one interval ago
        until = now - timedelta(seconds=config.interval_seconds)
        relative = {t.name: t.query for t in config.triggers if t.is_relative and t.query}
        baselines = self._baselines(relative, until, config.baseline_minutes)
        release = self.deps.repo.start_guarding(
            new.service.name,
            new.revision,
            new.release,
            now,
            now + timedelta(minutes=config.watch_minutes),
            {name: r.value for name, r in baselines.items()},
            {},
        )
        if release is None or release.id is None:
            return None
        self.deps.audit(
            "guard.started",
            new.service.name,
            revision=new.revision,
            release=new.release,
            baseline={n: r.value for n, r in baselines.items()},
        )
        self._show(release, new.service, {}, now)
        return release

    def _baselines(
        self, queries: Mapping[str, str], until: datetime, minutes: float
    ) -> dict[str, Reading]:
        if not queries:
            return {}
        if self.prometheus is None:
            return {k: Reading(None, "PROMETHEUS_URL is not set") for k in queries}
        return read_baselines(self.prometheus, queries, until=until, minutes=minutes)

    # --- evaluating ----------------------------------------------------------------------------

    def evaluate(self, releases: list[GuardedRelease], now: datetime) -> None:
        services = {r.service: self.deps.catalog.get(r.service) for r in releases}
        readings = self._read(releases, services)
        for release in releases:
            service = services[release.service]
            if service is None or not is_guarded(service):
                self.deps.repo.end_guarding(release.id or 0, GuardStatus.ENDED, now)
                continue
            self._evaluate_one(release, service, readings, now)

    def _read(
        self, releases: list[GuardedRelease], services: Mapping[str, Service | None]
    ) -> dict[str, Reading]:
        """Every trigger of every release, at once: PromQL in batches, health probes in the pool."""
        queries: dict[str, str] = {}
        probes: dict[str, Future[Reading]] = {}
        for release in releases:
            service = services[release.service]
            for trigger in _config(service).triggers if service else ():
                key = f"{release.id}:{trigger.name}"
                if trigger.query is not None:
                    queries[key] = trigger.query
                elif service is not None and service.spec.health_url:
                    probes[key] = self.deps.reader.pool.submit(_probe, self.deps, service)
        found: dict[str, Reading] = {}
        if queries:
            found = (
                read_many(self.prometheus, queries)
                if self.prometheus is not None
                else {k: Reading(None, "PROMETHEUS_URL is not set") for k in queries}
            )
        for key, future in probes.items():
            try:
                found[key] = future.result(timeout=30)
            except Exception as exc:  # a probe that did not come back is unknown, not healthy
                found[key] = Reading(None, f"health probe failed: {type(exc).__name__}")
        return found

    def _evaluate_one(
        self,
        release: GuardedRelease,
        service: Service,
        readings: Mapping[str, Reading],
        now: datetime,
    ) -> None:
        assert release.id is not None
        now = max(now, release.next_at)  # an evaluation claimed a hair early counts as on time
        config = _config(service)
        states = states_from_json(release.states)
        # told at the evaluation that made it blind: the stored states say whether it was
        was_blind = is_blind(list(states.values()))
        fired: tuple[Trigger, TriggerState] | None = None
        for trigger in config.triggers:
            reading = readings.get(f"{release.id}:{trigger.name}", Reading(None, "not read"))
            state, verdict = evaluate(
                trigger,
                reading.value,
                release.baseline.get(trigger.name),
                states.get(trigger.name, TriggerState()),
                now,
            )
            states[trigger.name] = state
            if verdict == Verdict.FIRED and fired is None:
                fired = (trigger, state)
        self.deps.metrics.guard_evaluations.inc()
        blind = is_blind(list(states.values()))
        is_newly_blind = blind and not was_blind
        self.deps.metrics.guard_blind.labels(service.name).set(1 if blind else 0)
        saved = self.deps.repo.save_evaluation(
            release.id,
            self.worker,
            states_to_json(states),
            release.evaluations + 1,
            now + timedelta(seconds=config.interval_seconds),
        )
        if not saved:
            return  # another replica took it over: it carries on from what it stored
        if is_newly_blind:
            self._tell_blind(release, service, readings)
        if fired is not None or now >= release.watch_until:
            self.deps.metrics.guard_blind.labels(service.name).set(0)  # the watch ends here
        if fired is not None:
            trigger, state = fired
            reason = breach_text(trigger, state, release.baseline.get(trigger.name), now)
            firing.fire_release(self.deps, service, release, trigger.name, reason, states, now)
        elif now >= release.watch_until:
            if self.deps.repo.end_guarding(release.id, GuardStatus.ENDED, now):
                self.deps.audit("guard.ended", service.name, revision=release.revision)
                self._show(self._fresh(release), service, states, now)
        else:
            self._show(release, service, states, now)

    def _fresh(self, release: GuardedRelease) -> GuardedRelease:
        assert release.id is not None
        return self.deps.repo.guarded_release(release.id) or release

    def _tell_blind(
        self, release: GuardedRelease, service: Service, readings: Mapping[str, Reading]
    ) -> None:
        why = "; ".join(_blind_reasons(release, _config(service), readings)) or "no reading"
        self.deps.audit("guard.blind", service.name, revision=release.revision, why=why)
        firing.say(
            self.deps,
            service,
            release,
            f":warning: The guard of *{service.name}* is blind: no trigger could be evaluated"
            f" for {BLIND_AFTER} evaluations in a row ({why}). It is NOT watching this release"
            " until they can — check Prometheus, the health URL and the triggers' queries.",
        )

    # --- the message ---------------------------------------------------------------------

    def _show(
        self,
        release: GuardedRelease,
        service: Service,
        states: Mapping[str, TriggerState],
        now: datetime,
    ) -> None:
        firing.show(self.deps, release, service, states, now)

    # --- rollbacks that end ---------------------------------------------------------------

    def rollback_started(self, rollback: Rollback) -> None:
        """Nothing: a running rollback holds its service (detection skips it)."""

    def rollback_finished(self, rollback: Rollback) -> None:
        service = self.deps.catalog.get(rollback.service)
        if service is not None and is_guarded(service):
            assert rollback.id is not None
            record_rollback_result(
                self.deps.kube, self.deps.repo, service, rollback.id, self.deps.clock()
            )


def _blind_reasons(
    release: GuardedRelease, config: GuardConfig, readings: Mapping[str, Reading]
) -> list[str]:
    """Why each trigger could not be evaluated: its reading's note, or its missing baseline."""
    reasons = []
    for trigger in config.triggers:
        reading = readings.get(f"{release.id}:{trigger.name}", Reading(None, "not read"))
        if reading.value is None:
            reasons.append(f"{trigger.name}: {reading.note or 'no reading'}")
        elif trigger.is_relative and release.baseline.get(trigger.name) is None:
            minutes = int(config.baseline_minutes)
            reasons.append(f"{trigger.name}: no baseline (no data in the {minutes} min before)")
    return reasons


def _config(service: Service | None) -> GuardConfig:
    """The service's guard, or a disabled one for a service that left the catalog."""
    return service.guard if service is not None else GuardConfig()


def _probe(deps: Deps, service: Service) -> Reading:
    """The health probe as a trigger reading: a failed probe reads 1, a good one 0."""
    result = deps.reader.http.check_health(
        service.spec.health_url or "", service.health_timeout_seconds
    )
    return Reading(0.0 if result.is_healthy else 1.0, result.note)


def install(deps: Deps) -> Guard:
    """The guard's rounds (a periodic job of the scheduler) and its rollback listener."""
    guard = Guard(deps)
    deps.engine.listeners.append(guard)
    firing.install(deps)
    oncall.install(deps)  # pages the on-call about the questions firing asks
    alerts.install(deps)  # acts on Alertmanager's alerts, stored before the webhook answered
    return guard
