"""Seeding the Kubernetes simulator: objects as a real cluster has them after some releases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.sim.kube_controller import DEPLOYMENTS
from bot.sim.kube_schema import ResourceType
from bot.sim.kube_store import JSON_PATCH, ObjectStore

SERVICES = ResourceType("", "v1", "services", "Service")


def seed_deployment(
    store: ObjectStore,
    settle: Callable[[str, str], None],
    namespace: str,
    name: str,
    images: Sequence[str],
    replicas: int,
    labels: dict[str, str] | None,
    container: str,
) -> dict[str, Any]:
    """Create the deployment on images[0], then roll it through the rest: every revision gets
    its ReplicaSet and is settled (rolled out) by ``settle`` before the next. The caller holds
    the simulator's lock."""
    if not images:
        raise ValueError("seed_deployment needs at least one image")
    labels = dict(labels or {"app": name})
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": container, "image": images[0]}]},
            },
        },
    }
    store.ensure_namespace(namespace)
    store.create(DEPLOYMENTS, namespace, body)
    settle(namespace, name)
    for image in images[1:]:
        path = "/spec/template/spec/containers/0/image"
        patch = [{"op": "replace", "path": path, "value": image}]
        store.patch(DEPLOYMENTS, namespace, name, JSON_PATCH, patch)
        settle(namespace, name)
    return dict(store.get(DEPLOYMENTS, namespace, name))


def seed_service(
    store: ObjectStore, namespace: str, name: str, selector: dict[str, str], port: int
) -> dict[str, Any]:
    """A Service selecting ``selector`` with one http port (the caller holds the lock)."""
    body = {
        "metadata": {"name": name},
        "spec": {"selector": dict(selector), "ports": [{"name": "http", "port": port}]},
    }
    store.ensure_namespace(namespace)
    return dict(store.create(SERVICES, namespace, body))
