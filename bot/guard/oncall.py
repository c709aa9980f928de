"""Paging the service's on-call when the guard asks "Roll back now / Keep release" (issue 14).

A question pages through the same escalation ladder as a rollback (``bot.paging``): its pages
belong to the question (``pages.question_id``), level 1 at once, each next level at its
``after_minutes``, Twilio outages retried, the thread told who was paged, that SMS paging is
disabled or that Twilio failed (numbers masked). The ladder starts once the question is
posted (never for a question nobody can see), as ``page.start`` due work keyed by the
question, so a repeated ask, a second replica or a restart pages nobody twice. Answering the
question, its timeout, or an ``ACK <code>`` SMS stops it: a level still waiting is cancelled,
and a page not yet sent is refused in the database once the question is closed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.paging.levels import TOLD
from bot.paging.subjects import QUESTION_REASON
from bot.rollback.lifecycle import (
    DueKind,
    GuardDueKind,
    ladder_prefix,
    page_start_key,
    question_owner,
)
from storage.models import DueWork

if TYPE_CHECKING:
    from bot.deps import Deps
    from storage.guard_models import GuardedRelease

log = logging.getLogger(__name__)


def page_question(deps: Deps, release_id: int, reason: str) -> None:
    """Open the question's ladder (once per question)."""
    key = page_start_key(question_owner(release_id), QUESTION_REASON)
    payload = {"question_id": release_id, "reason": QUESTION_REASON, "summary": reason}
    if deps.due.schedule(DueKind.PAGE_START, key, deps.clock(), payload):
        deps.kick_due_work()  # now rather than at the next tick


def stop_paging(deps: Deps, release: GuardedRelease, why: str) -> str | None:
    """The question was answered or timed out: what is left of its ladder is cancelled. Returns
    a line for the thread when someone was paged ("Paging stopped: …"), else None."""
    assert release.id is not None
    now, owner = deps.clock(), question_owner(release.id)
    deps.repo.cancel_work(page_start_key(owner, QUESTION_REASON), now)
    cancelled = deps.repo.cancel_work_with_prefix(ladder_prefix(owner, QUESTION_REASON), now)
    paged = [p for p in deps.repo.list_question_pages(release.id) if p.status in TOLD]
    deps.audit("guard.paging_stopped", release.service, why=why, cancelled=cancelled)
    if not paged or any(p.acknowledged_at for p in paged):
        return None
    names = ", ".join(dict.fromkeys(p.contact_name for p in paged))
    return f":octagonal_sign: Paging stopped ({why}); {names} had been paged."


def _legacy_page(deps: Deps, item: DueWork) -> None:
    """``guard.page`` work stored before questions used the ladder: open the ladder."""
    page_question(deps, int(item.payload["release_id"]), str(item.payload.get("reason") or ""))


def install(deps: Deps) -> None:
    deps.due.register(GuardDueKind.PAGE, lambda item: _legacy_page(deps, item))
