"""Alertmanager's alerts (``POST /alertmanager``, parsed in handlers/alertmanager.py): each new
firing alert of a catalog service gets an assessment in the service channel, and with the label
``rollback="auto"`` on a service whose ``auto_rollback`` is enabled it is a guard trigger — the
same confirmation, safety and loop rules (``firing.fire``). A resolved alert is noted in the
thread of its assessment. Alertmanager re-sends a group every ``repeat_interval``: an alert is
acted on once per fingerprint and start (a durable delivery key), never assessed or rolled back
twice. The alert and the due work acting on it are stored before the webhook answers, so a crash
right after the 200 still acts, once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.kube.values import KubeError
from bot.adapters.slack.web import SlackError
from bot.assessment.service import run_assessment
from bot.catalog.load import Service
from bot.deps import Deps
from bot.guard import firing
from bot.guard.releases import current_revision
from bot.notify.blocks import escape
from bot.notify.reply import Asker
from bot.rollback.lifecycle import (
    AssessmentStatus,
    GuardDueKind,
    alert_work_key,
)
from bot.rollback.safety import release_label
from storage.guard_models import GuardedRelease, GuardStatus, states_from_json
from storage.models import DueWork
from storage.repo.records import NewWork

log = logging.getLogger(__name__)

ALERT_ACTOR = "alertmanager"  # who asked for the assessment and who the audit says acted
MAX_KEY = 255  # the delivery table's key column


@dataclass(frozen=True)
class Alert:
    """One alert of a webhook (version 4) group."""

    status: str  # "firing" or "resolved"
    labels: Mapping[str, str]
    fingerprint: str
    starts_at: str
    ends_at: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or "(unnamed alert)"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""

    @property
    def is_firing(self) -> bool:
        return self.status == "firing"

    @property
    def wants_rollback(self) -> bool:
        return self.labels.get("rollback") == "auto"

    def key(self, state: str) -> str:
        """The delivery key of this alert's ``state`` (one firing and one resolved per start)."""
        key = f"alertmanager:{state}:{self.fingerprint}:{self.starts_at}"
        if len(key) <= MAX_KEY:
            return key
        return f"alertmanager:{state}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass
class Received:
    """What a delivery did, as the webhook's answer says it."""

    accepted: int = 0
    duplicate: int = 0
    unknown_service: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "unknown_service": self.unknown_service,
        }


def receive(deps: Deps, alerts: list[Alert]) -> Received:
    """Record each alert once, with the due work that acts on it, before the webhook answers:
    a crash after the 200 still acts (the due-work runner, on any replica, picks it up) and
    Alertmanager's resend is a duplicate. The answer counts them."""
    label = deps.settings.alertmanager_service_label
    now, received = deps.clock(), Received()
    by_key: dict[str, tuple[Service, Alert]] = {}
    known = 0
    for alert in alerts:
        value = alert.labels.get(label, "")
        service = deps.catalog.get(value) if value else None
        if service is None:  # told in the answer and the log; another receiver may own it
            received.unknown_service.append(value or f"(no {label} label)")
            log.warning(
                "alert %s (fingerprint %s): %s=%r is no service of the catalog",
                alert.name,
                alert.fingerprint,
                label,
                value,
            )
            continue
        known += 1
        by_key.setdefault(alert.key(alert.status), (service, alert))

    def work_for(fresh: set[str]) -> list[NewWork]:
        return _work_for(now, [pair for key, pair in by_key.items() if key in fresh])

    fresh = deps.repo.accept_alerts(list(by_key), now, work_for) if by_key else set()
    received.accepted, received.duplicate = len(fresh), known - len(fresh)
    if fresh:
        deps.kick_due_work()  # now rather than at the next tick
    return received


def _work_for(now: datetime, new: list[tuple[Service, Alert]]) -> list[NewWork]:
    """One item for each service's new firing alerts (one assessment), one per resolution."""
    firing: dict[str, list[Alert]] = {}
    work: list[NewWork] = []
    for service, alert in new:
        if alert.is_firing:
            firing.setdefault(service.name, []).append(alert)
            continue
        payload = {"service": service.name, "alerts": [_as_json(alert)]}
        key = alert_work_key(GuardDueKind.ALERT_RESOLVED, [alert.key("resolved")])
        work.append(NewWork(GuardDueKind.ALERT_RESOLVED, key, now, payload))
    for name, group in firing.items():
        payload = {"service": name, "alerts": [_as_json(a) for a in group]}
        key = alert_work_key(GuardDueKind.ALERT_FIRING, [a.key("firing") for a in group])
        work.append(NewWork(GuardDueKind.ALERT_FIRING, key, now, payload))
    return work


def _as_json(alert: Alert) -> dict[str, Any]:
    return {**asdict(alert), "labels": dict(alert.labels), "annotations": dict(alert.annotations)}


def _work_alerts(deps: Deps, item: DueWork) -> tuple[Service, list[Alert]] | None:
    """The service and alerts of an alert work item (None: the service left the catalog)."""
    service = deps.catalog.get(str(item.payload.get("service")))
    if service is None:
        log.warning("alert work %s: service %s is gone", item.key, item.payload.get("service"))
        return None
    return service, [Alert(**a) for a in item.payload.get("alerts") or []]


def _on_firing(deps: Deps, item: DueWork) -> None:
    """``guard.alert_firing``: one assessment for the service's new alerts of a delivery (once,
    however often a crash makes this run again), and their rollbacks if asked for."""
    found = _work_alerts(deps, item)
    if found is None:
        return
    service, alerts = found
    now = deps.clock()
    details = [
        {
            "key": alert.key("firing"),
            "alert": alert.name,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "summary": alert.summary,
            "rollback": alert.labels.get("rollback"),
        }
        for alert in alerts
    ]
    assessment_id, _ = deps.repo.start_alert_assessment(
        item.key, service.name, ALERT_ACTOR, service.channel, now, details
    )
    if wanted := [a for a in alerts if a.wants_rollback]:
        # one item, in order: the second alert finds the first one's rollback running
        keys = [a.key("firing") for a in wanted]
        payload = {"service": service.name, "alerts": [_as_json(a) for a in wanted]}
        key = alert_work_key(GuardDueKind.ALERT_ROLLBACK, keys)
        if deps.due.schedule(GuardDueKind.ALERT_ROLLBACK, key, now, payload):
            deps.kick_due_work()
    assessment = deps.repo.get_assessment(assessment_id)
    if assessment is not None and assessment.status == AssessmentStatus.PENDING:
        _assess(deps, service, assessment_id, alerts)


def _on_rollback(deps: Deps, item: DueWork) -> None:
    """``guard.alert_rollback``: each alert's rollback="auto", in order."""
    found = _work_alerts(deps, item)
    if found is not None:
        for alert in found[1]:
            _roll_back(deps, found[0], alert)


def _on_resolved(deps: Deps, item: DueWork) -> None:
    found = _work_alerts(deps, item)
    if found is not None:
        for alert in found[1]:
            _resolved(deps, found[0], alert)


def install(deps: Deps) -> None:
    """The due work Alertmanager's alerts leave (stored by :func:`receive`)."""
    deps.due.register(GuardDueKind.ALERT_FIRING, lambda item: _on_firing(deps, item))
    deps.due.register(GuardDueKind.ALERT_ROLLBACK, lambda item: _on_rollback(deps, item))
    deps.due.register(GuardDueKind.ALERT_RESOLVED, lambda item: _on_resolved(deps, item))


def _assess(deps: Deps, service: Service, assessment_id: int, alerts: list[Alert]) -> None:
    """The assessment posted in the channel (as a person's would be), then the alerts in its
    thread — the thread their resolution is noted in."""

    def nowhere(**answer: Any) -> None:  # nobody waits for a private answer: the log has it
        log.warning("assessment for alerts on %s: %s", service.name, answer.get("text", ""))

    # no Slack user asked: an empty user keeps "requested by <@…>" off the message
    asker = Asker(user="", channel=service.channel, delivery_key=None, respond=nowhere)
    run_assessment(deps, service, assessment_id, asker)
    lines = [_firing_line(service, alert) for alert in alerts]
    _post(deps, service, "\n".join(lines), _thread_of(deps, assessment_id))


def _firing_line(service: Service, alert: Alert) -> str:
    line = f":bell: Alertmanager: *{escape(alert.name)}* firing since {_when(alert.starts_at)}"
    if alert.summary:
        line += f": {escape(alert.summary)}"
    if alert.wants_rollback:
        enabled = service.guard.is_enabled
        line += (
            ' — `rollback="auto"`: handled by the guard'
            if enabled
            else f' — `rollback="auto"` ignored: auto_rollback is not enabled for {service.name}'
        )
    return line


def _roll_back_all(deps: Deps, service: Service, alerts: list[Alert]) -> None:
    for alert in alerts:
        _roll_back(deps, service, alert)


def _roll_back(deps: Deps, service: Service, alert: Alert) -> None:
    """A guard trigger: confirmation, safety checks and max_per_day as the guard's own, through
    the guard's own firing path (``firing.fire_release``)."""
    suffix = f": {alert.summary}" if alert.summary else ""
    reason = f'alert {alert.name} (rollback="auto") from Alertmanager{suffix}'
    why_not = _why_not(deps, service)
    release = None if why_not else _release_for(deps, service)
    if why_not is None and release is None:
        why_not = "the running release could not be read"
    if why_not is not None or release is None:
        log.info("alert %s on %s: no automatic rollback (%s)", alert.name, service.name, why_not)
        deps.audit("alert.rollback", service.name, ALERT_ACTOR, alert=alert.name, skipped=why_not)
        return
    states = states_from_json(release.states)
    if not firing.fire_release(
        deps, service, release, alert.name, reason, states, is_refire_allowed=True
    ):
        log.info("alert %s on %s: the release was fired on already", alert.name, service.name)
        return
    deps.audit(
        "alert.rollback",
        service.name,
        ALERT_ACTOR,
        alert=alert.name,
        reason=reason,
        revision=release.revision,
    )


def _why_not(deps: Deps, service: Service) -> str | None:
    if not service.guard.is_enabled:
        return "auto_rollback is not enabled"
    guarded = deps.repo.guarded_service(service.name)
    if guarded is not None and guarded.is_paused:
        return f"the guard is paused (by {guarded.paused_by})"
    return None


def _release_for(deps: Deps, service: Service) -> GuardedRelease | None:
    """The release an alert fires on: the one being watched (the latest), else the running
    revision (its guard record is started so the buttons and the state exist). None when the
    Deployment cannot be read."""
    now = deps.clock()
    latest = deps.repo.list_guarded(service=service.name, limit=1)
    watching = [r for r in latest if r.status == GuardStatus.WATCHING]
    if watching:
        return watching[0]
    try:
        revision, images = current_revision(deps.kube, service)
    except KubeError as exc:
        log.warning("alert on %s: cannot read the deployment: %s", service.name, exc)
        return None
    until = now + timedelta(minutes=service.guard.watch_minutes)
    return deps.repo.start_guarding(
        service.name, revision, release_label(images), now, until, {}, {}
    ) or next((r for r in deps.repo.list_guarded(service.name) if r.revision == revision), None)


def _resolved(deps: Deps, service: Service, alert: Alert) -> None:
    """ "Resolved at …" in the thread of the alert's assessment (in the channel if none)."""
    received = [
        event
        for event in deps.repo.list_audit_events(kind="alert.received", service=service.name)
        if event.detail.get("key") == alert.key("firing")
    ]
    assessment_id = received[-1].assessment_id if received else None
    thread = _thread_of(deps, assessment_id) if assessment_id is not None else None
    text = f":white_check_mark: Alertmanager: *{escape(alert.name)}* resolved at"
    text += f" {_when(alert.ends_at)}." if alert.ends_at else " an unknown time."
    ts = _post(deps, service, text, thread)
    deps.audit(
        "alert.resolved",
        service.name,
        ALERT_ACTOR,
        channel_id=thread[0] if thread else service.channel,
        message_ts=ts,
        alert=alert.name,
        fingerprint=alert.fingerprint,
        ends_at=alert.ends_at,
        thread_ts=thread[1] if thread else None,
    )


def _thread_of(deps: Deps, assessment_id: int) -> tuple[str, str] | None:
    """(channel, ts) of the assessment's message, as its completion was audited."""
    for event in reversed(
        deps.repo.list_audit_events(kind="assessment.completed", assessment_id=assessment_id)
    ):
        if event.channel_id and event.message_ts:
            return event.channel_id, event.message_ts
    return None


def _post(deps: Deps, service: Service, text: str, thread: tuple[str, str] | None) -> str | None:
    channel, ts = thread if thread else (service.channel, None)
    try:
        posted = deps.slack.chat_postMessage(
            channel=channel, text=text, thread_ts=ts, unfurl_links=False
        )
    except SlackError as exc:
        log.warning("alert note for %s not posted: %s", service.name, exc.error)
        return None
    return str(posted.get("ts") or "") or None


def _when(stamp: str) -> str:
    """Alertmanager's RFC 3339 time as people read it; as given when it does not parse."""
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return stamp
