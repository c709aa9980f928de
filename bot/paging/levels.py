"""The ladder's facts: its levels, what a page's status means, what the ladder announces.

Pure reads (of the catalog entry, the pages, the due work) plus ``audit`` for the ladder's events
(on the rollback's channel); sending and posting live in ``texting`` and ``notices``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.adapters.twilio import BAD_NUMBER_CODES
from bot.catalog.load import Service
from bot.paging.messages import Contact
from bot.rollback.lifecycle import RollbackStatus, page_start_key
from bot.runtime.logs import mask_phone
from storage.models import DueWork, Page, Rollback
from storage.repo.pages import LADDER_STOPPING

if TYPE_CHECKING:
    from bot.deps import Deps

UNREACHED = ("failed", "undelivered")
NOT_PAGED = ("failed", "queued")
# How grave each paging event is: a graver one joining a ladder is news to text; a milder one
# (or the same) adds nothing.
EVENT_RANK = {"critical": 0, "sla": 1, "failed": 2}
TOLD = ("sending", "sent", "delivered")  # the phone got (or may have got) this page's SMS


@dataclass(frozen=True)
class Level:
    number: int
    after_minutes: int
    contacts: tuple[tuple[int, Contact], ...]  # (position in the oncall list, contact)

    @property
    def names(self) -> str:
        return ", ".join(contact.name for _, contact in self.contacts)


def ladder_levels(service: Service) -> list[Level]:
    """The service's on-call list grouped into levels (same ``after_minutes`` = one level)."""
    grouped: dict[int, list[tuple[int, Contact]]] = {}
    for position, person in enumerate(service.spec.oncall):
        grouped.setdefault(person.after_minutes, []).append(
            (position, Contact(person.name, person.phone))
        )
    return [
        Level(number, after, tuple(contacts))
        for number, (after, contacts) in enumerate(sorted(grouped.items()), start=1)
    ]


def contact_of(page: Page) -> Contact:
    return Contact(page.contact_name, page.phone)


def shown_contacts(pages: Sequence[Page]) -> str:
    """The paged people as a notice names them (phones masked)."""
    return ", ".join(contact_of(p).shown for p in pages)


def is_unreachable(page: Page) -> bool:
    """The contact cannot get this page: a bad number, or Twilio reported it undelivered.

    A page that failed because Twilio was down or refused our credentials says nothing about
    the contact, so it does not make the ladder skip ahead.
    """
    if page.status not in UNREACHED:
        return False
    return page.twilio_sid is not None or page.error_code in BAD_NUMBER_CODES


def is_stopped(rollback: Rollback) -> bool:
    """The rollback ended (other than failed): its ladder pages nobody any more."""
    return rollback.status in LADDER_STOPPING


def event_summary(rollback: Rollback, event: str, summary: str) -> str:
    """What an SMS about ``event`` says after the label: a failure says what failed."""
    if event == RollbackStatus.FAILED and rollback.error:
        return rollback.error
    return summary


def paged_work(deps: Deps, rollback_id: int, event: str) -> DueWork | None:
    """The ``page.start`` the notifications scheduled for ``event`` (None: never paged)."""
    return deps.repo.get_work(page_start_key(rollback_id, event))


def summary_of(work: DueWork | None) -> str:
    return str(work.payload.get("summary") or "") if work is not None else ""


def headline(deps: Deps, rollback: Rollback, ladder: str, summary: str) -> tuple[str, str]:
    """What the ladder's SMS and notices announce now, and its summary: the gravest news of the
    rollback so far (it failed; its SLA breach joined the ladder), else the ladder's own."""
    assert rollback.id is not None
    if rollback.status == RollbackStatus.FAILED:  # known here even before its page.start runs
        failed = RollbackStatus.FAILED
        return failed, event_summary(rollback, failed, f"Rollback of {rollback.service} FAILED")
    if EVENT_RANK.get(ladder, 0) < EVENT_RANK["sla"]:
        work = paged_work(deps, rollback.id, "sla")
        if work is not None and work.status != "cancelled":
            return "sla", summary_of(work)
    return ladder, summary


def ladder_of(pages: Sequence[Page]) -> str | None:
    """The reason of the rollback's ladder: that of its first page (one ladder a rollback)."""
    first = min(pages, key=lambda p: p.id or 0, default=None)
    return first.reason if first is not None else None


def page_detail(page: Page, error: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "reason": page.reason,
        "level": page.level,
        "contact": page.contact_name,
        "phone": mask_phone(page.phone),
    }
    if error:
        detail["error"] = mask_phone(error)
    return detail


def audit(deps: Deps, kind: str, rollback: Rollback, detail: dict[str, Any]) -> None:
    deps.audit(kind, rollback, channel_id=rollback.channel_id, **detail)
