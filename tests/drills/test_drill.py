"""Whole drills through the app: nothing changes in the cluster whatever the plan writes, a failed
drill says what to do, and a Slack retry of the command makes one drill."""

from __future__ import annotations

from typing import Any

from bot.sim.kube_access import AccessRule
from tests.drills.world import NS, World, checkout_yaml, virtual_service
from tests.handlers.test_home import send_home_opened

JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'migrate:1'}]}}}"
EVERYTHING = (
    "  ledger:\n    namespace: shop\n    deployment: ledger\n"
    "    phases:\n"
    f"      database: [{{kind: run_job, name: Migrate down, job: {JOB}}}]\n"
    "      application:\n"
    "        - {kind: set_image, container: app, image: 'ledger:1'}\n"
    "        - {kind: restart}\n"
    "        - {kind: scale, replicas: 4}\n"
    "        - {kind: switch_selector, service: ledger, selector: {version: blue}}\n"
    "        - {kind: shift_traffic, traffic: {api_version: networking.istio.io/v1beta1,"
    " kind: VirtualService, name: ledger, stable_weight_path: /spec/http/0/route/0/weight,"
    " canary_weight_path: /spec/http/0/route/1/weight}}\n"
)


def test_a_drill_makes_no_change_whatever_the_plan_writes(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(), EVERYTHING)
    w.kube_sim.seed_deployment(NS, "ledger", images=["ledger:2"])
    w.kube_sim.seed_service(NS, "ledger", {"app": "ledger", "version": "green"})
    virtual_service(w.kube_sim, "ledger")
    version, since = w.kube_sim.resource_version, len(w.kube_sim.requests)

    report = w.drill("ledger")

    requests = w.kube_sim.requests[since:]
    reviews = [p for m, p in requests if "selfsubjectaccessreviews" in p]
    writes = [(m, p) for m, p in requests if m != "GET" and "selfsubjectaccessreviews" not in p]
    assert len(reviews) == 5  # create jobs, patch deployments, deployments/scale, services, VS
    assert {m for m, _ in writes} == {"POST", "PATCH"}
    assert [p for _, p in writes if "dryRun=All" not in p] == []  # zero real writes
    assert any(m == "POST" and "/jobs" in p for m, p in writes)  # the Job was dry-run created
    assert w.kube_sim.resource_version == version
    assert "✓ Dry run: 6 steps pass" in report["text"], report["text"]
    assert "✓ Permissions: 5 writes allowed" in report["text"]


def test_a_failed_drill_says_what_to_do_and_is_stored_failed(make_world: Any) -> None:
    w: World = make_world()
    w.kube_sim.set_access_rules([AccessRule(("get", "list"), ("apps",), ("*",))])

    report = w.drill("checkout")

    text = report["text"]
    assert "NOT ready (2 of 7 checks ✗ or unknown)" in text, text
    assert "✗ Permissions: not allowed: patch deployments.apps checkout-api in shop" in text
    assert "✗ Dry run" in text and "forbidden" in text
    blocks = str(report["blocks"])
    assert "→ Grant the missing verbs" in blocks
    drill = w.deps.repo.last_drill("checkout")
    assert drill is not None and drill.status == "failed" and drill.failed_checks == 2
    assert w.deps.repo.last_drill("checkout", is_passed=True) is None


def test_a_retried_command_makes_one_drill(make_world: Any) -> None:
    w: World = make_world()
    body = w.h.requester.slash_body("drill checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    first = w.h.requester.post_form(body)
    again = w.h.requester.post_form(body, extra_headers={"X-Slack-Retry-Num": "1"})
    assert first.status_code == again.status_code == 200
    w.h.wait_idle()
    assert len(w.deps.repo.list_drills("checkout")) == 1
    assert len(w.h.posted()) == 1


def test_drill_usage_errors_change_nothing(make_world: Any) -> None:
    w: World = make_world()
    assert "needs a service name" in w.h.slash("drill").json()["text"]
    assert "not an option of `/rollback drill`" in w.h.slash("drill checkout --now").json()["text"]
    assert "Unknown service `nosuch`" in w.h.slash("drill nosuch").json()["text"]
    w.h.wait_idle()
    assert w.deps.repo.list_drills() == []


def test_history_and_app_home_show_the_last_drill(make_world: Any) -> None:
    w: World = make_world()
    assert "last drill: never" in w.h.slash("history checkout").json()["text"]
    w.drill("checkout")

    history = w.h.slash("history checkout").json()["text"]

    assert "No rollbacks of *checkout* yet." in history
    assert "*Readiness drills of checkout*: last drill: just now ✓" in history
    assert "• drill #1 ready" in history and "manual · 7/7 ✓" in history
    assert send_home_opened(w.h, "U0ONCALL1").status_code == 200
    w.h.slack.wait_for("views.publish")
    home = str(w.h.slack.home_view("U0ONCALL1"))
    assert "Readiness drills" in home and "*checkout* — last drill: just now ✓" in home


def test_a_drill_reads_each_object_once(make_world: Any) -> None:
    """Benchmark target of the drill: one LIST of ReplicaSets, one review per distinct write,
    and no object read twice (the typed Deployment is built from the one raw GET)."""
    w: World = make_world()
    since = len(w.kube_sim.requests)

    report = w.drill("checkout")

    assert "ready" in report["text"] and "NOT ready" not in report["text"], report["text"]
    reads = [p.partition("?")[0] for m, p in w.kube_sim.requests[since:] if m == "GET"]
    assert len(reads) == len(set(reads)), reads
    assert sum(p.endswith("/replicasets") for p in reads) == 1, reads
    assert sum(p.endswith("/deployments/checkout-api") for p in reads) == 1, reads
