"""What a ladder pages about: a rollback, or a question of the automatic guard.

A guard question ("Roll back now / Keep release", issue 14) has no rollback yet, but it wakes
people the same way: the same levels, delays, SMS retries and notices. Its ladder is owned by
the guarded release (``pages.question_id``), its keys by ``question_owner(release id)``; it is
open while the question waits for an answer (its ``guard.confirm_timeout`` work is open), and
the answer, the timeout or an ``ACK <code>`` by SMS stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.paging.levels import audit, is_stopped
from bot.paging.messages import question_sms, sms_body
from bot.rollback.lifecycle import guard_confirm_key, question_owner
from storage.models import OPEN_WORK, Page, Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

QUESTION_REASON = "guard"  # the one ladder of a guard question


@dataclass(frozen=True)
class Subject:
    """One ladder's owner and what differs between a rollback's and a question's ladder."""

    owner: int | str  # the rollback id, or question_owner(release id): due-work and notice keys
    service: str
    channel: str | None
    label: str  # "ROLLBACK #12 checkout" / "GUARD checkout v3": how notices name it
    is_stopped: bool  # the rollback ended (other than failed) / the question is closed
    body: Callable[[str, str, str], str]  # (event, summary, ack code) -> the SMS
    rollback: Rollback | None = None
    question_id: int | None = None

    @property
    def rollback_id(self) -> int | None:
        return self.rollback.id if self.rollback is not None else None

    def audit(self, deps: Deps, kind: str, detail: dict[str, Any]) -> None:
        if self.rollback is not None:
            audit(deps, kind, self.rollback, detail)
            return
        deps.audit(kind, self.service, channel_id=self.channel, question=self.question_id, **detail)

    def pages(self, deps: Deps, reason: str | None = None) -> list[Page]:
        """The ladder's pages (of ``reason`` for a rollback: older data had several)."""
        if self.rollback_id is not None:
            return deps.repo.list_pages(self.rollback_id, reason)
        assert self.question_id is not None
        return deps.repo.list_question_pages(self.question_id)


def rollback_subject(deps: Deps, rollback: Rollback) -> Subject:
    assert rollback.id is not None
    rollback_id, service = rollback.id, rollback.service
    found = deps.catalog.get(service)
    return Subject(
        owner=rollback_id,
        service=service,
        channel=rollback.channel_id or (found.channel if found else None),
        label=f"ROLLBACK #{rollback_id} {service}",
        is_stopped=is_stopped(rollback),
        body=lambda event, summary, code: sms_body(rollback_id, service, event, summary, code),
        rollback=rollback,
    )


def question_subject(
    deps: Deps, release_id: int, shown: Callable[[str], str] = str
) -> Subject | None:
    """The guard question of guarded release ``release_id`` (None: release or service gone);
    ``shown`` names the channel in its SMS (``#checkout-alerts``; by default its id)."""
    release = deps.repo.guarded_release(release_id)
    service = deps.catalog.get(release.service) if release is not None else None
    if release is None or service is None:
        return None
    question = deps.repo.get_work(guard_confirm_key(release_id))
    channel = service.channel
    name = service.name
    return Subject(
        owner=question_owner(release_id),
        service=name,
        channel=service.channel,
        label=f"GUARD {name} {release.release}",
        is_stopped=question is None or question.status not in OPEN_WORK,
        body=lambda _event, summary, code: question_sms(name, summary, shown(channel), code),
        question_id=release_id,
    )


def subject_of(
    deps: Deps, payload: dict[str, Any], shown: Callable[[str], str] = str
) -> Subject | None:
    """The subject a ladder's due work names (``question_id`` or ``rollback_id``)."""
    if payload.get("question_id") is not None:
        return question_subject(deps, int(payload["question_id"]), shown)
    rollback = deps.repo.get_rollback(int(payload["rollback_id"]))
    return rollback_subject(deps, rollback) if rollback is not None else None


def subject_of_page(deps: Deps, page: Page) -> Subject | None:
    if page.question_id is not None:
        return question_subject(deps, page.question_id)
    rollback = deps.repo.get_rollback(page.rollback_id) if page.rollback_id else None
    return rollback_subject(deps, rollback) if rollback is not None else None
