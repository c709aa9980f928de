"""What the bot recorded about one rollback, gathered once for its review document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from bot.catalog.load import Catalog, Service
from bot.review.text import plain, user
from bot.rollback.lifecycle import AssessmentStatus
from storage.models import Approval, Assessment, AuditEvent, Page, Rollback, RollbackStep
from storage.repository import Repository

# An assessment this long before an immediate rollback is taken as its trigger.
ASSESSMENT_LOOKBACK = timedelta(hours=2)


@dataclass(frozen=True)
class ReviewFacts:
    rollback: Rollback
    service: Service | None
    steps: list[RollbackStep]
    approvals: list[Approval]
    events: list[AuditEvent]
    pages: list[Page]
    assessment: Assessment | None
    is_assessment_linked: bool  # False: the latest assessment before the request, inferred
    names: Mapping[str, str] = field(default_factory=dict)  # Slack user id → display name

    def who(self, user_id: str | None) -> str:
        """A person as readers know them: their Slack name, else their id."""
        if not user_id:
            return "nobody"
        name = self.names.get(user_id)
        return f"@{plain(name)}" if name else user(user_id)

    @property
    def user_ids(self) -> set[str]:
        ids = {self.rollback.requested_by, *(a.user_id for a in self.approvals)}
        ids |= {e.actor for e in self.events if e.actor}
        for e in self.events:
            ids |= {str(x) for x in e.detail.get("approvers") or []}
        return {i for i in ids if i}


def with_names(facts: ReviewFacts, name_of: Callable[[str], str | None]) -> ReviewFacts:
    """The facts with each person's display name looked up once."""
    names = {uid: found for uid in sorted(facts.user_ids) if (found := name_of(uid))}
    return replace(facts, names=names)


def gather(repo: Repository, catalog: Catalog, rollback_id: int) -> ReviewFacts | None:
    rollback = repo.get_rollback(rollback_id)
    if rollback is None:
        return None
    assessment, linked = None, False
    if rollback.assessment_id is not None:
        assessment, linked = repo.get_assessment(rollback.assessment_id), True
    else:
        for candidate in repo.list_assessments(service=rollback.service, limit=20):
            done = candidate.completed_at or candidate.created_at
            if candidate.status == AssessmentStatus.DONE and (
                rollback.created_at - ASSESSMENT_LOOKBACK <= done <= rollback.created_at
            ):
                assessment = candidate
                break
    return ReviewFacts(
        rollback=rollback,
        service=catalog.get(rollback.service),
        steps=repo.list_steps(rollback_id),
        approvals=repo.list_approvals(rollback_id),
        events=repo.list_audit_events(rollback_id=rollback_id),
        pages=repo.list_pages(rollback_id),
        assessment=assessment,
        is_assessment_linked=linked,
    )
