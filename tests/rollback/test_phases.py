"""Partial rollback by phase (issue #16): the `--phases` grammar, the subset a plan makes of it,
and the rules that keep a subset from making things worse (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog.load import load_catalog, parse_catalog
from bot.execution.steps.table import plan_rows
from bot.rollback.command import USAGE, Command, UsageError, parse_command
from bot.rollback.phases import (
    NOT_SELECTED,
    PhaseSelection,
    check_subset,
    select_phases,
    stored_selection,
)
from bot.rollback.plan import Plan
from bot.rollback.safety import Refusal

EXAMPLE = Path(__file__).parents[2] / "rollback.example.yaml"
BILLING_PHASES = [
    "preparation",
    "stop_traffic",
    "database",
    "application",
    "cache",
    "traffic_restoration",
    "verification",
]


def plan_of(service: str) -> Plan:
    return load_catalog(EXAMPLE).services[service].plan()


def subset(service: str, *names: str, is_forced: bool = False) -> list[str]:
    plan = plan_of(service)
    return check_subset(plan, select_phases(plan, names, service), is_forced=is_forced)


# --- grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "run checkout --immediate --phases application,verification bad release",
            Command(
                "run",
                service="checkout",
                reason="bad release",
                is_immediate=True,
                phases=("application", "verification"),
            ),
            id="run",
        ),
        pytest.param(
            "plan checkout --phases application --at 22:00 db is fine",
            Command(
                "plan", service="checkout", at="22:00", reason="db is fine", phases=("application",)
            ),
            id="plan",
        ),
        pytest.param(
            "run checkout --dry-run --phases Stop-Traffic,APPLICATION",
            Command(
                "run", service="checkout", is_dry_run=True, phases=("stop_traffic", "application")
            ),
            id="case and dashes",
        ),
        pytest.param(
            "run checkout --immediate --phases application, verification why",
            Command(
                "run",
                service="checkout",
                reason="why",
                is_immediate=True,
                phases=("application", "verification"),
            ),
            id="a list typed with a space",
        ),
        pytest.param(
            "run checkout --immediate --phases verification,application,verification x",
            Command(
                "run",
                service="checkout",
                reason="x",
                is_immediate=True,
                phases=("verification", "application"),
            ),
            id="each once",
        ),
        pytest.param(
            "run checkout --immediate --force --phases 'application , verification' x",
            Command(
                "run",
                service="checkout",
                reason="x",
                is_immediate=True,
                is_forced=True,
                phases=("application", "verification"),
            ),
            id="quoted",
        ),
    ],
)
def test_phases_are_parsed(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run checkout --immediate --phases", "`--phases` needs a value"),
        ("run checkout --phases --immediate", "`--phases` needs a value"),
        ("run checkout --immediate --phases '' x", "`--phases` names no phase"),
        ("run checkout --immediate --phases ,", "`--phases` names no phase"),
        ("run checkout --phases app!cation", "`app!cation` is not a phase name"),
        ("run checkout --phases a --phases b", "`--phases` is given twice"),
        ("assess checkout --phases application", "`/rollback assess` takes a service name"),
    ],
)
def test_bad_phases_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_command(text)
    assert message in str(exc.value)


def test_a_mistyped_option_suggests_phases() -> None:
    with pytest.raises(UsageError) as exc:
        parse_command("run checkout --immediate --phase application")
    assert exc.value.suggestion == "--phases"


@pytest.mark.parametrize("verb", ["plan", "run"])
def test_usage_documents_phases(verb: str) -> None:
    (line,) = [ln for ln in USAGE.splitlines() if ln.startswith(f"/rollback {verb} ")]
    assert "[--phases <p,…>]" in line


# --- the subset a plan makes ------------------------------------------------------------------


def test_no_phases_select_the_whole_plan() -> None:
    selection = select_phases(plan_of("checkout"), (), "checkout")
    assert selection == PhaseSelection(("preparation", "application", "verification"))
    assert not selection.is_partial
    assert check_subset(plan_of("checkout"), selection, is_forced=False) == []


def test_a_subset_runs_in_plan_order_whatever_the_order_typed() -> None:
    selection = select_phases(plan_of("checkout"), ("verification", "application"), "checkout")
    assert selection.selected == ("application", "verification")
    assert selection.skipped == ("preparation",)
    assert selection.describe() == "application, verification (skipped: preparation)"


def test_an_unknown_phase_suggests_the_nearest_and_lists_the_plans() -> None:
    with pytest.raises(UsageError) as exc:
        select_phases(plan_of("checkout"), ("aplication",), "checkout")
    assert str(exc.value) == (
        "`aplication` is not a phase of checkout's plan: did you mean `application`? Its"
        " phases: `preparation`, `application`, `verification`"
    )
    assert exc.value.suggestion == "application"


def test_a_phase_the_plan_has_no_steps_in_is_named_as_such() -> None:
    with pytest.raises(UsageError) as exc:
        select_phases(plan_of("checkout"), ("application", "database"), "checkout")
    assert "checkout's plan has no steps in the `database` phase" in str(exc.value)
    assert "Its phases: `preparation`, `application`, `verification`" in str(exc.value)


def test_nothing_close_gets_no_guess() -> None:
    with pytest.raises(UsageError) as exc:
        select_phases(plan_of("checkout"), ("zzz",), "checkout")
    assert "did you mean" not in str(exc.value) and exc.value.suggestion is None


# --- the rules --------------------------------------------------------------------------------


def test_seed_001_database_ok_application_issues_on_a_plan_without_a_point_of_no_return() -> None:
    assert subset("checkout", "application", "verification") == []


def test_verification_cannot_be_left_out_of_a_subset_that_changes_something() -> None:
    for forced in (False, True):  # not even an approver: nothing would say it worked
        with pytest.raises(Refusal) as exc:
            subset("checkout", "application", is_forced=forced)
        assert "`--phases application` leaves out verification" in str(exc.value)
        assert "Add it: `--phases application,verification`" in str(exc.value)


@pytest.mark.parametrize("phases", [("verification",), ("preparation",)])
def test_read_only_subsets_need_no_verification(phases: tuple[str, ...]) -> None:
    assert subset("checkout", *phases) == []


def test_a_plan_without_verification_is_not_asked_for_one() -> None:
    plan = plan_of("storefront")  # blue-green with no health URL or signals
    assert "verification" not in plan.phases
    assert check_subset(plan, select_phases(plan, ["stop_traffic"], "s"), is_forced=False) == []


def test_skipping_the_point_of_no_return_and_running_later_phases_needs_force() -> None:
    assert plan_of("billing").phases == BILLING_PHASES
    with pytest.raises(Refusal) as exc:
        subset("billing", "application", "verification")
    text = str(exc.value)
    assert text.startswith(
        "`--phases application,verification` skips the point of no return (step *Downgrade"
        " schema to v2.0.5*, database phase) but runs application"
    )
    assert text.endswith("an approver can confirm it with `--force`")
    assert subset("billing", "application", "verification", is_forced=True) == [
        "skips the point of no return (step *Downgrade schema to v2.0.5*, database phase) and"
        " runs application after it: forced by an approver"
    ]


def test_running_the_point_of_no_return_without_what_precedes_it_needs_force() -> None:
    names = ("database", "application", "cache", "traffic_restoration", "verification")
    with pytest.raises(Refusal) as exc:
        subset("billing", *names)
    assert "runs the point of no return (step *Downgrade schema to v2.0.5*, database phase)" in (
        str(exc.value)
    )
    assert "without preparation, stop_traffic, which the plan runs before it" in str(exc.value)
    assert "Select them too, or an approver can override with `--force`" in str(exc.value)
    (warning,) = subset("billing", *names, is_forced=True)
    assert warning.endswith("without preparation, stop_traffic: forced by an approver")


def test_stopping_before_the_point_of_no_return_is_the_safe_side() -> None:
    assert subset("billing", "preparation") == []
    # verification is read-only: it runs "after" the point of no return without moving it
    assert subset("billing", "preparation", "verification") == []


def test_stopping_traffic_without_restoring_it_needs_force() -> None:
    with pytest.raises(Refusal) as exc:
        subset("billing", "preparation", "stop_traffic", "verification")
    assert "stops traffic but leaves out traffic_restoration" in str(exc.value)
    assert subset("billing", "preparation", "stop_traffic", "verification", is_forced=True) == [
        "stops traffic without restoring it: forced by an approver"
    ]


def test_leaving_out_only_the_cleanup_is_fine() -> None:
    plan = (
        parse_catalog(
            "defaults:\n  channel: C0DEPLOYS\nservices:\n  svc:\n    deployment: svc-api\n"
            "    phases:\n      application: [{kind: rollout_undo}]\n"
            "      verification: [{kind: wait, seconds: 1}]\n"
            "      cleanup: [{kind: scale, deployment: old, replicas: 0}]\n",
            "t.yaml",
        )
        .services["svc"]
        .plan()
    )
    selection = select_phases(plan, ["application", "verification"], "svc")
    assert check_subset(plan, selection, is_forced=False) == []


def test_whole_plans_pass_untouched_even_with_a_point_of_no_return() -> None:
    assert subset("billing", *BILLING_PHASES) == []


# --- what is stored ---------------------------------------------------------------------------


def test_the_skipped_phases_steps_are_stored_as_skipped() -> None:
    plan = plan_of("checkout")
    rows = plan_rows(plan, select_phases(plan, ["application", "verification"], "c").skipped)
    assert [(r.phase, r.status, r.error) for r in rows] == [
        ("preparation", "skipped", NOT_SELECTED),
        ("application", "pending", None),
        ("application", "pending", None),
        ("verification", "pending", None),
        ("verification", "pending", None),
    ]
    assert all(r.status == "pending" for r in plan_rows(plan))


def test_a_stored_selection_is_read_back_from_the_rollback_and_its_steps() -> None:
    steps = ["preparation", "application", "application", "verification"]
    assert stored_selection(None, steps) is None
    assert stored_selection(["application", "verification"], steps) == PhaseSelection(
        ("application", "verification"), ("preparation",)
    )
