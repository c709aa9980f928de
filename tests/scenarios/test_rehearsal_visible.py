"""A service's rehearsals where people look for its readiness, over signed HTTP: ``/rollback
history <service>`` and ``/rollback status <service>`` list them (marked as rehearsals in
staging), App Home says "last rehearsal: … ✓" beside the last drill, and the next drill's
estimate uses their staging timing while production has no rollback to measure."""

from __future__ import annotations

import json
import re

from tests.conftest import Harness
from tests.handlers.test_home import send_home_opened
from tests.scenarios.test_approval_flow import settle
from tests.scenarios.test_rehearsal import h, kube, prod_sim, report, staging_sim

__all__ = ["h", "kube", "prod_sim", "staging_sim"]  # the rehearsal world's fixtures

LINE = re.compile(
    r"• rehearsal #1 in staging succeeded: rolled back 3→2 and forward, \d+ s of a 15 min SLA"
    r" · \d{4}-\d\d-\d\d \d\d:\d\d UTC · by <@U0ONCALL1>"
)


def _rehearse(h: Harness) -> None:
    assert "Rehearsal #1" in h.slash("drill checkout --rehearse").json()["text"]
    settle(h)
    report(h)


def test_history_and_status_of_a_service_list_its_rehearsals(h: Harness) -> None:
    before = h.slash("history checkout").json()["text"]
    assert "No rollbacks of *checkout* yet." in before
    assert "*Rehearsals of checkout in staging*: last rehearsal: never" in before
    assert "No rehearsal yet: `/rollback drill checkout --rehearse`." in before
    _rehearse(h)

    history = h.slash("history checkout").json()["text"]

    assert "No rollbacks of *checkout* yet." in history  # a rehearsal is no production rollback
    assert "*Rehearsals of checkout in staging*: last rehearsal: just now ✓" in history
    assert LINE.search(history), history
    assert "*Readiness drills of checkout*" in history  # the drills part follows
    status = h.slash("status checkout").json()
    assert status["text"].startswith("Rehearsal #1 of checkout@staging — SUCCEEDED"), status
    # a production rollback afterwards: both are shown, each for what it is
    assert (
        "Rollback #2 of *checkout* started"
        in h.slash("run checkout --immediate bad").json()["text"]
    )
    settle(h)
    history = h.slash("history checkout").json()["text"]
    assert "• #2 *checkout* succeeded · immediate undo" in history
    assert LINE.search(history) and "#1 *checkout" not in history
    both = h.slash("status checkout").json()["text"]
    assert "Rollback #2 of checkout — SUCCEEDED" in both
    assert "Rehearsal #1 of checkout@staging — SUCCEEDED" in both


def test_app_home_shows_the_last_rehearsal_beside_the_last_drill(h: Harness) -> None:
    assert send_home_opened(h, "U0ONCALL1").status_code == 200
    h.slack.wait_for("views.publish")
    home = json.dumps(h.slack.home_view("U0ONCALL1"), ensure_ascii=False)
    assert "*checkout* — last drill: never · last rehearsal: never" in home
    _rehearse(h)

    assert send_home_opened(h, "U0ONCALL1").status_code == 200
    h.slack.wait_for(
        "views.publish",
        lambda c: "last rehearsal: just now" in json.dumps(c.params, ensure_ascii=False),
    )
    home = json.dumps(h.slack.home_view("U0ONCALL1"), ensure_ascii=False)
    assert "*checkout* — last drill: never · last rehearsal: just now ✓" in home


def test_the_drill_estimate_uses_the_rehearsals_while_production_has_none(h: Harness) -> None:
    _rehearse(h)
    before = len(h.posted())

    assert "Readiness drill" in h.slash("drill checkout").json()["text"]
    h.wait_idle()

    report_text = h.posted()[before].params["text"]
    estimate = next(line for line in report_text.splitlines() if "Estimate" in line)
    assert "no past rollback: median of 1 rehearsal in staging" in estimate, estimate
    # every phase of production's plan measured in staging (the simulator rolls out at once)
    assert "(preparation 0 s, application rollback 0 s, verification 0 s;" in estimate
    assert "(timeouts)" not in estimate and estimate.startswith("✓ Estimate")
