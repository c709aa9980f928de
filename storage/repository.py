"""Queries and state transitions: the only SQL in the bot.

Every method runs in its own short transaction and returns detached objects whose attributes
stay readable after the session closes. Methods that stamp time take `now` (aware UTC).
Uniqueness races (Slack retries, double clicks, two replicas) are settled by the database's
unique keys, never by a read-then-insert check.

The methods live in `storage.repo`, one mixin a concern; `Repository` composes them. What they
take and raise (`NewWork`, `NewStep`, `ActiveRollbackExists`, `RecordNotFound`) is defined in
`storage.repo.records`: import those from there.
"""

from __future__ import annotations

from storage.repo.alerts import AlertsMixin
from storage.repo.approvals import ApprovalsMixin
from storage.repo.assessments import AssessmentsMixin
from storage.repo.audit import AuditMixin
from storage.repo.customer import CustomerMixin
from storage.repo.drills import DrillsMixin
from storage.repo.guard import GuardMixin
from storage.repo.page_delivery import PageDeliveryMixin
from storage.repo.pages import PagesMixin
from storage.repo.reviews import ReviewsMixin
from storage.repo.rollbacks import RollbacksMixin
from storage.repo.steps import StepsMixin
from storage.repo.work import WorkMixin


class Repository(
    AuditMixin,
    AssessmentsMixin,
    RollbacksMixin,
    StepsMixin,
    ApprovalsMixin,
    WorkMixin,
    ReviewsMixin,
    PagesMixin,
    PageDeliveryMixin,
    GuardMixin,
    DrillsMixin,
    AlertsMixin,
    CustomerMixin,
):
    """Durable state behind one engine (SQLite or PostgreSQL)."""
