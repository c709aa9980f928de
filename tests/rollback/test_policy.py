"""Approval rules, table-driven: who may approve, reject or withdraw a planned rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog.load import Service, parse_catalog
from bot.rollback import policy

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def service(approval: str = "") -> Service:
    text = (
        "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    deployment: checkout-api\n"
        "    approvers: [U0APPROVER1, U0APPROVER2, {usergroup: S0SRE}]\n"
        "    responders: [U0ONCALL1]\n" + approval
    )
    found = parse_catalog(text, "t.yaml").get("checkout")
    assert found is not None
    return found


def request(
    status: str = "pending_approval", by: str = "U0APPROVER1", expires_in: float = 30
) -> policy.Request:
    return policy.Request(status, by, NOW + timedelta(minutes=expires_in), 1)


@pytest.mark.parametrize(
    ("user", "req", "approval", "groups", "refused_because"),
    [
        ("U0APPROVER2", request(), "", (), None),
        # two-person rule (default on): the requester cannot approve their own request
        ("U0APPROVER1", request(), "", (), "two-person rule"),
        # ... unless the service turns it off
        ("U0APPROVER1", request(), "    approval: {two_person_rule: false}\n", (), None),
        ("U0STRANGER", request(), "", (), "not an approver"),
        ("U0ONCALL1", request(), "", (), "not an approver"),  # responders are not approvers
        ("U0GROUPIE", request(), "", ("U0GROUPIE",), None),  # member of the S0SRE user group
        ("U0GROUPIE", request(), "", (), "not an approver"),  # ... and not without the group
        ("U0APPROVER2", request(expires_in=-1), "", (), "expired"),
        ("U0APPROVER2", request(expires_in=0), "", (), "expired"),  # expiry is inclusive
        ("U0APPROVER2", request("expired"), "", (), "expired"),
        ("U0APPROVER2", request("rejected"), "", (), "rejected"),  # rejected, then approved
        ("U0APPROVER2", request("running"), "", (), "not waiting for approval"),
    ],
)
def test_who_may_approve(
    user: str,
    req: policy.Request,
    approval: str,
    groups: tuple[str, ...],
    refused_because: str | None,
) -> None:
    refusal = policy.approval_refusal(service(approval), user, req, NOW, groups)
    if refused_because is None:
        assert refusal is None
    else:
        assert refusal is not None and refused_because in refusal


def test_a_refusal_says_who_can_approve() -> None:
    refusal = policy.approval_refusal(service(), "U0STRANGER", request(), NOW)
    assert refusal is not None
    assert "<@U0APPROVER1>" in refusal and "<!subteam^S0SRE>" in refusal


def test_the_two_person_refusal_never_offers_the_requester_as_someone_else() -> None:
    refusal = policy.approval_refusal(service(), "U0APPROVER1", request(by="U0APPROVER1"), NOW)
    assert refusal is not None and "someone else" in refusal
    assert "<@U0APPROVER1>" not in refusal
    assert "<@U0APPROVER2>" in refusal and "<!subteam^S0SRE>" in refusal


@pytest.mark.parametrize(
    ("votes", "required", "approved"),
    [
        ([], 1, False),
        (["U1"], 1, True),
        (["U1"], 2, False),  # min_approvals 2
        (["U1", "U1"], 2, False),  # the same person twice is one approval
        (["U1", "U2"], 2, True),
    ],
)
def test_enough_approvals(votes: list[str], required: int, approved: bool) -> None:
    assert policy.is_approved(votes, required) is approved


@pytest.mark.parametrize(
    ("user", "status", "refused"),
    [
        ("U0APPROVER2", "pending_approval", False),
        ("U0APPROVER1", "pending_approval", False),  # the requester may withdraw
        ("U0STRANGER", "pending_approval", True),
        ("U0APPROVER2", "approved", True),
    ],
)
def test_who_may_reject(user: str, status: str, refused: bool) -> None:
    refusal = policy.rejection_refusal(service(), user, request(status))
    assert (refusal is not None) is refused


def test_catalog_policy_defaults_and_overrides() -> None:
    s = service("    approval: {min_approvals: 2}\n")
    assert s.approval.min_approvals == 2
    assert s.approval.two_person_rule is True  # the default kept where not overridden
    assert s.approval.expiry_minutes == 30
    assert policy.approver_groups(s) == ["S0SRE"]


@pytest.mark.parametrize(
    ("user", "groups", "may"),
    [
        ("U0ONCALL1", (), True),  # a responder
        ("U0APPROVER2", (), True),  # an approver
        ("U0GROUPIE", ("U0GROUPIE",), True),  # an approver through the S0SRE group
        ("U0REQUESTER", (), False),  # asked for the rollback, owns none of its steps
        ("U0STRANGER", (), False),
    ],
)
def test_who_may_continue_a_manual_gate(user: str, groups: tuple[str, ...], may: bool) -> None:
    assert policy.may_continue(service(), user, groups) is may
