"""Alertmanager's alerts (``POST /alertmanager``, parsed in handlers/alertmanager.py): each new
firing alert of a catalog service gets an assessment in the service channel, and with the label
``rollback="auto"`` on a service whose ``auto_rollback`` is enabled it is a guard trigger — the
same confirmation, safety and loop rules (``firing.fire``). A resolved alert is noted in the
thread of its assessment. Alertmanager re-sends a group every ``repeat_interval``: an alert is
acted on once per fingerprint and start (a durable delivery key), never assessed or rolled back
twice."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from bot.rollback.safety import release_label
from storage.guard_models import GuardedRelease, GuardStatus

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
    """Record each alert once and queue what it calls for; the answer counts them."""
    label = deps.settings.alertmanager_service_label
    now, received = deps.clock(), Received()
    firing_by_service: dict[str, list[Alert]] = {}
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
        if not deps.repo.record_delivery(alert.key(alert.status), now):
            received.duplicate += 1  # Alertmanager's repeat_interval: acted on already
            continue
        received.accepted += 1
        if alert.is_firing:
            firing_by_service.setdefault(service.name, []).append(alert)
        else:
            deps.work.submit(f"alert {alert.name} resolved", _resolved, deps, service, alert)
    for name, group in firing_by_service.items():
        _firing(deps, deps.catalog.services[name], group, now)
    return received


def _firing(deps: Deps, service: Service, alerts: list[Alert], now: datetime) -> None:
    """One assessment for the service's new alerts of this delivery; rollbacks if asked for."""
    assessment_id = deps.repo.start_assessment(
        None, service.name, ALERT_ACTOR, service.channel, now
    )
    assert assessment_id is not None  # no delivery key: never a repeat
    for alert in alerts:
        deps.repo.add_audit_event(
            "alert.received",
            now=now,
            service=service.name,
            assessment_id=assessment_id,
            actor=ALERT_ACTOR,
            detail={
                "key": alert.key("firing"),
                "alert": alert.name,
                "fingerprint": alert.fingerprint,
                "starts_at": alert.starts_at,
                "summary": alert.summary,
                "rollback": alert.labels.get("rollback"),
            },
        )
    deps.work.submit(
        f"assessment of {service.name} for an alert",
        _assess,
        deps,
        service,
        assessment_id,
        alerts,
        lane="bulk",
    )
    if wanted := [a for a in alerts if a.wants_rollback]:
        # one job, in order: the second alert finds the first one's rollback running
        deps.work.submit(f"alert rollback of {service.name}", _roll_back_all, deps, service, wanted)


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
    """A guard trigger: confirmation, safety checks and max_per_day as the guard's own."""
    suffix = f": {alert.summary}" if alert.summary else ""
    reason = f'alert {alert.name} (rollback="auto") from Alertmanager{suffix}'
    why_not = _why_not(deps, service)
    release = None if why_not else _release_for(deps, service, alert, reason)
    if why_not is None and release is None:
        why_not = "the running release could not be read"
    if why_not is not None or release is None:
        log.info("alert %s on %s: no automatic rollback (%s)", alert.name, service.name, why_not)
        deps.audit("alert.rollback", service.name, ALERT_ACTOR, alert=alert.name, skipped=why_not)
        return
    deps.metrics.guard_triggers.labels(service.name, alert.name).inc()
    deps.audit(
        "alert.rollback",
        service.name,
        ALERT_ACTOR,
        alert=alert.name,
        reason=reason,
        revision=release.revision,
    )
    firing.fire(deps, service, release, reason)


def _why_not(deps: Deps, service: Service) -> str | None:
    if not service.guard.is_enabled:
        return "auto_rollback is not enabled"
    guarded = deps.repo.guarded_service(service.name)
    if guarded is not None and guarded.is_paused:
        return f"the guard is paused (by {guarded.paused_by})"
    return None


def _release_for(deps: Deps, service: Service, alert: Alert, reason: str) -> GuardedRelease | None:
    """The release the alert fires on: the one being watched, else the running revision (its
    guard record is started so the buttons and the state exist). None when it was fired on
    concurrently (the guard or another replica acts) or the Deployment cannot be read."""
    now = deps.clock()
    watching = deps.repo.list_guarded(service=service.name, statuses=[GuardStatus.WATCHING])
    release = watching[0] if watching else None
    if release is None:
        try:
            revision, images = current_revision(deps.kube, service)
        except KubeError as exc:
            log.warning("alert on %s: cannot read the deployment: %s", service.name, exc)
            return None
        until = now + timedelta(minutes=service.guard.watch_minutes)
        release = deps.repo.start_guarding(
            service.name, revision, release_label(images), now, until, {}, {}
        ) or next((r for r in deps.repo.list_guarded(service.name) if r.revision == revision), None)
    if release is None or release.id is None:
        return None
    if release.status == GuardStatus.WATCHING and not deps.repo.end_guarding(
        release.id, GuardStatus.FIRED, now, fired_trigger=alert.name, fired_reason=reason
    ):
        return None  # fired (or ended) a moment ago by someone else: they act, once
    return deps.repo.guarded_release(release.id) or release


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
