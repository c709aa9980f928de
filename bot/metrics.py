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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
