"""What a planned rollback's request, its votes and its start share: the audit trail of the
request, who its approvers are, and the :class:`Answer` told to whoever acted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.catalog.load import Service
from bot.rollback import policy
from bot.rollback.lifecycle import Vote
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.deps import Deps


@dataclass(frozen=True)
class Answer:
    """What to tell the person who acted (ephemeral)."""

    text: str
    is_ok: bool = True


def request_of(r: Rollback) -> policy.Request:
    return policy.Request(r.status, r.requested_by, r.expires_at, r.required_approvals)


def approver_members(deps: Deps, service: Service) -> set[str]:
    return deps.groups.members(policy.approver_groups(service))


def approving_voters(deps: Deps, rollback_id: int) -> list[str]:
    """Who voted to approve, each once, sorted."""
    return sorted(
        {a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == Vote.APPROVE}
    )


def audit(
    deps: Deps,
    event: str,
    r: Rollback,
    actor: str | None,
    *,
    message_ts: str | None = None,
    **detail: object,
) -> None:
    """An audit event on the request; ``message_ts`` is the message a button was pressed on
    (Slack sends it, also when the press came before the request's ts was stored)."""
    deps.audit(
        event,
        r,
        actor,
        channel_id=r.approval_channel_id,
        message_ts=message_ts or r.approval_ts,
        **detail,
    )
