"""Which assessment is a service's recent one: the basis a planned request shows, and the reason
an immediate rollback typed without one takes. One rule for both: the service's newest
assessment, if it finished and was started less than an hour ago. An older one, or one behind a
newer assessment that failed or is still running, no longer says how the service is."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.rollback.lifecycle import AssessmentStatus
from storage.models import Assessment
from storage.repository import Repository

RECENT_ASSESSMENT = timedelta(hours=1)


def recent_assessment(repo: Repository, service: str, now: datetime) -> Assessment | None:
    """The service's recent assessment (see the module), or None."""
    newest = repo.list_assessments(service=service, limit=1)
    if not newest or newest[0].status != AssessmentStatus.DONE:
        return None
    return newest[0] if now - newest[0].created_at < RECENT_ASSESSMENT else None
