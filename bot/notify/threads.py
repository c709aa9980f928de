"""Where a notice about a rollback goes: in its service channel, the thread of the rollback's
progress message (the one top-level message of a rollback there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.notify.progress import SlackProgress
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.deps import Deps


def anchor_of(deps: Deps, rollback: Rollback, channel: str) -> str | None:
    """Where a notice about ``rollback`` goes in ``channel``: the thread of its progress
    message when ``channel`` is where that message is (posted now if need be), else None."""
    if rollback.id is None or channel != (rollback.channel_id or _service_channel(deps, rollback)):
        return None
    progress = deps.engine.progress
    if isinstance(progress, SlackProgress):
        return progress.anchor(rollback.id)
    fresh = deps.repo.get_rollback(rollback.id)
    return fresh.progress_ts if fresh is not None else None


def _service_channel(deps: Deps, rollback: Rollback) -> str | None:
    service = deps.catalog.get(rollback.service)
    return service.channel if service is not None else None
