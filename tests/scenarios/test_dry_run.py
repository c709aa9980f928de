"""`/rollback run --dry-run` reads what the run would read and dry-runs what it would write.

Issue #10, item 8: Jobs were never sent with dryRun=All, traffic objects were never read (a
canary dry run looked fine without its VirtualService), and "server-side dry run accepted" was
printed where no request had been sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from tests.conftest import Harness, catalog_yaml

NS = "shop"
JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'migrate:1'}]}}}"


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


def dry_run(h: Harness, service: str) -> str:
    h.slash(f"run {service} --dry-run")
    return str(h.slack.wait_for("response_url").params["text"])


def step_line(answer: str, name: str) -> str:
    """The numbered line of step ``name`` and its continuation lines."""
    match = re.search(
        rf"^  \d+\. {re.escape(name)}.*?(?=^  \d+\. |^\*|^Point of no return)", answer, re.M | re.S
    )
    assert match, f"no step {name!r} in:\n{answer}"
    return match.group(0)


def writes(kube_sim: KubeSimulator, since: int = 0) -> list[tuple[str, str]]:
    """The write requests from the ``since``-th request on."""
    requests = kube_sim.requests[since:]
    return [(m, p) for m, p in requests if m in ("POST", "PUT", "PATCH", "DELETE")]


def canary_harness(make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator) -> Harness:
    kube_sim.seed_deployment(NS, "board", images=["b:1"])
    kube_sim.seed_deployment(NS, "board-canary", images=["b:2"], replicas=1)
    text = catalog_yaml(
        "  board:\n    namespace: shop\n    deployment: board\n    strategy: canary\n"
        "    responders: [U0ONCALL1]\n    signals: {error_rate: board_errors}\n"
        "    canary: {deployment: board-canary, step_percent: 25, traffic: {name: board}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    return h


def virtual_service(kube_sim: KubeSimulator, route: list[dict[str, Any]]) -> None:
    with kube_sim.api_client() as api:
        CustomObjectsApi(api).create_namespaced_custom_object(
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


def test_a_canary_dry_run_reads_the_traffic_object_and_dry_runs_the_shift(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    h = canary_harness(make_harness, kube, kube_sim)
    # a real API server leaves out a zero weight
    virtual_service(
        kube_sim,
        [{"destination": {"host": "board"}}, {"destination": {"host": "c"}, "weight": 100}],
    )
    version, since = kube_sim.resource_version, len(kube_sim.requests)

    answer = dry_run(h, "board")

    shift = step_line(answer, "Shift traffic off the canary")
    assert (
        "VirtualService board: canary 100 % → 0 %, stable 0 % → 100 %, in steps of 25 %,"
        " metric gate between steps; server-side dry run accepted"
    ) in shift
    assert "reads VirtualService/board, Deployment/board-canary (all found)" in answer
    assert "board-canary: 1 → 0 replicas; server-side dry run accepted" in answer
    patches = [p for m, p in writes(kube_sim, since) if "/virtualservices/board" in p]
    assert len(patches) == 1 and "dryRun=All" in patches[0]
    assert all("dryRun=All" in p for _, p in writes(kube_sim, since))
    assert kube_sim.resource_version == version  # nothing changed in the cluster


def test_a_canary_dry_run_without_its_virtual_service_says_it_would_fail(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    h = canary_harness(make_harness, kube, kube_sim)  # no VirtualService at all

    answer = dry_run(h, "board")

    assert ':warning: VirtualService/board: virtualservice "board" not found' in step_line(
        answer, "Snapshot the traffic split"
    )
    shift = step_line(answer, "Shift traffic off the canary")
    assert ":warning: would fail now:" in shift and "not found" in shift
    assert "dry run accepted" not in shift


def test_jobs_restarts_and_images_are_dry_run_on_the_server(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "db-api", images=["db:1", "db:2"])
    kube_sim.seed_service(NS, "db", {"app": "db-api", "colour": "blue"})
    text = catalog_yaml(
        "  db:\n    namespace: shop\n    deployment: db-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n"
        f"      database:\n        - {{kind: run_job, name: Downgrade schema, job: {JOB}}}\n"
        "      application:\n"
        "        - {kind: set_image, name: Same image, container: app, image: 'db:2'}\n"
        "        - {kind: set_image, name: Old image, container: app, image: 'db:1'}\n"
        "        - {kind: restart, name: Restart}\n"
        "        - {kind: switch_selector, name: Green, service: db, selector: {colour: green}}\n"
        "        - {kind: switch_selector, name: Blue, service: db, selector: {colour: blue}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    version = kube_sim.resource_version

    answer = dry_run(h, "db")

    job = step_line(answer, "Downgrade schema")
    assert "creates a Job from the catalog's template (migrate:1)" in job
    assert "server-side dry run accepted" in job
    posts = [p for m, p in writes(kube_sim) if m == "POST"]
    assert len(posts) == 1 and "/jobs?" in posts[0] and "dryRun=All" in posts[0]
    assert "db-api container app: db:2 — already that image, nothing would change" in answer
    assert "accepted" not in step_line(answer, "Same image")  # no request was sent
    assert "db-api container app: db:2 → db:1; server-side dry run accepted" in answer
    assert "replaces every pod of db-api (rollout restart); server-side dry run accepted" in (
        step_line(answer, "Restart")
    )
    # selectors as kubectl takes them, not Python dicts
    assert (
        "Service db selector app=db-api,colour=blue → app=db-api,colour=green;"
        " server-side dry run accepted" in answer
    )
    assert "Service db selector app=db-api,colour=blue — already so" in step_line(answer, "Blue")
    assert "{'" not in answer
    assert all("dryRun=All" in p for _, p in writes(kube_sim))
    assert kube_sim.resource_version == version
    assert kube_sim.get_object("batch/v1", "jobs", NS, "rollback-dry-run") is None


def test_job_steps_the_real_run_would_refuse_say_so(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    kube_sim.seed_deployment(NS, "db-api", images=["db:1", "db:2"])
    kube.create_job(
        KubeTarget(None, NS),
        "db-down",
        {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "migrate:0"}],
                }
            }
        },
        labels={"rollback-bot/rollback": "1"},
    )  # left by another installation
    text = catalog_yaml(
        "  db:\n    namespace: shop\n    deployment: db-api\n    responders: [U0ONCALL1]\n"
        "    phases:\n      database:\n"
        f"        - {{kind: run_job, name: Named, job_name: db-down, job: {JOB}}}\n"
        f"        - {{kind: run_job, name: Short TTL, ttl_seconds_after_finished: 5, job: {JOB}}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    version = kube_sim.resource_version

    answer = dry_run(h, "db")

    named = step_line(answer, "Named")
    assert ':warning: would fail now: job "db-down" already exists in shop and was not created' in (
        named
    )
    assert "Short TTL — :warning: would fail now: ttl_seconds_after_finished must be" in answer
    assert "accepted" not in answer
    assert kube_sim.resource_version == version
