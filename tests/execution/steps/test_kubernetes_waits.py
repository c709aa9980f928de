"""Kubernetes waits (rollout, Job, traffic shift) against the simulator, with a fake clock.

API outages longer than the client's own retries, deadlines, aborts, and what a step leaves
behind. The client's retry backoff moves the fake clock too: nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.execution.steps.base import Aborted, StepFailed
from bot.execution.steps.kubernetes.traffic import shift_traffic
from bot.execution.steps.kubernetes.waits import run_job, wait_rollout
from bot.sim.kube_api import KubeSimulator
from tests.execution.steps.conftest import TRAFFIC, FakeTime, create_virtual_service

NS = "shop"
HERE = KubeTarget(None, NS)
DEPLOYMENT = r"/deployments/checkout-api$"
JOB_NAME = "rollback-7-2"  # named: the default name carries a random run id
JOB_PATH = rf"/jobs/{JOB_NAME}$"
JOB_TEMPLATE = {
    "template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}
    }
}
JOB_PARAMS = {"job": JOB_TEMPLATE, "job_name": JOB_NAME}
CLIENT_ATTEMPTS = 5  # KubernetesClient's default: 1 + 4 retries


@pytest.fixture
def cluster(fake_time: FakeTime) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=fake_time.monotonic) as sim:
        sim.seed_deployment(NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


@pytest.fixture
def backoffs() -> list[float]:
    return []


@pytest.fixture
def kube(
    cluster: KubeSimulator, fake_time: FakeTime, backoffs: list[float]
) -> Iterator[KubernetesClient]:
    def backoff(seconds: float) -> None:  # the client's retry pause, on the fake clock
        backoffs.append(seconds)
        fake_time.now += seconds

    client = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client(), sleep=backoff)
    yield client
    client.close()


# ── wait_rollout ──────────────────────────────────────────────────────────────────────────────


def test_a_short_api_outage_during_a_rollout_is_waited_out(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    cluster.set_ready_delay(20)
    kube.undo(HERE, "checkout-api", None)  # a rollout that takes 20 s
    failing = 2 * CLIENT_ATTEMPTS + 2  # two whole polls fail, the third one recovers
    cluster.inject("GET", DEPLOYMENT, 500, times=failing // 2)
    cluster.inject("GET", DEPLOYMENT, 503, times=failing - failing // 2)
    ctx, rec = make_ctx(kube=kube, timeout_seconds=120)

    result = wait_rollout(ctx, {"deployment": "checkout-api"})

    assert result["status"] == 'deployment "checkout-api" successfully rolled out'
    assert len(fake_time.waits) >= 3  # polls went on after the failed ones
    assert rec.notes == [
        "rollout of checkout-api: the Kubernetes API is failing (Internal error occurred:"
        " injected by KubeSimulator (HTTP 500 InternalError)); still waiting, until the"
        " step's timeout"
    ]


def test_an_outage_until_the_deadline_fails_naming_the_last_error(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    cluster.inject("GET", DEPLOYMENT, 500, times=10_000)
    ctx, _ = make_ctx(kube=kube, timeout_seconds=30)
    started = fake_time.now

    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": "checkout-api"})

    assert str(failed.value) == (
        "rollout of checkout-api: not done after 30 s; the Kubernetes API kept failing, last"
        " error: Internal error occurred: injected by KubeSimulator (HTTP 500 InternalError)"
    )
    assert 30 <= fake_time.now - started < 40  # the deadline, plus one poll's retries at most


def test_a_timeout_after_a_recovered_outage_gives_the_status_and_the_old_error(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.set_never_ready(NS, "checkout-api")
    kube.set_image(HERE, "checkout-api", "app", "shop/checkout:v3")
    cluster.inject("GET", DEPLOYMENT, 503, times=CLIENT_ATTEMPTS)  # the first poll fails
    ctx, _ = make_ctx(kube=kube, timeout_seconds=30)

    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": "checkout-api"})

    message = str(failed.value)
    assert message.startswith("rollout of checkout-api: not done after 30 s; last status: Waiting")
    assert message.endswith(
        "; last Kubernetes API error (recovered): the server is currently unable to handle"
        " the request (HTTP 503 ServiceUnavailable)"
    )


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "forbidden: injected by KubeSimulator (HTTP 403 Forbidden)"),
        (422, "due to an error in our request (HTTP 422 Invalid)"),
    ],
)
def test_a_refusal_fails_at_once(
    cluster: KubeSimulator,
    kube: KubernetesClient,
    make_ctx: Any,
    fake_time: FakeTime,
    backoffs: list[float],
    status: int,
    words: str,
) -> None:
    cluster.inject("GET", DEPLOYMENT, status, times=10_000)
    ctx, _ = make_ctx(kube=kube)

    with pytest.raises(StepFailed, match=r"^rollout of checkout-api: Kubernetes: ") as failed:
        wait_rollout(ctx, {"deployment": "checkout-api"})

    assert str(failed.value).endswith(words)
    assert (fake_time.waits, backoffs) == ([], [])


def test_a_missing_deployment_fails_at_once(
    kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    ctx, _ = make_ctx(kube=kube)
    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": "nope"})
    assert str(failed.value) == (
        'rollout of nope: Kubernetes: deployment "nope" not found in namespace "shop"'
        " (HTTP 404 NotFound)"
    )
    assert fake_time.waits == []


def test_a_colour_scaled_to_zero_is_refused_at_once_when_pods_are_required(
    kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    kube.scale(HERE, "checkout-api", 0)
    ctx, _ = make_ctx(kube=kube)
    # kubectl's rules: 0 replicas is "rolled out"
    assert "successfully rolled out" in wait_rollout(ctx, {"deployment": "checkout-api"})["status"]

    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": "checkout-api", "min_available": 1})

    assert str(failed.value) == (
        "deployment checkout-api has no available pods (1 needed); scale it up before"
        " switching traffic to it (scaled to 0 replicas)"
    )
    assert fake_time.waits == []


def test_too_few_available_pods_fail_at_the_deadline(kube: KubernetesClient, make_ctx: Any) -> None:
    ctx, _ = make_ctx(kube=kube, timeout_seconds=30)  # 3 replicas, all available
    assert wait_rollout(ctx, {"deployment": "checkout-api", "min_available": 3})

    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": "checkout-api", "min_available": 5})

    assert str(failed.value) == (
        "deployment checkout-api has only 3 available pods (5 needed); scale it up before"
        " switching traffic to it (rollout of checkout-api: not done after 30 s; last status:"
        " 3 available pods, 5 needed)"
    )


# ── run_job ───────────────────────────────────────────────────────────────────────────────────


def test_a_job_is_followed_through_an_api_outage(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.set_job_outcome(NS, "rollback-7-", "complete", after_seconds=5)
    cluster.inject("GET", JOB_PATH, 503, times=3 * CLIENT_ATTEMPTS)
    ctx, _ = make_ctx(kube=kube, timeout_seconds=120)

    result = run_job(ctx, JOB_PARAMS)

    assert result == {
        "job": JOB_NAME,
        "run_id": result["run_id"],
        "status": f'job "{JOB_NAME}" completed',
    }


def test_a_job_past_its_timeout_is_left_running_and_the_failure_says_so(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.set_job_outcome(NS, "rollback-7-", "complete", after_seconds=10_000)
    ctx, rec = make_ctx(kube=kube, timeout_seconds=30)

    with pytest.raises(StepFailed) as failed:
        run_job(ctx, JOB_PARAMS)

    left = (
        f"Job {JOB_NAME} is still running in namespace shop; it was not stopped"
        f" (check it with `kubectl -n shop get job {JOB_NAME}`)"
    )
    assert str(failed.value) == (
        f'Job {JOB_NAME}: not done after 30 s; last status: job "{JOB_NAME}" running:'
        f" 1 active, 0 succeeded, 0 failed. {left}"
    )
    assert rec.remembered["left_running"] == left
    assert kube.job_state(HERE, JOB_NAME).phase == "running"  # not deleted


def test_a_job_timeout_during_an_outage_says_the_job_may_still_run(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.set_job_outcome(NS, "rollback-7-", "complete", after_seconds=10_000)
    cluster.inject("GET", JOB_PATH, 504, times=10_000)
    ctx, _ = make_ctx(kube=kube, timeout_seconds=30)

    with pytest.raises(StepFailed) as failed:
        run_job(ctx, JOB_PARAMS)

    assert "the Kubernetes API kept failing, last error:" in str(failed.value)
    assert "(HTTP 504 Timeout)" in str(failed.value)
    assert f"Job {JOB_NAME} may still be running in namespace shop" in str(failed.value)


def test_an_aborted_job_is_left_running_and_the_abort_says_so(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.set_job_outcome(NS, "rollback-7-", "complete", after_seconds=10_000)
    ctx, rec = make_ctx(kube=kube)
    ctx.target = KubeTarget("prod-eu", NS)  # a named kube context shows in the kubectl hint

    def abort(seconds: float) -> None:
        raise Aborted()

    ctx.wait = abort

    with pytest.raises(Aborted) as aborted:
        run_job(ctx, JOB_PARAMS)

    left = (
        f"Job {JOB_NAME} is still running in namespace shop; it was not stopped"
        f" (check it with `kubectl --context prod-eu -n shop get job {JOB_NAME}`)"
    )
    assert str(aborted.value) == left
    assert rec.remembered["left_running"] == left
    assert rec.notes == [f":warning: {left}"]
    assert kube.job_state(HERE, JOB_NAME).phase == "running"


# ── shift_traffic ─────────────────────────────────────────────────────────────────────────────


def _virtual_service(cluster: KubeSimulator, stable: int, canary: int) -> None:
    create_virtual_service(
        cluster,
        NS,
        {"destination": {"host": "board"}, "weight": stable},
        {"destination": {"host": "board-canary"}, "weight": canary},
    )


def _weights(kube: KubernetesClient) -> list[int]:
    vs = kube.read_object(HERE, TRAFFIC["api_version"], "VirtualService", "board")
    return [int(route["weight"]) for route in vs["spec"]["http"][0]["route"]]


def _patches(cluster: KubeSimulator) -> int:
    return sum(1 for method, path in cluster.requests if method == "PATCH")


def test_shift_traffic_waits_on_every_pass(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    _virtual_service(cluster, 0, 100)
    ctx, _ = make_ctx(kube=kube)

    result = shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 25})

    assert result == {"weights": [75, 50, 25, 0], "canary_percent": 0}
    assert len(fake_time.waits) == 4  # ctx.wait after each patch: an abort can get in
    assert _weights(kube) == [100, 0]


@pytest.mark.parametrize("step_percent", [0, -25])
def test_shift_traffic_refuses_a_step_that_never_moves(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, step_percent: int
) -> None:
    _virtual_service(cluster, 0, 100)
    ctx, _ = make_ctx(kube=kube)

    with pytest.raises(StepFailed, match=f"positive percentage, not {step_percent}$"):
        shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0, "step_percent": step_percent})

    assert _patches(cluster) == 0


def test_shift_traffic_stops_at_its_deadline_when_something_keeps_reverting_it(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    _virtual_service(cluster, 0, 100)
    ctx, rec = make_ctx(kube=kube, timeout_seconds=60)
    revert = [
        {"op": "replace", "path": TRAFFIC["stable_weight_path"], "value": 0},
        {"op": "replace", "path": TRAFFIC["canary_weight_path"], "value": 100},
    ]

    def gitops_sync_then_wait(seconds: float) -> None:  # a GitOps controller writes it back
        kube.patch_object(HERE, TRAFFIC["api_version"], "VirtualService", "board", revert)
        fake_time.wait(seconds)

    ctx.wait = gitops_sync_then_wait

    with pytest.raises(StepFailed) as failed:
        shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0})

    message = str(failed.value)
    assert message.startswith(
        "VirtualService board: the canary weight is still 100 %, not 0 %, after 60 s;"
        " something else set it back "
    )
    assert 60 <= fake_time.now - 1000.0 < 61
    assert len(fake_time.waits) < 15  # backed off, not a hot loop
    assert rec.notes == [
        "VirtualService board: canary weight 100 % → 0 %",
        "VirtualService board: the canary weight is 100 % again, not the 0 % just set:"
        " something else writes it (a GitOps sync?); retrying until the step's timeout",
    ]


def test_an_abort_stops_a_traffic_shift_between_increments(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    _virtual_service(cluster, 0, 100)
    ctx, _ = make_ctx(kube=kube)

    def abort(seconds: float) -> None:
        raise Aborted()

    ctx.wait = abort

    with pytest.raises(Aborted):
        shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 25})

    assert _weights(kube) == [25, 75]  # the first increment only
    assert _patches(cluster) == 1


# ── shift_traffic: weights left out ───────────────────────────────────────────────────────────


def _routes(cluster: KubeSimulator, *routes: dict[str, Any]) -> None:
    """A VirtualService as a real API server serves it: a zero weight may simply be absent."""
    create_virtual_service(cluster, NS, *routes)


def _route_weights(kube: KubernetesClient) -> list[int | None]:
    vs = kube.read_object(HERE, TRAFFIC["api_version"], "VirtualService", "board")
    return [route.get("weight") for route in vs["spec"]["http"][0]["route"]]


def test_an_absent_stable_weight_reads_as_zero_and_the_shift_completes(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    _routes(
        cluster, {"destination": {"host": "board"}}, {"destination": {"host": "c"}, "weight": 100}
    )
    ctx, rec = make_ctx(kube=kube)

    result = shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 50})

    assert result == {"weights": [50, 0], "canary_percent": 0}
    assert _route_weights(kube) == [100, 0]
    assert rec.notes[0] == "VirtualService board: canary weight 100 % → 50 %"


def test_an_absent_canary_weight_is_already_zero(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    _routes(
        cluster, {"destination": {"host": "board"}, "weight": 100}, {"destination": {"host": "c"}}
    )
    ctx, _ = make_ctx(kube=kube)

    assert shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0}) == {
        "weights": [],
        "canary_percent": 0,
    }
    assert _patches(cluster) == 0


def test_an_absent_canary_weight_is_added_when_shifting_towards_the_canary(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    _routes(
        cluster, {"destination": {"host": "board"}, "weight": 100}, {"destination": {"host": "c"}}
    )
    ctx, _ = make_ctx(kube=kube)

    result = shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 100})

    assert result["canary_percent"] == 100
    assert _route_weights(kube) == [0, 100]


def test_a_wrong_weight_path_names_the_path_instead_of_crashing(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    _routes(cluster, {"destination": {"host": "board"}, "weight": 100})  # no second route
    ctx, _ = make_ctx(kube=kube)

    with pytest.raises(StepFailed) as failed:
        shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0})

    assert str(failed.value) == (
        "VirtualService board has nothing at /spec/http/0/route/1 (weight path"
        " /spec/http/0/route/1/weight): check the traffic weight paths in the catalog"
    )
    assert _patches(cluster) == 0
