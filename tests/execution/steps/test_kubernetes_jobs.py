"""run_job: a Job is this step's only if it carries the step's run id; finished Jobs expire.

Rollback ids restart at 1 with a new database and repeat across bot installations sharing a
namespace: a Job left by another rollback must never pass for this one's (issue #10, item 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import BatchV1Api, V1Job

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.waits import DEFAULT_JOB_TTL_SECONDS, run_job
from bot.rollback.plan import STEP_RULES
from bot.sim.kube_api import KubeSimulator
from tests.execution.steps.conftest import FakeTime

NS = "shop"
HERE = KubeTarget(None, NS)
TEMPLATE = {
    "template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}
    }
}


@pytest.fixture
def cluster(fake_time: FakeTime) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=fake_time.monotonic) as sim:
        sim.seed_namespace(NS)  # Jobs, like any object, need their namespace to exist
        yield sim


@pytest.fixture
def kube(cluster: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client())
    yield client
    client.close()


def old_job(cluster: KubeSimulator, name: str, rollback_id: str) -> None:
    """A finished Job left by an earlier installation (or database) whose ids collide."""
    with cluster.api_client() as api:
        body = V1Job.model_validate(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "labels": {"rollback-bot/rollback": rollback_id}},
                "spec": TEMPLATE,
            }
        )
        BatchV1Api(api).create_namespaced_job(NS, body)
    cluster.tick()  # the simulator's jobs complete at once by default


def posted_jobs(cluster: KubeSimulator) -> int:
    return sum(1 for method, path in cluster.requests if method == "POST" and "/jobs" in path)


def test_another_rollbacks_job_with_the_same_id_is_not_taken_for_this_one(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    old_job(cluster, "rollback-7-2", "7")  # what main named rollback 7's step 2 Job
    cluster.set_job_outcome(NS, "rollback-7-2", "complete", after_seconds=20)
    ctx, rec = make_ctx(kube=kube, timeout_seconds=120)

    result = run_job(ctx, {"job": TEMPLATE})

    job = result["job"]
    assert job == f"rollback-7-2-{result['run_id']}" and job != "rollback-7-2"
    assert fake_time.now - 1000.0 >= 20  # it waited for its own Job, which really ran
    assert posted_jobs(cluster) == 2
    labels = kube.read_object(HERE, "batch/v1", "Job", job)["metadata"]["labels"]
    assert labels == {"rollback-bot/rollback": "7", "rollback-bot/run": result["run_id"]}
    assert rec.remembered["run_id"] == result["run_id"]


def test_a_named_job_from_elsewhere_is_refused_with_what_to_do(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    old_job(cluster, "db-downgrade", "7")  # same name, same rollback id: still not ours
    ctx, rec = make_ctx(kube=kube)

    with pytest.raises(StepFailed) as refused:
        run_job(ctx, {"job": TEMPLATE, "job_name": "db-downgrade"})

    message = str(refused.value)
    assert 'job "db-downgrade" already exists in shop and was not created by this step' in message
    assert "(its labels: rollback-bot/rollback=7, created " in message
    assert "kubectl -n shop delete job db-downgrade" in message
    assert "another job_name" in message
    assert rec.remembered["job"] == "db-downgrade"  # the run id was stored before the create
    assert "run_id" in rec.remembered


def test_a_resumed_step_recognises_its_own_job_by_the_remembered_run_id(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    first, first_rec = make_ctx(kube=kube)
    cluster.set_job_outcome(NS, "db-", "complete", after_seconds=5)
    run_job(first, {"job": TEMPLATE, "job_name": "db-downgrade"})

    # a crash after the create: the engine hands the stored detail to the next attempt
    again, _ = make_ctx(kube=kube, previous=first_rec.remembered)
    result = run_job(again, {"job": TEMPLATE, "job_name": "db-downgrade"})

    assert result["run_id"] == first_rec.remembered["run_id"]
    assert posted_jobs(cluster) == 2  # the second create met AlreadyExists and was ours


def test_a_crash_before_the_create_still_creates_the_remembered_job(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, _ = make_ctx(kube=kube, previous={"job": "rollback-7-2-0badc0de", "run_id": "0badc0de"})

    result = run_job(ctx, {"job": TEMPLATE})

    assert result["job"] == "rollback-7-2-0badc0de"
    job = kube.read_object(HERE, "batch/v1", "Job", "rollback-7-2-0badc0de")
    assert job["metadata"]["labels"]["rollback-bot/run"] == "0badc0de"


def test_finished_jobs_are_left_to_kubernetes_to_remove(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any, fake_time: FakeTime
) -> None:
    ctx, _ = make_ctx(kube=kube)
    job = run_job(ctx, {"job": TEMPLATE})["job"]
    assert kube.read_object(HERE, "batch/v1", "Job", job)["spec"]["ttlSecondsAfterFinished"] == (
        DEFAULT_JOB_TTL_SECONDS
    )

    fake_time.now += DEFAULT_JOB_TTL_SECONDS
    cluster.tick()

    assert cluster.get_object("batch/v1", "jobs", NS, job) is None


def test_the_ttl_can_be_set_per_step_and_a_too_short_one_is_refused(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    assert "ttl_seconds_after_finished" in STEP_RULES["run_job"].optional
    ctx, _ = make_ctx(kube=kube)
    job = run_job(ctx, {"job": TEMPLATE, "ttl_seconds_after_finished": 600})["job"]
    assert kube.read_object(HERE, "batch/v1", "Job", job)["spec"]["ttlSecondsAfterFinished"] == 600

    ctx, _ = make_ctx(kube=kube)
    with pytest.raises(StepFailed, match=r"at least 60 .* not 5$"):
        run_job(ctx, {"job": TEMPLATE, "ttl_seconds_after_finished": 5})
    assert posted_jobs(cluster) == 1


def test_a_job_that_disappears_is_a_failure_not_a_success(
    cluster: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    cluster.inject("GET", r"/jobs/gone-job$", 404, times=1)
    ctx, _ = make_ctx(kube=kube)

    with pytest.raises(StepFailed, match=r"^Job gone-job is gone before the bot saw it end"):
        run_job(ctx, {"job": TEMPLATE, "job_name": "gone-job"})
