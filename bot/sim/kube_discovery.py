"""Which resources the simulated cluster serves, and the discovery documents that say so.

A real API server serves a fixed set of group/version/resource triples: anything else — a
typo'd plural (`deploymnets`), a retired version (`batch/v1beta1` Jobs, `extensions/v1beta1`
Deployments), a CRD that was never installed — is a 404. Clients find out what is served from
the discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`),
which real `kubectl` reads before anything else.

The cluster comes with the built-in kinds a rollback bot meets and with the Istio and Argo
Rollouts CRDs installed; `Discovery.install` adds more (`KubeSimulator.install_crd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.sim.kube_schema import ResourceType

__all__ = ["ApiResource", "Discovery"]

JSON = Any
_ALL_VERBS = ("create", "delete", "get", "list", "patch", "update")
_READ = ("get", "list")


@dataclass(frozen=True)
class ApiResource:
    group: str
    versions: tuple[str, ...]  # served, preferred first
    plural: str
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = _ALL_VERBS
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale"
    categories: tuple[str, ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()


_BUILTIN = (
    ApiResource("", ("v1",), "namespaces", "Namespace", False, ("create", "get", "list"), ("ns",)),
    ApiResource("", ("v1",), "pods", "Pod", verbs=_READ, short_names=("po",), categories=("all",)),
    ApiResource(
        "",
        ("v1",),
        "services",
        "Service",
        short_names=("svc",),
        subresources=("status",),
        categories=("all",),
    ),
    ApiResource("", ("v1",), "configmaps", "ConfigMap", short_names=("cm",)),
    ApiResource("", ("v1",), "secrets", "Secret"),
    ApiResource("", ("v1",), "events", "Event", verbs=_READ, short_names=("ev",)),
    ApiResource(
        "apps",
        ("v1",),
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ApiResource(
        "apps",
        ("v1",),
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ApiResource(
        "apps",
        ("v1",),
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        subresources=("scale", "status"),
        categories=("all",),
    ),
    ApiResource(
        "apps",
        ("v1",),
        "daemonsets",
        "DaemonSet",
        short_names=("ds",),
        subresources=("status",),
        categories=("all",),
    ),
    ApiResource("batch", ("v1",), "jobs", "Job", subresources=("status",), categories=("all",)),
    ApiResource(
        "batch",
        ("v1",),
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        subresources=("status",),
        categories=("all",),
    ),
    ApiResource(
        "networking.k8s.io",
        ("v1",),
        "ingresses",
        "Ingress",
        short_names=("ing",),
        subresources=("status",),
    ),
    ApiResource(
        "networking.k8s.io", ("v1",), "networkpolicies", "NetworkPolicy", short_names=("netpol",)
    ),
    ApiResource(
        "autoscaling",
        ("v2", "v1"),
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        subresources=("status",),
    ),
    ApiResource(
        "policy",
        ("v1",),
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
    # a question, not an object: create only, answered and stored nowhere (kube_access)
    ApiResource(
        "authorization.k8s.io",
        ("v1",),
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
)
_ISTIO = ("v1", "v1beta1", "v1alpha3")
_PREINSTALLED_CRDS = (
    ApiResource(
        "networking.istio.io",
        _ISTIO,
        "virtualservices",
        "VirtualService",
        short_names=("vs",),
        subresources=("status",),
    ),
    ApiResource(
        "networking.istio.io",
        _ISTIO,
        "destinationrules",
        "DestinationRule",
        short_names=("dr",),
        subresources=("status",),
    ),
    ApiResource(
        "networking.istio.io",
        _ISTIO,
        "gateways",
        "Gateway",
        short_names=("gw",),
        subresources=("status",),
    ),
    ApiResource(
        "argoproj.io",
        ("v1alpha1",),
        "rollouts",
        "Rollout",
        short_names=("ro",),
        subresources=("scale", "status"),
    ),
)


class Discovery:
    """The served resources by (group, plural), and their discovery documents."""

    def __init__(self) -> None:
        self._resources: dict[tuple[str, str], ApiResource] = {}
        for resource in _BUILTIN + _PREINSTALLED_CRDS:
            self.install(resource)

    def install(self, resource: ApiResource) -> None:
        self._resources[(resource.group, resource.plural)] = resource

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The served resource, or None: the server answers 404 for it."""
        found = self._resources.get((group, plural))
        if found is None or version not in found.versions:
            return None
        return ResourceType(group, version, plural, found.kind)

    def subresources(self, group: str, plural: str) -> tuple[str, ...]:
        found = self._resources.get((group, plural))
        return () if found is None else found.subresources

    def document(self, parts: list[str], address: str) -> JSON | None:
        """The discovery document at /{parts}, None when there is none."""
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": address}
                ],
            }
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if parts == ["apis"]:
            groups = [self._group(name) for name in self._groups()]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in self._groups():
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])}
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in self._versions(parts[1]):
            return self._resource_list(parts[1], parts[2])
        return None

    def _groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self._resources.values() if r.group))

    def _versions(self, group: str) -> list[str]:
        versions: dict[str, None] = {}
        for resource in self._resources.values():
            if resource.group == group:
                versions |= dict.fromkeys(resource.versions)
        return list(versions)

    def _group(self, group: str) -> JSON:
        versions = [
            {"groupVersion": f"{group}/{version}", "version": version}
            for version in self._versions(group)
        ]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group: str, version: str) -> JSON:
        resources: list[JSON] = []
        for r in self._resources.values():
            if r.group != group or version not in r.versions:
                continue
            entry: JSON = {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            resources.append(entry)
            for sub in r.subresources:
                resources.append(_subresource(r, sub))
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }


def _subresource(resource: ApiResource, sub: str) -> JSON:
    entry: JSON = {
        "name": f"{resource.plural}/{sub}",
        "singularName": "",
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": ["get", "patch", "update"],
    }
    if sub == "scale":
        entry |= {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    return entry
