"""Checks across a resolved catalog: approvals no request can get, thresholds that never fire.

Each problem carries the ``file:line`` of what to change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bot.catalog.service import Catalog, Service
from bot.catalog.spec import CatalogSpec
from bot.catalog.yaml_lines import Path_, line_for
from bot.rollback.assess import Thresholds


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listed_approvers(svc: Service) -> list[str] | None:
    """The approvers' user ids; None when a user group is listed (its size is not known)."""
    users = [a for a in svc.spec.approvers if isinstance(a, str)]
    return users if len(users) == len(svc.spec.approvers) else None


def impossible_approvals(catalog: Catalog, lines: Mapping[Path_, int]) -> list[str]:
    """A planned rollback that no request can ever get approved: fewer approvers than votes.

    (A requester never approves their own request under the two-person rule, but a requester
    who is not an approver leaves every listed approver free to vote.)"""
    out = []
    for name, svc in catalog.services.items():
        users = _listed_approvers(svc)
        needed = svc.approval.min_approvals
        if users and needed > len(set(users)):
            line = line_for(("services", name, "approvers"), lines)
            out.append(
                f"{catalog.source}:{line}: services.{name}: approval needs"
                f" {_count(needed, 'approval')} but only {_count(len(set(users)), 'approver')}"
                f" {'is' if len(set(users)) == 1 else 'are'} listed, so no planned rollback can"
                " ever be approved (list more approvers or a user group, or lower"
                " approval.min_approvals)"
            )
    return out


def approvals_an_approver_cannot_get(catalog: Catalog, lines: Mapping[Path_, int]) -> Iterator[str]:
    """Possible, but not for everyone: under the two-person rule an approver who requests
    leaves one approver fewer to vote."""
    for name, svc in catalog.services.items():
        users = _listed_approvers(svc)
        needed = svc.approval.min_approvals
        if users and svc.approval.two_person_rule and needed == len(set(users)):
            line = line_for(("services", name, "approvers"), lines)
            yield (
                f"{catalog.source}:{line}: warning: services.{name}: approval needs"
                f" {_count(needed, 'approval')} and {_count(needed, 'approver')} are listed:"
                " a request made by one of them can never be approved (the two-person rule"
                " keeps the requester from voting)"
            )


def _threshold_problems(t: Thresholds) -> dict[str, str]:
    problems = {}
    if t.error_rate_high > t.error_rate_critical:
        problems["error_rate"] = "error_rate: high is above critical"
    if not t.latency_p95_medium <= t.latency_p95_high <= t.latency_p95_critical:
        problems["latency_p95_seconds"] = "latency_p95_seconds: needs medium ≤ high ≤ critical"
    return problems


def contradictory_thresholds(
    spec: CatalogSpec, catalog: Catalog, lines: Mapping[Path_, int]
) -> list[str]:
    """A high threshold above the critical one would never fire critical: say so where it is
    written (under defaults, or in the service that wrote that signal's thresholds)."""
    out = []
    defaults = _threshold_problems(spec.defaults.thresholds.apply(Thresholds()))
    for signal, problem in defaults.items():
        line = line_for(("defaults", "thresholds", signal), lines)
        out.append(f"{catalog.source}:{line}: defaults.thresholds: {problem}")
    for name, service in catalog.services.items():
        written = service.spec.thresholds.model_fields_set
        for signal, problem in _threshold_problems(service.thresholds).items():
            if signal in written:
                line = line_for(("services", name, "thresholds", signal), lines)
                out.append(f"{catalog.source}:{line}: services.{name}.thresholds: {problem}")
    return out
