"""In-memory object storage with the API server's write semantics.

The store holds plain JSON objects keyed by (group, plural, namespace, name) and does what the
real API server does on every write: server-managed metadata (uid, creationTimestamp,
resourceVersion, generation), optimistic concurrency (a stale resourceVersion → 409 Conflict),
decoding, defaulting and validation (`kube_validation`), status kept apart from spec for
built-in kinds, server-side dry run, and garbage collection of dependents on delete. Only the
resources `discovery` serves exist, and namespaced objects need their Namespace. It is not
thread-safe: the simulator calls it under its one lock.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable

from bot.sim.kube_defaults import apply_defaults
from bot.sim.kube_discovery import Discovery
from bot.sim.kube_index import JSON, Key, ObjectIndex, json_copy
from bot.sim.kube_patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from bot.sim.kube_schema import (
    FieldRequirement,
    KubeError,
    LabelRequirement,
    ResourceType,
    matches,
)
from bot.sim.kube_validation import conform, validate

__all__ = ["JSON_PATCH", "MERGE_PATCH", "STRATEGIC_MERGE_PATCH", "ObjectStore", "apply_patch"]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_SERVER_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# What a freshly created object's status looks like on a real cluster (the client's models
# require ReplicaSetStatus.replicas, so "{}" would not even parse for a ReplicaSet).
_INITIAL_STATUS: dict[str, JSON] = {
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "Job": {},
    "Service": {"loadBalancer": {}},
    "Ingress": {"loadBalancer": {}},
}
_NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace")
_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ObjectStore:
    """Objects of every resource type, with resourceVersions from one cluster-wide counter."""

    def __init__(self, now: Callable[[], str]) -> None:
        self._now = now
        self._index = ObjectIndex()  # written through its put and drop only
        self._objects = self._index.objects  # read
        self._revision = 0
        self.discovery = Discovery()
        # Per request (the simulator sets them under its lock): ?fieldValidation= and the
        # warnings the request earned (unknown fields dropped), sent as Warning headers.
        self.field_validation = "Warn"
        self.warnings: list[str] = []
        self._services_created = 0
        self._random = random.Random(0x6B756265)
        for namespace in _DEFAULT_NAMESPACES:
            self.ensure_namespace(namespace)

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion, as a list's metadata carries it."""
        return str(self._revision)

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        """A served resource; anything else is the server's 404 (typos, retired versions,
        CRDs that were not installed)."""
        found = self.discovery.resource(group, version, plural)
        if found is None:
            raise KubeError.no_such_resource()
        return found

    # -- reads -------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        return self._served(rt, self._require(rt, namespace, name))

    def find(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        found = self._objects.get(self._key(rt, namespace, name))
        return None if found is None else self._served(rt, found)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: Iterable[LabelRequirement] = (),
        fields: Iterable[FieldRequirement] = (),
        controller: str | None = None,
    ) -> list[JSON]:
        """Matching objects sorted by namespace and name, like etcd's key order.

        ``controller`` (a uid) keeps only the objects it controls, found by index before any
        copy is made: controllers looking for a few owned objects among many would otherwise
        scan and copy them all on every pass.
        """
        labels, fields = list(labels), list(fields)
        candidates = self._index.of_type(rt.group, rt.plural, controller)
        return [
            self._served(rt, obj)
            for (_, _, ns, _), obj in candidates
            if (namespace is None or ns == namespace) and matches(obj, labels, fields)
        ]

    # -- writes from API requests --------------------------------------------------------------

    def create(
        self, rt: ResourceType, namespace: str, body: JSON, *, dry_run: bool = False
    ) -> JSON:
        obj = self.conformed(rt, self._body_object(body), is_patch=False)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name") or self._generated_name(metadata.get("generateName"))
        if rt.is_namespaced and metadata.get("namespace") not in (None, "", namespace):
            raise KubeError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        key = self._key(rt, namespace, name)
        if rt.is_namespaced and self._key(_NAMESPACES, "", namespace) not in self._objects:
            raise KubeError.not_found(_NAMESPACES, namespace)
        if key in self._objects:
            raise KubeError.already_exists(rt, name)
        obj = self._with_identity(rt, obj)
        for server_field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            metadata.pop(server_field, None)
        metadata.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=self._now())
        if rt.is_namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if rt.has_generation:
            metadata["generation"] = 1
        if rt.kind in _INITIAL_STATUS:
            obj["status"] = json_copy(_INITIAL_STATUS[rt.kind])
        elif self._has_status_subresource(rt):
            obj.pop("status", None)  # a custom resource's status is written through /status
        apply_defaults(rt, obj, cluster_ip=self._cluster_ip(self._services_created))
        validate(rt, obj, None)
        if dry_run:
            return json_copy(obj)
        if rt.kind == "Service":
            self._services_created += 1
        return self._stored(key, obj)

    def replace(
        self, rt: ResourceType, namespace: str, name: str, body: JSON, *, dry_run: bool = False
    ) -> JSON:
        """PUT: the whole object, guarded by its resourceVersion when it carries one."""
        old = self._require(rt, namespace, name)
        new = self.conformed(rt, self._body_object(body), is_patch=False)
        new.setdefault("metadata", {})
        body_name = new["metadata"].get("name")
        if body_name and body_name != name:
            raise KubeError.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        return self._commit(rt, old, new, dry_run=dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: JSON,
        *,
        dry_run: bool = False,
    ) -> JSON:
        old = self._require(rt, namespace, name)
        patched = apply_patch(rt, self._served(rt, old), content_type, patch)
        if not isinstance(patched, dict):
            raise KubeError.bad_request("the patch did not produce an object")
        patched = self.conformed(rt, patched, is_patch=True, name=name)
        patched.setdefault("metadata", {})["name"] = name
        return self._commit(rt, old, patched, dry_run=dry_run)

    def write_status(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str | None,
        body: JSON,
        *,
        dry_run: bool = False,
    ) -> JSON:
        """PUT (``content_type`` None) or PATCH on the status subresource: only the status
        changes, as the API server's status strategy keeps it; a resourceVersion sent must match."""
        old = self._require(rt, namespace, name)
        if content_type is not None:
            body = apply_patch(rt, self._served(rt, old), content_type, body)
        is_patch = content_type is not None
        sent = self.conformed(rt, self._body_object(body), is_patch=is_patch, name=name)
        new = json_copy(old)
        new.pop("status", None)
        if "status" in sent:
            new["status"] = sent["status"]
        sent_version = sent["metadata"].get("resourceVersion")
        new["metadata"]["resourceVersion"] = sent_version or old["metadata"]["resourceVersion"]
        return self._commit(rt, old, new, dry_run=dry_run, is_status=True)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        propagation: str = "Background",
    ) -> JSON:
        """Delete at once (no finalizers) and answer with the server's Success Status."""
        obj = self._require(rt, namespace, name)
        if not dry_run:
            self._index.drop(self._key(rt, namespace, name))
            self._collect_dependents(obj["metadata"]["uid"], namespace, propagation)
            self._revision += 1
        details: dict[str, JSON] = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details |= {"kind": rt.plural, "uid": obj["metadata"]["uid"]}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    # -- writes from the simulated controllers ---------------------------------------------------

    def write(self, rt: ResourceType, obj: JSON) -> JSON:
        """Store a controller's version of an object, status included; a no-op costs nothing."""
        metadata = obj["metadata"]
        old = self._require(rt, metadata.get("namespace", ""), metadata["name"])
        new = json_copy(obj)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if rt.has_generation and _spec_of(new) != _spec_of(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if new == old:
            return self._served(rt, old)
        return self._stored(self._key(rt, metadata.get("namespace", ""), metadata["name"]), new)

    def ensure_namespace(self, namespace: str) -> None:
        """Create the namespace unless it exists, like `kubectl create ns` before seeding."""
        if self._key(_NAMESPACES, "", namespace) not in self._objects:
            self.create(_NAMESPACES, "", {"metadata": {"name": namespace}})

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (rt.group, rt.plural, namespace if rt.is_namespaced else "", name)

    def _require(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        found = self._objects.get(self._key(rt, namespace, name))
        if found is None:
            raise KubeError.not_found(rt, name)
        return found

    @staticmethod
    def _served(rt: ResourceType, obj: JSON) -> JSON:
        """A copy in the version that was asked for."""
        return {**json_copy(obj), "apiVersion": rt.api_version, "kind": rt.kind}

    @staticmethod
    def _with_identity(rt: ResourceType, obj: JSON) -> JSON:
        """apiVersion and kind first, status last: the order `kubectl get -o json` shows."""
        ordered = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": obj["metadata"]}
        ordered |= {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        if "status" in obj:
            ordered["status"] = obj["status"]
        return ordered

    def conformed(self, rt: ResourceType, obj: JSON, *, is_patch: bool, name: str = "") -> JSON:
        decoded, warnings = conform(
            rt, obj, field_validation=self.field_validation, is_patch=is_patch, name=name
        )
        self.warnings += warnings
        return decoded

    @staticmethod
    def _body_object(body: JSON) -> JSON:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise KubeError.bad_request("the body of the request is not a Kubernetes object")
        obj = json_copy(body)
        obj.setdefault("metadata", {})
        return obj

    def _generated_name(self, prefix: str | None) -> str:
        if not prefix:
            return ""  # validation reports the missing name
        return prefix + "".join(self._random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))

    @staticmethod
    def _cluster_ip(index: int) -> str:
        return f"10.96.{index // 250}.{index % 250 + 10}"

    def _stored(self, key: Key, obj: JSON) -> JSON:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._index.put(key, obj)
        return json_copy(obj)

    def _has_status_subresource(self, rt: ResourceType) -> bool:
        return rt.is_builtin or "status" in self.discovery.subresources(rt.group, rt.plural)

    def _commit(
        self, rt: ResourceType, old: JSON, new: JSON, *, dry_run: bool, is_status: bool = False
    ) -> JSON:
        """The shared end of PUT and PATCH: preconditions, server fields, defaults, storage."""
        name = old["metadata"]["name"]
        sent_version = new["metadata"].get("resourceVersion")
        if sent_version and sent_version != old["metadata"]["resourceVersion"]:
            raise KubeError.conflict(rt, name)
        new = self._with_identity(rt, new)
        metadata = new["metadata"]
        metadata.pop("generation", None)
        for server_field in _SERVER_METADATA:
            if server_field in old["metadata"]:
                metadata[server_field] = old["metadata"][server_field]
        metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
        if self._has_status_subresource(rt) and not is_status:
            # Status is a subresource: writes to the main resource cannot change it.
            new.pop("status", None)
            if "status" in old:
                new["status"] = json_copy(old["status"])
        cluster_ip = (old.get("spec") or {}).get("clusterIP") or self._cluster_ip(0)
        apply_defaults(rt, new, cluster_ip=cluster_ip)
        validate(rt, new, old)
        if rt.has_generation and _spec_of(new) != _spec_of(old):
            metadata["generation"] = old["metadata"].get("generation", 0) + 1
        if new == old or dry_run:
            # The real server skips no-op writes: the resourceVersion does not move.
            return json_copy(new)
        return self._stored(self._key(rt, metadata.get("namespace", ""), name), new)

    def _collect_dependents(self, owner_uid: str, namespace: str, propagation: str) -> None:
        """The garbage collector's part: delete (or orphan) what the deleted object owned."""
        for key, obj in list(self._objects.items()):
            if key not in self._objects or key[2] != namespace:
                continue
            references = obj["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in references):
                continue
            if propagation == "Orphan":
                kept = [ref for ref in references if ref.get("uid") != owner_uid]
                orphan = json_copy(obj)
                orphan["metadata"]["ownerReferences"] = kept
                if not kept:
                    del orphan["metadata"]["ownerReferences"]
                self._stored(key, orphan)
            else:
                self._index.drop(key)
                self._collect_dependents(obj["metadata"]["uid"], namespace, propagation)


def apply_patch(rt: ResourceType, current: JSON, content_type: str, patch: JSON) -> JSON:
    """`patch` applied to `current` by its Content-Type, failing like the API server does."""
    try:
        if content_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise KubeError.bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                )
            return json_patch(current, patch)
        if content_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise KubeError.bad_request("Invalid JSON Patch")
            return merge_patch(current, patch)
        if content_type == STRATEGIC_MERGE_PATCH and rt.is_builtin:
            if not isinstance(patch, dict):
                raise KubeError.bad_request("the strategic merge patch is not an object")
            return strategic_merge_patch(current, patch)
    except PatchError as error:
        raise KubeError.patch_not_applicable() from error
    # CRDs take no strategic merge patch: the server has no schema to merge lists by.
    accepted = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_MERGE_PATCH] if rt.is_builtin else [])
    raise KubeError.unsupported_media_type(content_type, accepted)


def _spec_of(obj: JSON) -> JSON:
    """Everything generation tracks: the object minus metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
