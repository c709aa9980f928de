"""Prometheus metrics of the bot, in a registry per app so that tests and apps never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.assessments = Counter(
            "rollback_bot_assessments_total",
            "Assessments completed, by service and decision.",
            ["service", "decision"],
            registry=self.registry,
        )
        self.assessment_seconds = Histogram(
            "rollback_bot_assessment_duration_seconds",
            "Wall time to read every signal of a service and score it.",
            ["service"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=self.registry,
        )
        self.slack_requests = Counter(
            "rollback_bot_slack_requests_total",
            "Requests from Slack by outcome (handled, duplicate).",
            ["outcome"],
            registry=self.registry,
        )
        self.background_failures = Counter(
            "rollback_bot_background_failures_total",
            "Work after ack() that raised; each is logged with its traceback.",
            registry=self.registry,
        )

        # rollbacks (alert rules in deploy/prometheus/rollback-alerts.yml use these names)
        self.rollbacks_started = Counter(
            "rollback_bot_rollbacks_started_total",
            "Rollbacks that started running, by service, strategy and kind.",
            ["service", "strategy", "kind"],
            registry=self.registry,
        )
        self.rollbacks_finished = Counter(
            "rollback_bot_rollbacks_finished_total",
            "Rollbacks that ended, by service, strategy and outcome (succeeded/failed/aborted).",
            ["service", "strategy", "outcome"],
            registry=self.registry,
        )
        self.rollback_seconds = Histogram(
            "rollback_bot_rollback_duration_seconds",
            "Start to end of a rollback.",
            ["service", "strategy"],
            buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "rollback_bot_phase_duration_seconds",
            "Duration of one phase of a rollback plan.",
            ["service", "phase"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.approval_wait_seconds = Histogram(
            "rollback_bot_approval_wait_seconds",
            "Request to final approval of a planned rollback.",
            ["service"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=self.registry,
        )
        self.pages_sent = Counter(
            "rollback_bot_pages_sent_total",
            "SMS pages handed to Twilio, by service and outcome (sent/failed).",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.pages_acknowledged = Counter(
            "rollback_bot_pages_acknowledged_total",
            "Pages acknowledged, by service and channel (sms/slack).",
            ["service", "via"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
