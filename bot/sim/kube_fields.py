"""The typed fields of the built-in kinds the simulator serves, as the API server's Go structs.

Each `Obj` is a Go struct (its name appears in decoding errors) with its JSON fields. Subtrees
the bot never looks into (probes, affinity, volumes …) are typed "object": they must be objects
and are kept as sent. Custom objects have no schema here: they are checked structurally only
(see `kube_decode` for how a body is decoded against these).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GO_TYPES", "INT_RANGES", "ListOf", "MapOf", "Obj", "Schema", "schema_of"]

JSON = Any


@dataclass(frozen=True)
class Obj:
    """A Go struct: its type name (for messages) and its JSON fields."""

    go: str
    fields: dict[str, Schema]


@dataclass(frozen=True)
class ListOf:
    item: Schema


@dataclass(frozen=True)
class MapOf:
    value: Schema


# Scalars: "string", "int32", "int64", "bool", "intstr", "quantity", "time"; "object" is a
# struct the simulator does not model (kept as sent, must be an object); "any" is free-form.
Schema = Obj | ListOf | MapOf | str

GO_TYPES = {
    "string": "string",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool",
    "time": "v1.Time",
    "object": "struct",
}
INT_RANGES = {"int32": 2**31, "int64": 2**63}

_STRINGS = ListOf("string")
_LABELS = MapOf("string")
_OBJECTS = ListOf("object")
_META = Obj(
    "ObjectMeta",
    {
        "name": "string",
        "generateName": "string",
        "namespace": "string",
        "selfLink": "string",
        "uid": "string",
        "resourceVersion": "string",
        "generation": "int64",
        "creationTimestamp": "time",
        "deletionTimestamp": "time",
        "deletionGracePeriodSeconds": "int64",
        "labels": _LABELS,
        "annotations": _LABELS,
        "ownerReferences": ListOf(
            Obj(
                "OwnerReference",
                {
                    "apiVersion": "string",
                    "kind": "string",
                    "name": "string",
                    "uid": "string",
                    "controller": "bool",
                    "blockOwnerDeletion": "bool",
                },
            )
        ),
        "finalizers": _STRINGS,
        "managedFields": _OBJECTS,
    },
)
_SELECTOR = Obj(
    "LabelSelector",
    {
        "matchLabels": _LABELS,
        "matchExpressions": ListOf(
            Obj(
                "LabelSelectorRequirement",
                {"key": "string", "operator": "string", "values": _STRINGS},
            )
        ),
    },
)
_CONTAINER = Obj(
    "Container",
    {
        "name": "string",
        "image": "string",
        "command": _STRINGS,
        "args": _STRINGS,
        "workingDir": "string",
        "ports": ListOf(
            Obj(
                "ContainerPort",
                {
                    "name": "string",
                    "hostPort": "int32",
                    "containerPort": "int32",
                    "protocol": "string",
                    "hostIP": "string",
                },
            )
        ),
        "envFrom": _OBJECTS,
        "env": ListOf(Obj("EnvVar", {"name": "string", "value": "string", "valueFrom": "object"})),
        "resources": Obj(
            "ResourceRequirements",
            {"limits": MapOf("quantity"), "requests": MapOf("quantity"), "claims": _OBJECTS},
        ),
        "resizePolicy": _OBJECTS,
        "restartPolicy": "string",
        "volumeMounts": _OBJECTS,
        "volumeDevices": _OBJECTS,
        "livenessProbe": "object",
        "readinessProbe": "object",
        "startupProbe": "object",
        "lifecycle": "object",
        "terminationMessagePath": "string",
        "terminationMessagePolicy": "string",
        "imagePullPolicy": "string",
        "securityContext": "object",
        "stdin": "bool",
        "stdinOnce": "bool",
        "tty": "bool",
    },
)
_POD_SPEC_FIELDS: dict[str, Schema] = {
    "containers": ListOf(_CONTAINER),
    "initContainers": ListOf(_CONTAINER),
    "ephemeralContainers": _OBJECTS,
    "volumes": _OBJECTS,
    "restartPolicy": "string",
    "terminationGracePeriodSeconds": "int64",
    "activeDeadlineSeconds": "int64",
    "dnsPolicy": "string",
    "nodeSelector": _LABELS,
    "serviceAccountName": "string",
    "serviceAccount": "string",
    "automountServiceAccountToken": "bool",
    "nodeName": "string",
    "hostNetwork": "bool",
    "hostPID": "bool",
    "hostIPC": "bool",
    "shareProcessNamespace": "bool",
    "securityContext": "object",
    "imagePullSecrets": ListOf(Obj("LocalObjectReference", {"name": "string"})),
    "hostname": "string",
    "subdomain": "string",
    "affinity": "object",
    "schedulerName": "string",
    "tolerations": _OBJECTS,
    "hostAliases": _OBJECTS,
    "priorityClassName": "string",
    "priority": "int32",
    "dnsConfig": "object",
    "readinessGates": _OBJECTS,
    "runtimeClassName": "string",
    "enableServiceLinks": "bool",
    "preemptionPolicy": "string",
    "overhead": MapOf("quantity"),
    "topologySpreadConstraints": _OBJECTS,
    "setHostnameAsFQDN": "bool",
    "os": "object",
    "hostUsers": "bool",
    "schedulingGates": _OBJECTS,
    "resourceClaims": _OBJECTS,
    "resources": "object",
}
_TEMPLATE = Obj("PodTemplateSpec", {"metadata": _META, "spec": Obj("PodSpec", _POD_SPEC_FIELDS)})


def _kind(go: str, spec: Obj | str, **extra: Schema) -> Obj:
    fields: dict[str, Schema] = {"apiVersion": "string", "kind": "string", "metadata": _META}
    return Obj(go, fields | {"spec": spec, "status": "any"} | extra)


_SCHEMAS: dict[str, Obj] = {
    "Deployment": _kind(
        "Deployment",
        Obj(
            "DeploymentSpec",
            {
                "replicas": "int32",
                "selector": _SELECTOR,
                "template": _TEMPLATE,
                "strategy": Obj(
                    "DeploymentStrategy",
                    {
                        "type": "string",
                        "rollingUpdate": Obj(
                            "RollingUpdateDeployment",
                            {"maxUnavailable": "intstr", "maxSurge": "intstr"},
                        ),
                    },
                ),
                "minReadySeconds": "int32",
                "revisionHistoryLimit": "int32",
                "paused": "bool",
                "progressDeadlineSeconds": "int32",
            },
        ),
    ),
    "ReplicaSet": _kind(
        "ReplicaSet",
        Obj(
            "ReplicaSetSpec",
            {
                "replicas": "int32",
                "minReadySeconds": "int32",
                "selector": _SELECTOR,
                "template": _TEMPLATE,
            },
        ),
    ),
    "Service": _kind(
        "Service",
        Obj(
            "ServiceSpec",
            {
                "ports": ListOf(
                    Obj(
                        "ServicePort",
                        {
                            "name": "string",
                            "protocol": "string",
                            "appProtocol": "string",
                            "port": "int32",
                            "targetPort": "intstr",
                            "nodePort": "int32",
                        },
                    )
                ),
                "selector": _LABELS,
                "clusterIP": "string",
                "clusterIPs": _STRINGS,
                "type": "string",
                "externalIPs": _STRINGS,
                "sessionAffinity": "string",
                "loadBalancerIP": "string",
                "loadBalancerSourceRanges": _STRINGS,
                "externalName": "string",
                "externalTrafficPolicy": "string",
                "healthCheckNodePort": "int32",
                "publishNotReadyAddresses": "bool",
                "sessionAffinityConfig": "object",
                "ipFamilies": _STRINGS,
                "ipFamilyPolicy": "string",
                "allocateLoadBalancerNodePorts": "bool",
                "loadBalancerClass": "string",
                "internalTrafficPolicy": "string",
                "trafficDistribution": "string",
            },
        ),
    ),
    "Job": _kind(
        "Job",
        Obj(
            "JobSpec",
            {
                "parallelism": "int32",
                "completions": "int32",
                "activeDeadlineSeconds": "int64",
                "podFailurePolicy": "object",
                "successPolicy": "object",
                "backoffLimit": "int32",
                "backoffLimitPerIndex": "int32",
                "maxFailedIndexes": "int32",
                "selector": _SELECTOR,
                "manualSelector": "bool",
                "template": _TEMPLATE,
                "ttlSecondsAfterFinished": "int32",
                "completionMode": "string",
                "suspend": "bool",
                "podReplacementPolicy": "string",
                "managedBy": "string",
            },
        ),
    ),
    "Namespace": _kind("Namespace", Obj("NamespaceSpec", {"finalizers": _STRINGS})),
    "Scale": _kind("Scale", Obj("ScaleSpec", {"replicas": "int32"})),
}
# Built-in kinds the simulator stores without modelling their spec: only metadata is typed.
_LOOSE = Obj(
    "Object",
    {
        "apiVersion": "string",
        "kind": "string",
        "metadata": _META,
        "spec": "object",
        "status": "any",
        "data": "any",
        "binaryData": "any",
        "stringData": "any",
        "type": "string",
        "immutable": "bool",
    },
)


def schema_of(kind: str, obj: Mapping[str, Any], *, is_builtin: bool) -> Obj:
    """The schema of a kind. A custom object without a schema may hold anything, but its
    metadata is still an ObjectMeta: the API server decodes every object's metadata."""
    found = _SCHEMAS.get(kind) or (_LOOSE if is_builtin else None)
    if found is not None:
        return found
    anything: dict[str, Schema] = dict.fromkeys(obj, "any")
    return Obj("Object", {**anything, "apiVersion": "string", "kind": "string", "metadata": _META})
