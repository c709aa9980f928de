"""Whole rollbacks through signed HTTP: the real app, engine and Kubernetes client; simulators."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values

NS = "shop"
T = KubeTarget(None, NS)


class Clock:
    """The simulator's clock: real time plus an offset a test can jump forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube_sim(clock: Clock) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=clock) as sim:
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll with a deadline (the engine runs in its own threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def images(kube: KubernetesClient, name: str) -> dict[str, str]:
    return kube.deployment(T, name).images


@pytest.fixture
def harness(
    make_harness: Any,
    kube_sim: KubeSimulator,
    kube: KubernetesClient,
    prometheus: PrometheusSimulator,
) -> Harness:
    kube_sim.seed_deployment(
        NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
    )
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)
    text = catalog_yaml(
        service_yaml("checkout", prometheus.health_url("checkout"), namespace="shop").replace(
            "    namespace: shop\n", "", 1
        )
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=kube)
    return h


def virtual_service(kube_sim: KubeSimulator, route: list[dict[str, Any]]) -> None:
    """An Istio VirtualService named board with the given weighted route."""
    CustomObjectsApi(kube_sim.api_client()).create_namespaced_custom_object(
        "networking.istio.io",
        "v1beta1",
        NS,
        "virtualservices",
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "board"},
            "spec": {"http": [{"route": route}]},
        },
    )


def final_progress(slack: SlackSimulator) -> dict[str, Any]:
    (message,) = [m for m in slack.messages("C0DEPLOYS") if "Rollback #" in m.get("text", "")]
    return message


def test_immediate_undo_rolls_back_like_kubectl(harness: Harness, kube: KubernetesClient) -> None:
    resp = harness.slash("run checkout --immediate 5xx storm after v3")
    harness.wait_rollbacks()

    assert "Rollback #1 of *checkout* started" in resp.json()["text"]
    info = kube.deployment(T, "checkout-api")
    assert info.images == {"app": "shop/checkout:v2"}
    assert info.revision == 4  # v2's ReplicaSet reused with the next revision, as kubectl does
    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    steps = harness.bot.deps.repo.list_steps(1)
    assert [s.status for s in steps] == ["succeeded"] * len(steps)
    assert "shop/checkout:v3" in steps[0].detail["snapshots"]["Deployment/checkout-api"]
    progress = final_progress(harness.slack)
    assert "SUCCEEDED" in progress["text"]
    assert "target revision *2*" in json.dumps(progress["blocks"])
    assert progress.get("edits", 0) >= 1  # one message, edited in place
    thread = [
        m for m in harness.slack.messages("C0DEPLOYS") if m.get("thread_ts") == progress["ts"]
    ]
    assert any("revision 3 → template of revision 2" in m["text"] for m in thread)
    events = harness.bot.deps.repo.list_audit_events(rollback_id=1)
    kinds = [e.kind for e in events if e.kind.startswith("rollback.")]
    assert kinds == ["rollback.started", "rollback.succeeded"]


def test_undo_to_a_given_revision(harness: Harness, kube: KubernetesClient) -> None:
    harness.slash("run checkout --immediate --to 1 back to the first release")
    harness.wait_rollbacks()
    assert images(kube, "checkout-api") == {"app": "shop/checkout:v1"}


def test_unknown_revision_is_refused_before_anything_starts(
    harness: Harness, kube: KubernetesClient
) -> None:
    resp = harness.slash("run checkout --immediate --to 7 bad release")

    text = resp.json()["text"]
    assert "No rollback of *checkout* was started" in text
    assert "checkout-api has no revision 7 in its history" in text
    assert "1 (checkout:v1) · 2 (checkout:v2) · 3 (checkout:v3, current)" in text
    assert "nobody was paged" in text
    assert harness.bot.deps.repo.list_rollbacks() == []
    assert images(kube, "checkout-api") == {"app": "shop/checkout:v3"}
    assert not [m for m in harness.slack.messages("C0DEPLOYS") if "Rollback #" in m["text"]]
    (event,) = harness.bot.deps.repo.list_audit_events(kind="rollback.refused")
    assert event.detail["target"] == "7"


def test_non_responder_is_refused_and_audited(harness: Harness) -> None:
    resp = harness.slash("run checkout --immediate bad release", user_id="U0RANDOM")

    assert "Only responders of *checkout*" in resp.json()["text"]
    assert "<@U0ONCALL1>" in resp.json()["text"]
    assert harness.bot.deps.repo.list_rollbacks() == []
    (event,) = harness.bot.deps.repo.list_audit_events(kind="rollback.refused")
    assert event.actor == "U0RANDOM"


def test_second_run_gets_the_running_ones_id(harness: Harness, kube_sim: KubeSimulator) -> None:
    kube_sim.set_never_ready(NS, "checkout-api")
    harness.slash("run checkout --immediate bad release")
    until(
        lambda: (r := harness.bot.deps.repo.get_rollback(1)) is not None and bool(r.progress_ts),
        "the first rollback's progress message",
    )
    progress_ts = harness.bot.deps.repo.get_rollback(1).progress_ts  # type: ignore[union-attr]

    second = harness.slash("run checkout --immediate again")

    assert "already active: #1" in second.json()["text"]
    link = f"https://example.slack.com/archives/C0DEPLOYS/p{progress_ts.replace('.', '')}"
    assert f"<{link}|progress>" in second.json()["text"]
    assert harness.slack.calls_to("chat.getPermalink") == []  # built locally, off the ack path
    harness.slash("abort 1")
    harness.wait_rollbacks()


def test_dry_run_shows_the_plan_and_changes_nothing(
    harness: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    ack = harness.slash("run checkout --dry-run")
    answer = harness.slack.wait_for("response_url").params["text"]

    assert "Dry run" in ack.json()["text"]
    assert (
        "revision 3 (app=shop/checkout:v3) → template of revision 2 (app=shop/checkout:v2)"
        in answer
    )
    assert "server-side dry run accepted" in answer
    assert "Point of no return: none" in answer
    assert images(kube, "checkout-api") == {"app": "shop/checkout:v3"}
    assert kube.deployment(T, "checkout-api").revision == 3
    assert harness.bot.deps.repo.list_rollbacks() == []
    assert not any(
        m in ("PATCH", "PUT", "POST") and "dryRun" not in p for m, p in kube_sim.requests
    )


def test_abort_interrupts_a_wait(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "slow-api", images=["a:1", "a:2"])
    text = catalog_yaml(
        "  slow:\n    namespace: shop\n    deployment: slow-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n      preparation:\n        - {kind: wait, seconds: 600, name: Soak}\n"
        "      application:\n        - {kind: rollout_undo}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run slow --immediate bad release")
    until(
        lambda: [s.status for s in h.bot.deps.repo.list_steps(1)] == ["running", "pending"],
        "the wait",
    )

    started = time.monotonic()
    resp = h.slash("abort 1 wrong service")
    h.wait_rollbacks()

    assert "Abort of rollback #1 requested" in resp.json()["text"]
    assert time.monotonic() - started < 5
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "aborted"
    assert [s.status for s in h.bot.deps.repo.list_steps(1)] == ["failed", "skipped"]
    assert images(kube, "slow-api") == {"app": "a:2"}  # the undo never ran
    assert "ABORTED" in final_progress(h.slack)["text"]
    summary = next(m["text"] for m in h.slack.messages("C0DEPLOYS") if "*Aborted.*" in m["text"])
    assert "Interrupted: Soak." in summary and "Not run: Roll back the deployment." in summary
    assert "Now: slow-api: revision 2 (app=a:2) 3/3 available — rolled out." in summary


def test_an_abort_mid_rollout_says_which_pods_run_which_release(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    """Issue #10 item 7: availableReplicas counted the old release's pods as the new one's."""
    kube_sim.seed_deployment(NS, "slow-api", images=["a:1", "a:2"])
    kube_sim.set_ready_delay(3600)  # the undo's pods never get ready during the test
    text = catalog_yaml(
        "  slow:\n    namespace: shop\n    deployment: slow-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n      application:\n        - {kind: rollout_undo}\n"
        "        - {kind: wait_rollout, name: Wait}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run slow --immediate bad release")
    until(
        lambda: [s.status for s in h.bot.deps.repo.list_steps(1)] == ["succeeded", "running"],
        "the wait for the rollout",
    )
    h.slash("abort 1 wrong service")
    h.wait_rollbacks()

    summary = next(m["text"] for m in h.slack.messages("C0DEPLOYS") if "*Aborted.*" in m["text"])
    assert (
        "Now: slow-api: revision 3 (app=a:1) 0/3 available · revision 2 (app=a:2) 3/3 available"
        " — the rollout has not finished." in summary
    )

    def notices() -> list[str]:
        return [
            m["text"] for m in h.slack.messages("C0DEPLOYS") if "*Rollback aborted*" in m["text"]
        ]

    until(lambda: bool(notices()), "the aborted notice")
    assert "• Now: slow-api: revision 3 (app=a:1) 0/3 available · revision 2" in notices()[0]


def test_never_ready_rollout_fails_the_phase(
    harness: Harness, kube_sim: KubeSimulator, clock: Clock
) -> None:
    kube_sim.set_never_ready(NS, "checkout-api")
    harness.slash("run checkout --immediate bad release")
    until(
        lambda: any(
            s.kind == "wait_rollout" and s.status == "running"
            for s in harness.bot.deps.repo.list_steps(1)
        ),
        "the rollout wait",
    )
    clock.offset += 3600  # past progressDeadlineSeconds

    harness.wait_rollbacks()

    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    assert "exceeded its progress deadline" in (rollback.error or "")
    assert ":x: Application rollback" in json.dumps(final_progress(harness.slack)["blocks"])


def test_status_and_history_of_a_service(harness: Harness) -> None:
    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()

    resp = harness.slash("status checkout").json()
    assert "Rollback #1 of checkout — SUCCEEDED" in resp["text"]
    assert harness.slash("status").json()["text"] == "No rollback is running."
    assert "There is no rollback #9" in harness.slash("status 9").json()["text"]


class _DeployAPI(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        type(self).calls.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def deploy_api() -> Iterator[str]:
    _DeployAPI.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeployAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_strategy_calls_the_rollback_endpoint(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator, deploy_api: str
) -> None:
    text = catalog_yaml(
        "  mvp:\n    deployment: mvp-api\n    strategy: http\n    responders: [U0ONCALL1]\n"
        f"    http_rollback: {{url: '{deploy_api}/deployment/rollback',"
        f" status_url: '{prometheus.health_url('mvp')}'}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run mvp --immediate bad release")
    h.wait_rollbacks()

    assert _DeployAPI.calls == ["/deployment/rollback"]
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"


def test_blue_green_switches_the_service_back(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(
        NS, "web-blue", images=["web:1"], labels={"app": "web", "version": "blue"}
    )
    kube_sim.seed_deployment(
        NS, "web-green", images=["web:2"], labels={"app": "web", "version": "green"}
    )
    kube_sim.seed_service(NS, "web", {"app": "web", "version": "green"})
    text = catalog_yaml(
        "  web:\n    namespace: shop\n    deployment: web-blue\n    strategy: blue-green\n"
        "    responders: [U0ONCALL1]\n"
        "    blue_green: {service: web, stable: blue, candidate: web-green}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run web --immediate bad release")
    h.wait_rollbacks()

    assert kube.service_selector(T, "web") == {"app": "web", "version": "blue"}
    assert kube.deployment(T, "web-green").replicas == 0
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"


def test_canary_weight_goes_to_zero_and_the_canary_scales_down(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "board", images=["b:1"])
    kube_sim.seed_deployment(NS, "board-canary", images=["b:2"], replicas=1)
    route = [
        {"destination": {"host": "board", "subset": "stable"}, "weight": 75},
        {"destination": {"host": "board", "subset": "canary"}, "weight": 25},
    ]
    virtual_service(kube_sim, route)
    text = catalog_yaml(
        "  board:\n    namespace: shop\n    deployment: board\n    strategy: canary\n"
        "    responders: [U0ONCALL1]\n"
        "    canary: {deployment: board-canary, traffic: {name: board}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run board --immediate bad release")
    h.wait_rollbacks()

    vs = kube.read_object(T, "networking.istio.io/v1beta1", "VirtualService", "board")
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [100, 0]
    assert kube.deployment(T, "board-canary").replicas == 0


def test_slack_failing_does_not_stop_a_rollback(
    harness: Harness, kube: KubernetesClient, slack: SlackSimulator
) -> None:
    slack.inject_error("chat.update", "internal_error", times=2)
    slack.inject_error("chat.postMessage", "ratelimited", times=1)  # the first post is lost

    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()

    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    assert images(kube, "checkout-api") == {"app": "shop/checkout:v2"}
    assert "SUCCEEDED" in final_progress(slack)["text"]  # the message caught up in the end


def custom_service(phases: str) -> str:
    return catalog_yaml(
        "  db:\n    namespace: shop\n    deployment: db-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n" + phases
    )


JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'migrate:1'}]}}}"


def test_database_job_that_fails_stops_the_rollback_before_the_application(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "db-api", images=["db:1", "db:2"])
    kube_sim.set_job_outcome(NS, "rollback-1-", "failed")
    text = custom_service(
        f"      database:\n        - {{kind: run_job, name: Downgrade schema, job: {JOB}}}\n"
        "      application:\n        - {kind: rollout_undo}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run db --immediate bad release")
    h.wait_rollbacks()

    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    assert re.search(r"Downgrade schema: Job rollback-1-0-[0-9a-f]{8} failed", rollback.error or "")
    assert "BackoffLimitExceeded" in (rollback.error or "")
    assert [s.status for s in h.bot.deps.repo.list_steps(1)] == ["failed", "pending"]
    assert images(kube, "db-api") == {"app": "db:2"}  # the application was left alone


def test_job_set_image_restart_and_scale_steps(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "db-api", images=["db:1", "db:2"])
    text = custom_service(
        f"      database:\n        - {{kind: run_job, name: Restore, job: {JOB}}}\n"
        "      application:\n"
        "        - {kind: set_image, container: app, image: 'db:1'}\n"
        "        - {kind: restart}\n"
        "        - {kind: wait_rollout}\n"
        "      traffic_restoration:\n        - {kind: scale, replicas: 5}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("run db --immediate bad release")
    h.wait_rollbacks()

    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded", rollback and rollback.error
    info = kube.deployment(T, "db-api")
    assert (info.images, info.replicas) == ({"app": "db:1"}, 5)
    steps = {s.kind: s.detail for s in h.bot.deps.repo.list_steps(1)}
    assert steps["run_job"]["job"] == f"rollback-1-0-{steps['run_job']['run_id']}"
    assert steps["set_image"] == {
        **steps["set_image"],
        "image_before": "db:2",
        "image_after": "db:1",
    }
    assert "restarted_at" in steps["restart"]
    assert (steps["scale"]["replicas_before"], steps["scale"]["replicas_after"]) == (3, 5)


def test_point_of_no_return_refuses_unless_an_approver_forces(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "db-api", images=["db:1", "db:2", "db:3"])
    text = catalog_yaml(
        "  db:\n    namespace: shop\n    deployment: db-api\n"
        "    responders: [U0ONCALL1, U0APPROVER1]\n    approvers: [U0APPROVER1]\n"
        "    point_of_no_return: {revision: 3, reason: migration 011 drops a column}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)

    refused = h.slash("run db --immediate bad release").json()["text"]  # refused before it starts
    assert "crosses the point of no return at revision 3" in refused
    assert "forward fix" in refused and "nobody was paged" in refused
    assert h.bot.deps.repo.list_rollbacks() == []
    assert images(kube, "db-api") == {"app": "db:3"}

    assert "approvers only" in h.slash("run db --immediate --force bad release").json()["text"]
    started = h.slash("run db --immediate --force forward fix impossible", user_id="U0APPROVER1")
    assert "forced by an approver" in started.json()["text"]
    h.wait_rollbacks()
    forced = h.bot.deps.repo.get_rollback(1)
    assert forced is not None and forced.status == "succeeded"
    assert images(kube, "db-api") == {"app": "db:2"}


def _canary(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator, prom: Any
) -> Harness:
    kube_sim.seed_deployment(NS, "board", images=["b:1"])
    kube_sim.seed_deployment(NS, "board-canary", images=["b:2"], replicas=1)
    route = [{"destination": {"host": "board"}, "weight": w} for w in (0, 100)]
    virtual_service(kube_sim, route)
    text = catalog_yaml(
        "  board:\n    namespace: shop\n    deployment: board\n    strategy: canary\n"
        "    responders: [U0ONCALL1]\n    signals: {error_rate: board_errors}\n"
        "    canary: {deployment: board-canary, step_percent: 25, gate_wait_seconds: 0.05,"
        " traffic: {name: board}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=prom.url, kube=kube)
    return h


def _shift(h: Harness) -> dict[str, Any]:
    step = next(s for s in h.bot.deps.repo.list_steps(1) if s.kind == "shift_traffic")
    return dict(step.detail)


def test_gradual_canary_shift_passes_its_gates_step_by_step(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator, prometheus: Any
) -> None:
    prometheus.set_value("board_errors", 0.01)
    h = _canary(make_harness, kube, kube_sim, prometheus)
    h.slash("run board --immediate bad release")
    h.wait_rollbacks()

    assert _shift(h)["weights"] == [75, 50, 25, 0]


def test_gradual_canary_shift_completes_at_once_when_a_gate_fails(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator, prometheus: Any
) -> None:
    prometheus.set_value("board_errors", 0.3)  # worse than the 5 % high threshold
    h = _canary(make_harness, kube, kube_sim, prometheus)
    h.slash("run board --immediate bad release")
    until(lambda: "weights" in _shift(h), "the traffic shift")
    prometheus.set_value("board_errors", 0.01)  # the canary is out: errors recover
    h.wait_rollbacks()

    assert _shift(h)["weights"] == [75, 0]
    vs = kube.read_object(T, "networking.istio.io/v1beta1", "VirtualService", "board")
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [100, 0]
    thread = " ".join(m["text"] for m in h.slack.messages("C0DEPLOYS"))
    assert "metric gate failed between increments: completing the shift at once" in thread


def test_conflicts_and_server_errors_from_kubernetes_are_retried(
    harness: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.inject("PATCH", r"/deployments/checkout-api$", 409, times=1)
    kube_sim.inject("GET", r"/replicasets$", 503, times=2)

    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()

    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    assert images(kube, "checkout-api") == {"app": "shop/checkout:v2"}


def test_kubernetes_refusal_is_reported_in_words(
    harness: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.inject("PATCH", r"/deployments/checkout-api$", 403, times=5)

    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()

    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    assert "Kubernetes:" in (rollback.error or "") and "forbidden" in (rollback.error or "").lower()
    assert "Traceback" not in json.dumps(final_progress(harness.slack))


def test_run_without_immediate_explains_the_two_ways(harness: Harness) -> None:
    text = harness.slash("run checkout bad release").json()["text"]
    assert "needs approval" in text and "--immediate" in text
    assert harness.bot.deps.repo.list_rollbacks() == []


def test_dry_run_that_would_fail_says_so_in_words(harness: Harness) -> None:
    resp = harness.slash("run checkout --dry-run --to 9")
    answer = harness.slack.wait_for("response_url").params["text"]

    assert resp.status_code == 200
    assert "A real run would be refused now:* checkout-api has no revision 9" in answer
    assert "Traceback" not in answer
