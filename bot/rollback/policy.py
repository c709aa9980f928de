"""Who may do what (pure). User groups in ``approvers`` are resolved by the caller."""

from __future__ import annotations

from collections.abc import Iterable

from bot.catalog import Service


def approver_ids(service: Service, group_members: Iterable[str] = ()) -> set[str]:
    return {a for a in service.spec.approvers if isinstance(a, str)} | set(group_members)


def may_run_immediately(service: Service, user: str) -> bool:
    """Responders run immediate rollbacks without approval (recorded as such)."""
    return user in service.spec.responders


def may_force(service: Service, user: str, group_members: Iterable[str] = ()) -> bool:
    """Only an approver may take a rollback past the point of no return."""
    return user in approver_ids(service, group_members)


def may_abort(service: Service, user: str, requested_by: str) -> bool:
    return user == requested_by or user in service.spec.responders or user in approver_ids(service)


def who_may_run(service: Service) -> str:
    people = ", ".join(f"<@{u}>" for u in service.spec.responders)
    return people or "nobody (the catalog lists no responders for this service)"
