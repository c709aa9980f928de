"""Who may do what (pure). User groups in ``approvers`` are resolved by the caller.

The rules read a few fields of a catalog service; they name them in the protocols below rather
than importing the catalog, so the domain stands below it (callers pass a ``Service``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.rollback.lifecycle import RollbackStatus
from bot.rollback.text import status_verb


class ApproverGroup(Protocol):
    """A Slack user group listed as approvers (``{usergroup: S…}`` in the catalog)."""

    @property
    def usergroup(self) -> str: ...


class People(Protocol):
    """Who a service's catalog entry names: approvers (user ids or groups) and responders."""

    @property
    def approvers(self) -> Sequence[str | ApproverGroup]: ...

    @property
    def responders(self) -> Sequence[str]: ...


class ApprovalRules(Protocol):
    @property
    def two_person_rule(self) -> bool: ...

    @property
    def expiry_minutes(self) -> int: ...


class Governed(Protocol):
    """What the rules read of a service (``bot.catalog.load.Service`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> People: ...

    @property
    def approval(self) -> ApprovalRules: ...


class Services(Protocol):
    """A catalog, as far as the rules go: its services by name."""

    @property
    def services(self) -> Mapping[str, Governed]: ...


def approver_ids(service: Governed, group_members: Iterable[str] = ()) -> set[str]:
    return {a for a in service.spec.approvers if isinstance(a, str)} | set(group_members)


def approver_groups(service: Governed) -> list[str]:
    """The user-group ids listed as approvers (their members are looked up through Slack)."""
    return [a.usergroup for a in service.spec.approvers if not isinstance(a, str)]


def all_approver_groups(catalog: Services) -> list[str]:
    """Every user group any service lists as approvers (kept warm by the scheduler)."""
    groups = (g for service in catalog.services.values() for g in approver_groups(service))
    return list(dict.fromkeys(groups))


def may_run_immediately(service: Governed, user: str) -> bool:
    """Responders run immediate rollbacks without approval (recorded as such)."""
    return user in service.spec.responders


def may_rehearse(service: Governed, user: str) -> bool:
    """Responders rehearse a rollback in staging: it changes staging, so not everyone may."""
    return user in service.spec.responders


def may_force(service: Governed, user: str, group_members: Iterable[str] = ()) -> bool:
    """Only an approver may take a rollback past the point of no return."""
    return user in approver_ids(service, group_members)


def may_abort(
    service: Governed, user: str, requested_by: str, group_members: Iterable[str] = ()
) -> bool:
    return (
        user == requested_by
        or user in service.spec.responders
        or user in approver_ids(service, group_members)
    )


def may_continue(service: Governed, user: str, group_members: Iterable[str] = ()) -> bool:
    """A manual gate's Continue moves a running rollback on: responders and approvers, not a
    requester who is neither (who asked for a rollback does not by that own its steps)."""
    return user in service.spec.responders or user in approver_ids(service, group_members)


def who_may_run(service: Governed) -> str:
    people = ", ".join(f"<@{u}>" for u in service.spec.responders)
    return people or "nobody (the catalog lists no responders for this service)"


def who_may_approve(service: Governed, *, besides: str | None = None) -> str:
    """Approvers as Slack mentions (users and user groups), leaving out ``besides`` (the
    requester, under the two-person rule: they are not "someone else")."""
    names = [f"<@{a}>" for a in service.spec.approvers if isinstance(a, str) and a != besides]
    names += [f"<!subteam^{g}>" for g in approver_groups(service)]
    if names:
        return ", ".join(names)
    if besides is not None:
        return "nobody else (the catalog lists no other approver: add one, or ask a responder)"
    return "nobody (the catalog lists no approvers for this service)"


@dataclass(frozen=True)
class Request:
    """What the approval rules need to know about a rollback request."""

    status: str  # a RollbackStatus value, as stored
    requested_by: str
    expires_at: datetime | None
    required_approvals: int


def is_expired(request: Request, now: datetime) -> bool:
    return request.expires_at is not None and now >= request.expires_at


def approval_refusal(
    service: Governed,
    user: str,
    request: Request,
    now: datetime,
    group_members: Collection[str] = (),
) -> str | None:
    """None when ``user`` may approve the request now, else why not (said to them in Slack)."""
    if request.status == RollbackStatus.REJECTED:
        return "it was rejected; a new request is needed"
    if request.status == RollbackStatus.EXPIRED or (
        request.status == RollbackStatus.PENDING_APPROVAL and is_expired(request, now)
    ):
        minutes = service.approval.expiry_minutes
        return f"it expired (requests are valid for {minutes} minutes); ask for a new one"
    if request.status != RollbackStatus.PENDING_APPROVAL:
        return f"it is not waiting for approval (it {status_verb(request.status)})"
    if user not in approver_ids(service, group_members):
        return f"you are not an approver of {service.name}; approvers: {who_may_approve(service)}"
    if user == request.requested_by and service.approval.two_person_rule:
        return (
            "you requested it, and the two-person rule needs someone else:"
            f" {who_may_approve(service, besides=user)}"
        )
    return None


def rejection_refusal(
    service: Governed,
    user: str,
    request: Request,
    group_members: Collection[str] = (),
) -> str | None:
    """None when ``user`` may reject (an approver) or withdraw (the requester) the request."""
    if request.status != RollbackStatus.PENDING_APPROVAL:
        return f"it is not waiting for approval (it {status_verb(request.status)})"
    if user == request.requested_by or user in approver_ids(service, group_members):
        return None
    return f"only approvers of {service.name} may reject it: {who_may_approve(service)}"


def is_approved(approvals: Iterable[str], required: int) -> bool:
    """Enough distinct approve votes."""
    return len(set(approvals)) >= required
