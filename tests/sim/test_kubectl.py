"""The real `kubectl` against the Kubernetes simulator (issue #12, item 15).

kubectl reads discovery first, decodes every answer with the Go types, sends Go-marshalled
templates back on `rollout undo` and watches during `rollout status`: if the simulator passes
these, it is not only the Python client it fools. Skipped when kubectl is not on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sim.kube_api import KubeSimulator

NS = "shop"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


class FakeClock:
    """Seconds that only move when a test says so (rollouts wait on this clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=clock) as started:
        started.seed_deployment(NS, "web", images=["web:1", "web:2"])
        started.seed_service(NS, "web", {"app": "web"})
        yield started


@pytest.fixture
def kubectl(sim: KubeSimulator, tmp_path: Path) -> Kubectl:
    return Kubectl(sim, tmp_path)


class Kubectl:
    """kubectl with a kubeconfig (in a temporary home) whose current context is the simulator."""

    def __init__(self, sim: KubeSimulator, home: Path) -> None:
        config = home / "kubeconfig"
        config.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: sim\n  cluster:\n    server: {sim.url}\n"
            f"contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n"
            f"    namespace: {NS}\n"
            "current-context: sim\nusers:\n- name: sim\n  user: {}\n"
        )
        proxies = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"}
        self.env = {k: v for k, v in os.environ.items() if k not in proxies}
        self.env |= {"KUBECONFIG": str(config), "HOME": str(home), "NO_PROXY": "127.0.0.1"}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        done = subprocess.run(
            [KUBECTL, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def start(self, *args: str) -> subprocess.Popen[str]:
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def json(self, *args: str) -> dict[str, object]:
        parsed = json.loads(self(*args, "-o", "json").stdout)
        assert isinstance(parsed, dict)
        return parsed


def replica_sets(sim: KubeSimulator, kubectl: Kubectl) -> list[str]:
    items = kubectl.json("get", "replicasets")["items"]
    assert isinstance(items, list)
    return sorted(item["metadata"]["name"] for item in items)


def test_get_reads_discovery_and_refuses_what_is_not_served(kubectl: Kubectl) -> None:
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    assert "web" in kubectl("get", "deployments.apps,svc,rs,pods").stdout
    assert kubectl("get", "namespaces", "-o", "name").stdout.split() == [
        "namespace/default",
        "namespace/kube-node-lease",
        "namespace/kube-public",
        "namespace/kube-system",
        f"namespace/{NS}",
    ]

    typo = kubectl("get", "deploymnets", check=False)
    assert typo.returncode == 1
    assert 'the server doesn\'t have a resource type "deploymnets"' in typo.stderr
    retired = kubectl("get", "jobs.v1beta1.batch", check=False)
    assert retired.returncode == 1
    assert "the server doesn't have a resource type" in retired.stderr


def test_describe_shows_the_rollout_as_kubectl_sees_it(kubectl: Kubectl) -> None:
    described = kubectl("describe", "deployment", "web").stdout

    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available" in described
    assert "Image:         web:2" in described
    assert "NewReplicaSet:   web-" in described and "(3/3 replicas created)" in described


def test_rollout_undo_reuses_the_replica_set_and_history_follows(
    sim: KubeSimulator, kubectl: Kubectl
) -> None:
    before = replica_sets(sim, kubectl)
    history = kubectl("rollout", "history", "deployment/web").stdout.split("\n")
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]

    assert "rolled back" in kubectl("rollout", "undo", "deployment/web").stdout

    # kubectl sent the template back as Go marshals it (creationTimestamp: null …): no duplicate.
    assert replica_sets(sim, kubectl) == before
    history = kubectl("rollout", "history", "deployment/web").stdout.split("\n")
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["2", "3"]
    revision_3 = kubectl("rollout", "history", "deployment/web", "--revision=3").stdout
    assert "web:1" in revision_3
    status = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in status.stdout


def watch_until_the_clock_moves(
    sim: KubeSimulator, kubectl: Kubectl, clock: FakeClock, seconds: float
) -> subprocess.CompletedProcess[str]:
    """`kubectl rollout status`, once it watches, sees the simulator's clock move `seconds`."""
    watching = kubectl.start("rollout", "status", "deployment/web", "--timeout=60s")
    try:
        sim.wait_for_request("GET", r"/deployments\?.*watch=true", timeout=30)
        assert watching.poll() is None  # still waiting for the rollout
        clock.now += seconds
        stdout, stderr = watching.communicate(timeout=30)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.communicate()
    assert watching.returncode is not None
    return subprocess.CompletedProcess(watching.args, watching.returncode, stdout, stderr)


def test_rollout_status_watches_a_rollout_to_its_end(
    sim: KubeSimulator, kubectl: Kubectl, clock: FakeClock
) -> None:
    sim.set_ready_delay(30)
    kubectl("set", "image", "deployment/web", "app=web:3")

    status = watch_until_the_clock_moves(sim, kubectl, clock, 31)

    assert status.returncode == 0, status.stderr
    assert "Waiting for deployment" in status.stdout
    assert 'deployment "web" successfully rolled out' in status.stdout


def test_rollout_status_reports_a_crash_looping_release(
    sim: KubeSimulator, kubectl: Kubectl, clock: FakeClock
) -> None:
    sim.set_never_ready(NS, "web", image="web:bad")
    kubectl("set", "image", "deployment/web", "app=web:bad")

    failed = watch_until_the_clock_moves(sim, kubectl, clock, 601)

    assert failed.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in failed.stderr
    kubectl("rollout", "undo", "deployment/web")
    status = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert "successfully rolled out" in status.stdout


def test_scale_and_patch_are_validated_like_a_cluster(sim: KubeSimulator, kubectl: Kubectl) -> None:
    kubectl("scale", "deployment/web", "--replicas=5")
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "5"

    refused = kubectl("scale", "deployment/web", "--replicas=-1", check=False)
    assert refused.returncode == 1
    bad = kubectl(
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":"three"}}',
        check=False,
    )
    assert bad.returncode == 1
    assert 'The Deployment "web" is invalid: spec.replicas' in bad.stderr
    # Nothing poisoned: every later request still works.
    assert kubectl("get", "svc", "web", "-o", "name").stdout.strip() == "service/web"

    unknown = kubectl("patch", "deployment", "web", "-p", '{"spec":{"replica":2}}')
    assert 'Warning: unknown field "spec.replica"' in unknown.stderr
    json_patch = '[{"op":"replace","path":"/spec/replicas","value":2}]'
    kubectl("patch", "deployment", "web", "--type=json", "-p", json_patch)
    deployment = sim.get_object("apps/v1", "deployments", NS, "web")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert "replica" not in deployment["spec"]
