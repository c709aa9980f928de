"""Partial rollback by phase (issue #16) through signed HTTP: `--phases` on immediate runs, dry
runs and planned requests, the Plan form's Phases field, the point of no return, the review,
and a resume after a restart that runs only the selected phases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.approvals import blocks as ab
from bot.rollback.phases import NOT_SELECTED
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values

NS = "shop"
JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'migrate:1'}]}}}"
APPROVING_RESPONDER = "U0APPROVER1"  # a responder who is also an approver (may --force)


def plan_yaml(name: str, *, irreversible: bool) -> str:
    """Seed 001's phases: snapshot, a schema downgrade, the undo and a verification."""
    flag = ", irreversible: true" if irreversible else ""
    return (
        service_yaml(name, None).replace(
            "responders: [U0ONCALL1]", f"responders: [U0ONCALL1, {APPROVING_RESPONDER}]"
        )
        + "\n    phases:\n"
        f"      preparation:\n        - {{kind: snapshot, objects: [[Deployment, {name}-api]]}}\n"
        "      database:\n"
        f"        - {{kind: run_job, name: Downgrade schema, job: {JOB}{flag}}}\n"
        "      application:\n        - {kind: rollout_undo}\n        - {kind: wait_rollout}\n"
        "      verification:\n        - {kind: wait, seconds: 0.1, name: Soak}\n"
    )


CATALOG = catalog_yaml(
    plan_yaml("shop", irreversible=False), plan_yaml("billing", irreversible=True)
)


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        for name in ("shop", "billing"):
            sim.seed_deployment(NS, f"{name}-api", images=[f"{name}:1", f"{name}:2"])
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda _ctx: kube_sim.api_client(), sleep=lambda s: None)


@pytest.fixture
def h(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator, tmp_path: Path
) -> Harness:
    for name in ("shop", "billing"):  # failing: an approved request starts without asking again
        set_service_values(prometheus, name, error_rate=0.001, latency=6, sessions=30, db_up=0)
    harness: Harness = make_harness(
        CATALOG,
        prometheus_url=prometheus.url,
        kube=kube,
        database_url=f"sqlite:///{tmp_path / 'phases.db'}",
    )
    return harness


def job_requests(kube_sim: KubeSimulator) -> list[tuple[str, str]]:
    return [(m, p) for m, p in kube_sim.requests if "/jobs" in p]


def writes(kube_sim: KubeSimulator) -> list[tuple[str, str]]:
    return [(m, p) for m, p in kube_sim.requests if m in ("POST", "PUT", "PATCH", "DELETE")]


def image(kube: KubernetesClient, name: str) -> dict[str, str]:
    return kube.deployment(KubeTarget(None, NS), f"{name}-api").images


def statuses(h: Harness, rollback_id: int = 1) -> list[tuple[str, str]]:
    return [(s.phase, s.status) for s in h.bot.deps.repo.list_steps(rollback_id)]


def progress_blocks(h: Harness) -> str:
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if "Rollback #1 of" in m["text"]]
    return json.dumps(message["blocks"], ensure_ascii=False)


def publish_review(h: Harness) -> str:
    def is_published() -> bool:
        h.bot.deps.due.tick()
        work = h.bot.deps.repo.get_work("review.publish:1")
        return work is not None and work.status == "done"

    until(is_published, "the review to be published")
    assert h.bot.deps.work.wait_idle(10)
    review = h.bot.deps.repo.get_review(1)
    assert review is not None
    return review.markdown


APP_ONLY = [
    ("preparation", "skipped"),
    ("database", "skipped"),
    ("application", "succeeded"),
    ("application", "succeeded"),
    ("verification", "succeeded"),
]


def test_seed_001_database_ok_application_issues_runs_only_those_phases(
    h: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    answer = h.slash("run shop --immediate --phases application,verification app bug").json()
    assert answer["text"].startswith(
        ":arrows_counterclockwise: Rollback #1 of *shop* started (undo, 3 of 5 steps; phases"
        " application, verification (skipped: preparation, database))."
    )
    h.wait_rollbacks()

    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "succeeded"
    assert r.phases == ["application", "verification"]  # stored with the rollback
    assert statuses(h) == APP_ONLY
    skipped = h.bot.deps.repo.list_steps(1)[:2]
    assert all(s.attempt == 0 and s.error == NOT_SELECTED for s in skipped)
    assert "snapshots" not in skipped[0].detail
    assert job_requests(kube_sim) == []  # the schema downgrade never ran, not even a read
    assert image(kube, "shop") == {"app": "shop:1"}
    (started,) = h.bot.deps.repo.list_audit_events(kind="rollback.started")
    assert started.detail["phases"] == "application, verification (skipped: preparation, database)"

    progress = progress_blocks(h)
    assert "phases *application, verification (skipped: preparation, database)*" in progress
    texts = [m["text"] for m in h.slack.messages("C0DEPLOYS")]
    assert "Rollback #1 of shop — SUCCEEDED: 3/3 steps done" in texts  # its own steps
    assert "Database rollback — skipped" in progress and "Preparation — skipped" in progress

    said = "\n".join(m["text"] for m in h.slack.messages("C0DEPLOYS"))
    partial = (
        "• Partial rollback: phases application, verification (skipped: preparation, database)"
    )
    assert said.count(partial) == 2  # the critical notice and the completion notice
    assert "Complete the rollback procedure (3 steps)" in said
    assert "Data impact: MINIMAL — the plan does not touch the database" in said  # skipped

    review = publish_review(h)
    assert (
        "- **Phases**: application, verification only (partial rollback, `--phases`); skipped,"
        " never run: preparation, database"
    ) in review
    assert "- **Attempts**: every step ran once" in review
    assert "| preparation | Snapshot | skipped |" in review


def test_an_unknown_phase_is_answered_with_the_plans_phases(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    text = h.slash("run shop --immediate --phases aplication,verification x").json()["text"]
    assert text == (
        ":x: `aplication` is not a phase of shop's plan: did you mean `application`? Its"
        " phases: `preparation`, `database`, `application`, `verification`. Nothing was started."
    )
    assert h.bot.deps.repo.get_rollback(1) is None and writes(kube_sim) == []


def test_run_without_immediate_keeps_the_phases_in_its_hints(h: Harness) -> None:
    text = h.slash("run shop --phases application,verification").json()["text"]
    assert "`/rollback plan shop [--to N] [--at HH:MM] --phases application,verification" in text
    assert "`/rollback run shop --immediate --phases application,verification <reason>`" in text


def test_an_empty_subset_is_refused(h: Harness) -> None:
    text = h.slash("run shop --immediate --phases , x").json()["text"]
    assert "is not a phase of shop's plan" in text  # ",x": the list typed with a space
    text = h.slash("run shop --immediate --phases ,").json()["text"]
    assert "`--phases` names no phase" in text
    assert h.bot.deps.repo.get_rollback(1) is None


def test_a_subset_without_verification_is_refused_even_for_an_approver(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    for extra, user in (("", "U0ONCALL1"), (" --force", APPROVING_RESPONDER)):
        text = h.slash(f"run shop --immediate{extra} --phases application x", user).json()["text"]
        assert text.startswith(
            ":no_entry: No rollback of *shop* was started: `--phases application` leaves out"
            " verification"
        )
        assert "Add it: `--phases application,verification`" in text
    assert h.bot.deps.repo.get_rollback(1) is None and writes(kube_sim) == []
    refusals = h.bot.deps.repo.list_audit_events(kind="rollback.refused")
    assert [e.detail["phases"] for e in refusals] == [["application"], ["application"]]


def test_skipping_the_point_of_no_return_needs_an_approvers_force(
    h: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    run = "run billing --immediate --phases application,verification schema is fine"
    text = h.slash(run).json()["text"]
    assert text.startswith(
        ":no_entry: No rollback of *billing* was started: `--phases application,verification`"
        " skips the point of no return (step *Downgrade schema*, database phase) but runs"
        " application"
    )
    assert "Nothing was changed and nobody was paged." in text
    assert (
        "for approvers only"
        in h.slash(run.replace("--immediate", "--immediate --force")).json()["text"]
    )
    assert h.bot.deps.repo.get_rollback(1) is None and writes(kube_sim) == []

    forced = run.replace("--immediate", "--immediate --force")
    text = h.slash(forced, APPROVING_RESPONDER).json()["text"]
    assert "Rollback #1 of *billing* started" in text
    assert (
        ":warning: skips the point of no return (step *Downgrade schema*, database phase) and"
        " runs application after it: forced by an approver."
    ) in text
    h.wait_rollbacks()
    assert statuses(h) == APP_ONLY
    assert job_requests(kube_sim) == [] and image(kube, "billing") == {"app": "billing:1"}
    (started,) = h.bot.deps.repo.list_audit_events(kind="rollback.started")
    assert started.detail["forced"] is True and len(started.detail["warnings"]) == 1


def test_the_dry_run_says_which_phases_are_skipped_and_reads_only_the_others(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    h.slash("run billing --dry-run --phases application,verification")
    answer = str(
        h.slack.wait_for("response_url", lambda c: "Dry run" in c.params["text"]).params["text"]
    )

    lines = answer.splitlines()
    assert lines[1] == (
        "Phases: *application, verification (skipped: preparation, database)* — only the"
        " selected phases would run."
    )
    assert lines[2].startswith(
        ":no_entry: *A real run would be refused now:* `--phases application,verification`"
        " skips the point of no return"
    )
    assert "*Preparation* — skipped" in lines and "*Database rollback* — skipped" in lines
    assert "  2. Downgrade schema — skipped (phase not selected)" in lines
    assert "*Application rollback*" in lines and "*Verification*" in lines
    assert lines[-1] == (
        "Point of no return: step *Downgrade schema* — skipped (its phase is not selected)"
    )
    assert job_requests(kube_sim) == []  # a skipped step is not even read
    assert all("dryRun=All" in p for _, p in writes(kube_sim))

    h.slash("run billing --dry-run --force --phases application,verification", APPROVING_RESPONDER)
    forced = h.slack.wait_for(
        "response_url", lambda c: "forced by an approver" in c.params["text"]
    ).params["text"]
    assert "A real run would be refused" not in forced


def request_blocks(h: Harness) -> str:
    call = h.slack.wait_for(
        "chat.postMessage", lambda c: "Rollback request #1 " in c.params["text"]
    )
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_a_planned_request_states_its_phases_and_its_approval_runs_only_them(
    h: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    ack = h.slash("plan shop --phases application,verification app bug, schema fine").json()
    assert "Rollback request #1 of *shop*" in ack["text"]
    assert ack["text"].endswith(
        "Phases: application, verification (skipped: preparation, database)."
    )
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.phases == ["application", "verification"]
    blocks = request_blocks(h)
    assert "*Phases* application, verification (skipped: preparation, database)" in blocks
    assert "Downgrade schema — skipped (phase not selected)" in blocks  # the dry run

    h.slash("approve 1", user_id="U0APPROVER1")
    until(
        lambda: (x := h.bot.deps.repo.get_rollback(1)) is not None and x.status == "succeeded",
        "the approved rollback to finish",
        timeout=20,
    )
    h.wait_rollbacks()
    assert statuses(h) == APP_ONLY
    assert job_requests(kube_sim) == [] and image(kube, "shop") == {"app": "shop:1"}


def test_a_planned_request_that_would_skip_the_point_of_no_return_is_refused(
    h: Harness,
) -> None:
    text = h.slash("plan billing --phases application,verification schema fine").json()["text"]
    assert text.startswith(
        ":no_entry: No rollback request for *billing* was made: `--phases"
        " application,verification` skips the point of no return"
    )
    assert text.endswith("with `--force` (`--force` goes with `/rollback run … --immediate`).")
    assert h.bot.deps.repo.get_rollback(1) is None
    (refused,) = h.bot.deps.repo.list_audit_events(kind="approval.refused")
    assert refused.detail["phases"] == ["application", "verification"]


def plan_form(service: str) -> dict[str, Any]:
    return ab.plan_modal(service, None, "UTC", ["preparation", "database", "application"])


def test_the_plan_forms_phases_field_is_checked_and_stored(h: Harness) -> None:
    def submit(service: str, phases: str) -> Any:
        return h.requester.submit_view(
            plan_form(service), {"reason": "app bug", "phases": phases}, user_id="U0ONCALL1"
        )

    (field,) = [b for b in plan_form("shop")["blocks"] if b.get("block_id") == "phases"]
    hint = field["hint"]
    assert hint["text"] == (
        "Empty: the whole plan. Or some of: preparation, database, application (comma-separated)"
    )
    answer = submit("shop", "aplication, verification").json()
    assert answer["response_action"] == "errors"
    assert answer["errors"] == {
        "phases": "aplication is not a phase of shop's plan: did you mean application? Its"
        " phases: preparation, database, application, verification"
    }
    answer = submit("billing", "application,verification").json()
    assert "skips the point of no return" in answer["errors"]["phases"]
    assert h.bot.deps.repo.get_rollback(1) is None

    assert submit("shop", "application, verification").text == ""  # the modal closes
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "pending_approval"
    assert r.phases == ["application", "verification"]
    assert statuses(h)[:2] == [("preparation", "skipped"), ("database", "skipped")]


GATED = catalog_yaml(
    "  gate:\n    namespace: shop\n    deployment: gate-api\n    responders: [U0ONCALL1]\n"
    "    phases:\n"
    "      preparation:\n        - {kind: snapshot, objects: [[Deployment, gate-api]]}\n"
    "      application:\n"
    "        - {kind: manual_gate, prompt: Go when ready, name: Hold for the app team}\n"
    "        - {kind: rollout_undo}\n        - {kind: wait_rollout}\n"
    "      verification:\n        - {kind: wait, seconds: 0.1, name: Soak}\n"
)


def test_a_restart_resumes_only_the_selected_phases(
    make_harness: Any, kube_sim: KubeSimulator, kube: KubernetesClient, tmp_path: Path
) -> None:
    kube_sim.seed_deployment(NS, "gate-api", images=["gate:1", "gate:2"])
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first: Harness = make_harness(GATED, prometheus_url=None, kube=kube, database_url=url)
    first.slash("run gate --immediate --phases application,verification bad deploy")
    repo = first.bot.deps.repo
    until(lambda: any(s.status == "running" for s in repo.list_steps(1)), "the gate to wait")
    first.bot.deps.engine.shutdown()  # the process stops mid-rollback
    assert [s.status for s in repo.list_steps(1)] == [
        "skipped",
        "running",
        "pending",
        "pending",
        "pending",
    ]

    second: Harness = make_harness(GATED, prometheus_url=None, kube=kube, database_url=url)
    assert second.bot.deps.engine.resume_all() == [1]
    (gate,) = [s for s in second.bot.deps.repo.list_steps(1) if s.kind == "manual_gate"]
    assert gate.id is not None
    second.bot.deps.repo.record_step_detail(gate.id, {"continued_by": "U0ONCALL1"})
    assert second.bot.deps.engine.wait_idle(20)

    done = second.bot.deps.repo.get_rollback(1)
    assert done is not None and done.status == "succeeded"
    assert done.phases == ["application", "verification"]
    steps = second.bot.deps.repo.list_steps(1)
    assert [s.status for s in steps] == ["skipped"] + ["succeeded"] * 4
    assert steps[0].attempt == 0 and "snapshots" not in steps[0].detail  # never ran, twice over
    assert image(kube, "gate") == {"app": "gate:1"}
