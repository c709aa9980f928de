"""Fixtures for the tests against a real control plane (marker ``kube``; binaries: ``make kube``).

One control plane for the package (~5 s to start); each test gets a namespace of its own, with
deploy/rbac.yaml's Role bound in it to the ServiceAccount the bot runs as: the bot's client
(:func:`bot_kube`) has exactly the Role's permissions, never an admin's.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import parse_catalog
from bot.execution.steps.base import StepContext
from tests.conftest import catalog_yaml, service_yaml, skip_or_fail
from tests.kube.control_plane import (
    ISSUER,
    ControlPlane,
    missing_binaries,
    start_control_plane,
    write_kubeconfig,
)
from tests.kube.fake_kubelet import FakeKubelet
from tests.kube.workloads import Workloads, install_crd, install_virtual_service_crd

RBAC_YAML = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
ARGO_ROLLOUTS_CRD = Path(__file__).resolve().parent / "argo-rollouts-crd.yaml"
BOT_SA_NAMESPACE = "rollback-bot"
BOT_SA = "rollback-bot"
_timings: dict[str, float] = {}


@dataclass
class Cluster:
    plane: ControlPlane
    admin: ApiClient
    kubelet: FakeKubelet
    bot_kubeconfig: Path


# package scope: started for the first test of tests/kube, stopped after its last one, so that the
# rest of the suite runs without the control plane's processes
@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = missing_binaries()
    if reason:
        skip_or_fail(reason)
    plane = start_control_plane()
    _timings["control plane start (s)"] = plane.started_seconds
    admin: ApiClient | None = None
    kubelet: FakeKubelet | None = None
    try:
        admin = new_client_from_config(config_file=str(plane.admin_kubeconfig))
        kubelet = FakeKubelet(admin).start()
        bot_kubeconfig = tmp_path_factory.mktemp("bot-kube") / "kubeconfig"
        _bot_service_account(admin, plane, bot_kubeconfig)
        yield Cluster(plane, admin, kubelet, bot_kubeconfig)
        assert not kubelet.errors, f"the fake kubelet failed: {kubelet.errors[:3]}"
    finally:
        if kubelet is not None:
            kubelet.stop()
        if admin is not None:
            admin.close()
        plane.stop()


def _bot_service_account(admin: ApiClient, plane: ControlPlane, kubeconfig: Path) -> None:
    """The ServiceAccount deploy/rbac.yaml binds, and a kubeconfig with a token of it."""
    core = k8s.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": BOT_SA_NAMESPACE}})
    core.create_namespaced_service_account(BOT_SA_NAMESPACE, {"metadata": {"name": BOT_SA}})
    request = {"spec": {"audiences": [ISSUER], "expirationSeconds": 7200}}
    answer = core.create_namespaced_service_account_token(
        BOT_SA, BOT_SA_NAMESPACE, request, _preload_content=False
    )
    token = json.loads(answer.data)["status"]["token"]
    write_kubeconfig(kubeconfig, plane.server, plane.ca, token, BOT_SA)


def rbac_documents(namespace: str) -> list[dict[str, Any]]:
    """deploy/rbac.yaml's Role and RoleBinding, for ``namespace``."""
    docs = [d for d in yaml.safe_load_all(RBAC_YAML.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


@pytest.fixture
def make_namespace(cluster: Cluster) -> Iterator[Callable[[], str]]:
    """Fresh namespaces with the bot's Role bound in them; deleted afterwards (not waited for)."""
    core = k8s.CoreV1Api(cluster.admin)
    rbac = k8s.RbacAuthorizationV1Api(cluster.admin)
    made: list[str] = []

    def make() -> str:
        name = f"t-{secrets.token_hex(4)}"
        core.create_namespace({"metadata": {"name": name}})
        made.append(name)
        for doc in rbac_documents(name):
            if doc["kind"] == "Role":
                rbac.create_namespaced_role(name, doc)
            else:
                rbac.create_namespaced_role_binding(name, doc)
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def namespace(make_namespace: Callable[[], str]) -> str:
    return make_namespace()


@pytest.fixture
def bot_kube(cluster: Cluster) -> Iterator[KubernetesClient]:
    """The bot's own client, as production builds it: a kubeconfig, the ServiceAccount's token."""
    kube = KubernetesClient(kubeconfig=str(cluster.bot_kubeconfig), sleep=lambda s: None)
    yield kube
    kube.close()


@pytest.fixture
def target(namespace: str) -> KubeTarget:
    return KubeTarget(None, namespace)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _timings:
        terminalreporter.write_sep("-", "real Kubernetes control plane")
        for what, seconds in _timings.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f}")


@pytest.fixture(scope="package")
def virtual_service_crd(cluster: Cluster) -> None:
    install_virtual_service_crd(cluster.admin)


@pytest.fixture(scope="package")
def argo_rollouts_crd(cluster: Cluster) -> None:
    """Argo Rollouts' published Rollout CRD (trimmed, see the file's header)."""
    install_crd(cluster.admin, yaml.safe_load(ARGO_ROLLOUTS_CRD.read_text()))


@pytest.fixture
def workloads(cluster: Cluster, namespace: str) -> Workloads:
    return Workloads(cluster.admin, namespace)


@dataclass
class Recorded:
    remembered: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@pytest.fixture
def make_ctx(bot_kube: KubernetesClient, target: KubeTarget) -> Iterator[Any]:
    """A StepContext on real time: waits really wait (the controllers need the time)."""
    http = HttpClient()

    def make(
        previous: dict[str, Any] | None = None, timeout_seconds: float = 30.0
    ) -> tuple[StepContext, Recorded]:
        rec = Recorded()
        text = catalog_yaml(service_yaml("checkout", None))
        service = parse_catalog(text).services["checkout"]
        ctx = StepContext(
            rollback_id=7,
            position=2,
            service=service,
            target=target,
            kube=bot_kube,
            http=http,
            prometheus=None,
            clock=lambda: datetime.now(UTC),
            wait=time.sleep,
            remember=rec.remembered.update,
            previous=dict(previous or {}),
            timeout_seconds=timeout_seconds,
            note=rec.notes.append,
            fresh_detail=lambda: dict(rec.remembered),
        )
        return ctx, rec

    yield make
    http.close()


@pytest.fixture
def two_contexts(cluster: Cluster, tmp_path: Path) -> Iterator[KubernetesClient]:
    """The bot's kubeconfig with its one context named twice: ``prod`` and ``staging``."""
    config = yaml.safe_load(cluster.bot_kubeconfig.read_text())
    (context,) = config["contexts"]
    config["contexts"] = [{**copy.deepcopy(context), "name": name} for name in ("prod", "staging")]
    config["current-context"] = "prod"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    kube = KubernetesClient(kubeconfig=str(path), sleep=lambda s: None)
    yield kube
    kube.close()
