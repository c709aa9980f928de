"""Objects the tests put in the cluster as a CD pipeline would: as an admin, not as the bot."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient


def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll with a deadline: the controllers work in their own processes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


VS_GROUP, VS_VERSION, VS_PLURAL = "networking.istio.io", "v1beta1", "virtualservices"


def deployment_body(
    name: str, image: str, *, replicas: int = 2, progress_deadline: int = 600, app: str = ""
) -> dict[str, Any]:
    labels = {"app": app or name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "progressDeadlineSeconds": progress_deadline,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": image}],
                },
            },
        },
    }


class Workloads:
    """Deployments with a history, Services, a VirtualService-shaped CRD, as the admin."""

    def __init__(self, admin: ApiClient, namespace: str) -> None:
        self.apps = k8s.AppsV1Api(admin)
        self.core = k8s.CoreV1Api(admin)
        self.batch = k8s.BatchV1Api(admin)
        self.custom = k8s.CustomObjectsApi(admin)
        self.ns = namespace

    def deployment(self, name: str) -> k8s.V1Deployment:
        return self.apps.read_namespaced_deployment(name, self.ns)

    def rolled_out(self, name: str) -> bool:
        d = self.deployment(name)
        s = d.status
        want = d.spec.replicas
        return bool(
            s
            and (s.observed_generation or 0) >= (d.metadata.generation or 0)
            and (s.updated_replicas or 0) == want
            and (s.replicas or 0) == want
            and (s.available_replicas or 0) == want
        )

    def wait_rolled_out(self, name: str, timeout: float = 30.0) -> None:
        until(lambda: self.rolled_out(name), f"deployment {name} rolled out", timeout)

    def release(self, name: str, images: list[str], **kw: Any) -> None:
        """Create ``name`` at images[0], then roll out each next image (revisions 1..n)."""
        body = deployment_body(name, images[0], **kw)
        self.apps.create_namespaced_deployment(self.ns, body)
        self.wait_rolled_out(name)
        for image in images[1:]:
            self.set_image(name, image)
            self.wait_rolled_out(name)

    def set_image(self, name: str, image: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        self.apps.patch_namespaced_deployment(name, self.ns, patch)

    def images(self, name: str) -> dict[str, str]:
        spec = self.deployment(name).spec.template.spec
        return {c.name: c.image for c in spec.containers}

    def revision(self, name: str) -> int:
        annotations = self.deployment(name).metadata.annotations or {}
        return int(annotations.get("deployment.kubernetes.io/revision", "0"))

    def service(self, name: str, selector: dict[str, str]) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        self.core.create_namespaced_service(self.ns, body)

    def selector(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_service(name, self.ns).spec.selector or {})

    def virtual_service(self, name: str, route: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{VS_GROUP}/{VS_VERSION}",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {"hosts": [name], "http": [{"route": copy.deepcopy(route)}]},
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            VS_GROUP, VS_VERSION, self.ns, VS_PLURAL, body
        )
        return created

    def read_virtual_service(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            VS_GROUP, VS_VERSION, self.ns, VS_PLURAL, name
        )
        return found


VIRTUAL_SERVICE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{VS_PLURAL}.{VS_GROUP}"},
    "spec": {
        "group": VS_GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": VS_PLURAL,
            "singular": "virtualservice",
            "kind": "VirtualService",
            "shortNames": ["vs"],
        },
        "versions": [
            {
                "name": VS_VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "hosts": {"type": "array", "items": {"type": "string"}},
                                    "http": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "route": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "destination": {
                                                                "type": "object",
                                                                "properties": {
                                                                    "host": {"type": "string"},
                                                                    "subset": {"type": "string"},
                                                                },
                                                            },
                                                            "weight": {
                                                                "type": "integer",
                                                                "format": "int32",
                                                                "minimum": 0,
                                                                "maximum": 100,
                                                            },
                                                        },
                                                    },
                                                }
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def install_virtual_service_crd(admin: ApiClient) -> None:
    """Istio's VirtualService, reduced to what a canary shift touches; Established when done."""
    install_crd(admin, VIRTUAL_SERVICE_CRD)


def install_crd(admin: ApiClient, crd: dict[str, Any]) -> None:
    """Create a CustomResourceDefinition (unless there) and wait until it is Established."""
    ext = k8s.ApiextensionsV1Api(admin)
    name = crd["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(crd)
    except k8s.exceptions.ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    until(established, f"CRD {name} established", 30)
