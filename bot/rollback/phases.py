"""Partial rollbacks by phase (seed 001, "Partial Rollback Capability"): which of a plan's phases
``--phases`` selects, and the rules that keep a subset from making things worse.

Pure. A subset runs the selected phases in plan order; the others are stored as skipped steps.
The rules (checked with the others before anything starts, in ``bot/execution/preflight.py``):

- a subset that changes anything keeps the plan's verification: an unverified rollback could
  report success on a service that is still broken (nobody may override this);
- the point of no return (the plan's ``irreversible`` step) keeps its place: a subset may not run
  it without the phases the plan runs before it, nor skip it and run later phases that change
  something (the plan never makes that state: e.g. the old application on the new schema);
- a subset that stops traffic keeps the plan's traffic restoration.

The last two need an approver's ``--force``, like crossing the catalog's ``point_of_no_return``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.rollback.command import UsageError, closest
from bot.rollback.plan import PHASES, Plan
from bot.rollback.safety import Refusal

# Step kinds that only read or wait (a new kind counts as changing until it is listed here).
READ_ONLY_KINDS = frozenset(
    {"snapshot", "wait_rollout", "http_check", "prometheus_gate", "wait", "manual_gate"}
)
NOT_SELECTED = "not run: phase not selected (--phases)"  # the skipped steps' stored error
VERIFICATION = "verification"
OVERRIDE = "or an approver can override with `--force`"


@dataclass(frozen=True)
class PhaseSelection:
    """The plan's phases a rollback runs and those it skips, each in plan order."""

    selected: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    @property
    def is_partial(self) -> bool:
        return bool(self.skipped)

    def describe(self) -> str:
        """``application, verification (skipped: preparation, database)``."""
        run = ", ".join(self.selected)
        return f"{run} (skipped: {', '.join(self.skipped)})" if self.skipped else run


def select_phases(plan: Plan, names: Sequence[str], service: str) -> PhaseSelection:
    """The selection ``names`` (as parsed by the grammar; empty: every phase) makes of
    ``plan``; UsageError naming the plan's phases when one is not among them."""
    phases = plan.phases
    if not names:
        return PhaseSelection(tuple(phases))
    listing = ", ".join(f"`{p}`" for p in phases) or "none"
    for name in names:
        if name in phases:
            continue
        if name in PHASES:
            raise UsageError(
                f"{service}'s plan has no steps in the `{name}` phase. Its phases: {listing}"
            )
        guess = closest(name, phases)
        hint = f": did you mean `{guess}`?" if guess else ""
        raise UsageError(
            f"`{name}` is not a phase of {service}'s plan{hint} Its phases: {listing}", guess
        )
    selected = tuple(p for p in phases if p in names)
    return PhaseSelection(selected, tuple(p for p in phases if p not in names))


def stored_selection(
    selected: Sequence[str] | None, step_phases: Iterable[str]
) -> PhaseSelection | None:
    """A stored rollback's selection (its ``phases`` and its steps' phases); None when it runs
    every phase of its plan."""
    if not selected:
        return None
    present = set(step_phases)
    order = [p for p in PHASES if p in present]
    return PhaseSelection(
        tuple(p for p in order if p in selected), tuple(p for p in order if p not in selected)
    )


def changes_something(plan: Plan, phase: str) -> bool:
    return any(s.phase == phase and s.kind not in READ_ONLY_KINDS for s in plan.steps)


def check_subset(plan: Plan, selection: PhaseSelection, *, is_forced: bool) -> list[str]:
    """The rules of the module docstring: a :class:`Refusal`, or (for an approver's
    ``--force``) the warnings to say aloud. A whole plan passes unchanged."""
    if not selection.is_partial:
        return []
    typed = f"`--phases {','.join(selection.selected)}`"
    changing = [p for p in selection.selected if changes_something(plan, p)]
    if VERIFICATION in selection.skipped and changing:
        raise Refusal(
            f"{typed} leaves out verification: a rollback nobody verifies can report success"
            " while the service is still broken. Add it:"
            f" `--phases {','.join([*selection.selected, VERIFICATION])}`"
        )
    problems = _point_of_no_return(plan, selection, changing) + _traffic(plan, selection)
    if problems and not is_forced:
        raise Refusal(f"{typed} {problems[0][0]}")
    return [f"{warning}: forced by an approver" for _, warning in problems]


def _point_of_no_return(
    plan: Plan, selection: PhaseSelection, changing: list[str]
) -> list[tuple[str, str]]:
    """(refusal, warning) when the subset moves the plan's point of no return."""
    ponr = plan.point_of_no_return
    if ponr is None:
        return []
    order = plan.phases
    where = order.index(ponr.phase)
    step = f"the point of no return (step *{ponr.name}*, {ponr.phase} phase)"
    if ponr.phase in selection.selected:
        before = [p for p in order[:where] if p in selection.skipped]
        if not before:
            return []
        listed = ", ".join(before)
        return [
            (
                f"runs {step} without {listed}, which the plan runs before it. Select"
                f" {'it' if len(before) == 1 else 'them'} too, {OVERRIDE}",
                f"runs {step} without {listed}",
            )
        ]
    after = [p for p in changing if order.index(p) > where]
    if not after:
        return []  # stops before it: the safe side
    listed = ", ".join(after)
    return [
        (
            f"skips {step} but runs {listed}, which the plan runs only after it: the service"
            " could end up in a state the plan never makes (e.g. the old application on the new"
            ' schema). If that part is fine (seed 001: "Database OK, application issues"), an'
            " approver can confirm it with `--force`",
            f"skips {step} and runs {listed} after it",
        )
    ]


def _traffic(plan: Plan, selection: PhaseSelection) -> list[tuple[str, str]]:
    """(refusal, warning) when the subset stops traffic and never restores it."""
    if (
        "stop_traffic" in selection.selected
        and "traffic_restoration" in selection.skipped
        and changes_something(plan, "stop_traffic")
    ):
        return [
            (
                "stops traffic but leaves out traffic_restoration: the service would be left"
                f" without traffic. Add traffic_restoration, {OVERRIDE}",
                "stops traffic without restoring it",
            )
        ]
    return []
