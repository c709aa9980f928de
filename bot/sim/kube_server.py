"""The REST face of the simulated API server: URL routing, verbs, lists, subresources.

`KubeRestApi.answer` turns one request into an `Answer`, which `kube_http` sends (or raises
`KubeError`, which the caller turns into a Status answer). Paths follow the API server's layout:

    /api/v1/namespaces[/{name}]                          Namespaces
    /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]    core/v1
    /apis/{group}/{version}/namespaces/{ns}/{plural}…    everything else
    /api/v1/{plural}, /apis/{group}/{version}/{plural}   lists across namespaces

Subresources: `scale` (Deployments, ReplicaSets: get, replace, patch) and `status` (get).
Also `/version` (VersionApi) and the `/healthz`, `/livez`, `/readyz` probes.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from bot.sim.kube_access import SSAR, AccessRules, request_verb
from bot.sim.kube_http import Answer
from bot.sim.kube_schema import (
    KubeError,
    ResourceType,
    label_selector_string,
    matches,
    parse_field_selector,
    parse_label_selector,
)
from bot.sim.kube_store import MERGE_PATCH, ObjectStore, apply_patch
from bot.sim.kube_validation import FIELD_VALIDATION, validate_scale
from bot.sim.kube_watch import WatchRequest
from bot.sim.kube_workloads import PODS

__all__ = ["Answer", "KubeRestApi", "Route"]

log = logging.getLogger(__name__)

JSON = Any
_NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace")
_SCALABLE = frozenset({"Deployment", "ReplicaSet", "StatefulSet"})
_NOT_FOUND_PAGE = "404 page not found"
# What VersionApi.get_code() reads: the cluster version the pinned client (37) was built for.
_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Route:
    rt: ResourceType
    namespace: str | None  # None: across all namespaces
    name: str | None
    subresource: str | None


class KubeRestApi:
    """Answers API requests from the store; pods come from `pods_in(namespace or None)`."""

    def __init__(
        self,
        store: ObjectStore,
        pods_in: Callable[[str | None], list[JSON]],
        address: Callable[[], str] = lambda: "127.0.0.1:0",
        access: AccessRules | None = None,
    ) -> None:
        self._store = store
        self._pods_in = pods_in
        self._address = address
        self.access = access or AccessRules()

    def answer(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, raw: bytes
    ) -> Answer:
        """One request; unknown fields dropped on the way come back as warnings."""
        validation = _first(query, "fieldValidation") or "Warn"
        if validation not in FIELD_VALIDATION:
            raise KubeError.bad_request(
                f'fieldValidation: Unsupported value: "{validation}": supported values: '
                '"Ignore", "Warn", "Strict"'
            )
        self._store.field_validation, self._store.warnings = validation, []
        answer = self._answer(method, path, query, content_type, raw)
        warnings = tuple(dict.fromkeys(self._store.warnings))
        self._store.warnings = []
        return Answer(answer.status, answer.body, answer.headers, warnings)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, raw: bytes
    ) -> Answer:
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as error:
            message = f"the body of the request could not be decoded: {error}"
            raise KubeError.bad_request(message) from error
        if path.rstrip("/") in ("/version", "/healthz", "/livez", "/readyz"):
            return Answer(200, _VERSION if path.startswith("/version") else "ok", {})
        parts = [part for part in path.strip("/").split("/") if part]
        document = self._store.discovery.document(parts, self._address())
        if document is not None:
            if method != "GET":
                raise KubeError(405, "MethodNotAllowed", f"{method} is not allowed here")
            return Answer(200, document, {})
        route = self.route(path)
        if route is None and parts[:1] in (["api"], ["apis"]):
            raise KubeError.no_such_resource()  # an unknown group or version
        if route is None:
            return Answer(404, _NOT_FOUND_PAGE, {})
        subresources = self._store.discovery.subresources(route.rt.group, route.rt.plural)
        if route.subresource is not None and route.subresource not in subresources:
            raise KubeError.no_such_resource()
        if route.rt == SSAR:
            if method != "POST":
                raise KubeError.method_not_supported(route.rt, method.lower())
            return Answer(201, self.access.review(body), {})
        verb = request_verb(method, route.name, query)
        self.access.check(
            verb, route.rt, route.subresource, route.namespace or "", route.name or ""
        )
        dry_run = _dry_run(method, query)
        if route.rt.kind == "Pod":
            return self._pods(method, route, query)
        if route.subresource == "scale" and route.rt.kind in _SCALABLE and route.name:
            return self._scale(method, route, content_type, body, dry_run)
        if route.subresource == "status" and method == "GET" and route.name:
            return Answer(200, self._store.get(route.rt, route.namespace or "", route.name), {})
        if route.subresource is not None:
            return Answer(404, _NOT_FOUND_PAGE, {})
        if route.name is None:
            return self._collection(method, route, query, body, dry_run)
        return self._item(method, route, query, content_type, body, dry_run)

    def route(self, path: str) -> Route | None:
        """The resource a path names; None for paths outside /api and /apis. A group, version
        or resource the cluster does not serve raises the server's 404."""
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if group == "" and version == "v1" and rest[:1] == ["namespaces"] and len(rest) <= 2:
            return Route(_NAMESPACES, "", rest[1] if len(rest) == 2 else None, None)
        if len(rest) == 1:
            return Route(self._store.resource(group, version, rest[0]), None, None, None)
        if rest[0] != "namespaces" or not 3 <= len(rest) <= 5:
            raise KubeError.no_such_resource()
        rt = self._store.resource(group, version, rest[2])
        name = rest[3] if len(rest) >= 4 else None
        return Route(rt, rest[1], name, rest[4] if len(rest) == 5 else None)

    def _collection(
        self, method: str, route: Route, query: dict[str, list[str]], body: JSON, dry_run: bool
    ) -> Answer:
        if method == "GET":
            return Answer(200, self._list(route, query), {})
        if method == "POST" and route.namespace is not None:
            return Answer(
                201, self._store.create(route.rt, route.namespace, body, dry_run=dry_run), {}
            )
        raise KubeError.method_not_supported(
            route.rt, "deletecollection" if method == "DELETE" else method.lower()
        )

    def _item(
        self,
        method: str,
        route: Route,
        query: dict[str, list[str]],
        content_type: str,
        body: JSON,
        dry_run: bool,
    ) -> Answer:
        rt, namespace, name = route.rt, route.namespace or "", route.name or ""
        if method == "GET":
            return Answer(200, self._store.get(rt, namespace, name), {})
        if method == "PUT":
            return Answer(200, self._store.replace(rt, namespace, name, body, dry_run=dry_run), {})
        if method == "PATCH":
            patched = self._store.patch(rt, namespace, name, content_type, body, dry_run=dry_run)
            return Answer(200, patched, {})
        if method == "DELETE" and rt.kind != "Namespace":
            propagation = _propagation(query, body)
            deleted = self._store.delete(
                rt, namespace, name, dry_run=dry_run, propagation=propagation
            )
            return Answer(200, deleted, {})
        raise KubeError.method_not_supported(rt, method.lower())

    def _list(self, route: Route, query: dict[str, list[str]]) -> JSON:
        """A list, or for `watch=true` the `WatchRequest` the simulator streams events of."""
        labels = parse_label_selector(_first(query, "labelSelector") or "")
        fields = parse_field_selector(_first(query, "fieldSelector") or "")

        def items_now() -> list[JSON]:
            if route.rt.kind == "Pod":
                return [p for p in self._pods_in(route.namespace) if matches(p, labels, fields)]
            return self._store.list(route.rt, route.namespace, labels, fields)

        if _first(query, "watch") in ("true", "1"):
            return WatchRequest.parse(
                lambda: {item["metadata"]["uid"]: item for item in items_now()},
                _first(query, "resourceVersion"),
                _first(query, "timeoutSeconds"),
            )
        items = items_now()
        metadata: dict[str, JSON] = {"resourceVersion": self._store.resource_version}
        items, metadata = _paginate(items, metadata, query)
        if route.rt.is_builtin:
            # Built-in lists carry kind and apiVersion once, on the list (CRD lists on each item).
            items = [
                {k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items
            ]
        return {
            "kind": f"{route.rt.kind}List",
            "apiVersion": route.rt.api_version,
            "metadata": metadata,
            "items": items,
        }

    def _pods(self, method: str, route: Route, query: dict[str, list[str]]) -> Answer:
        if method != "GET":
            raise KubeError.method_not_supported(PODS, method.lower())
        if route.name is None:
            return Answer(200, self._list(route, query), {})
        for pod in self._pods_in(route.namespace):
            if pod["metadata"]["name"] == route.name:
                return Answer(200, pod, {})
        raise KubeError.not_found(PODS, route.name)

    def _scale(
        self, method: str, route: Route, content_type: str, body: JSON, dry_run: bool
    ) -> Answer:
        rt, namespace, name = route.rt, route.namespace or "", route.name or ""
        obj = self._store.get(rt, namespace, name)
        scale = _scale_of(obj)
        if method == "GET":
            return Answer(200, scale, {})
        if method == "PUT":
            wanted = body
        elif method == "PATCH":
            wanted = apply_patch(rt, scale, content_type, body)
        else:
            raise KubeError.method_not_supported(rt, method.lower())
        scale_type = ResourceType("autoscaling", "v1", "scale", "Scale")
        wanted = self._store.conformed(scale_type, wanted, is_patch=method == "PATCH", name=name)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int):
            replicas = 0  # a Scale without spec.replicas asks for zero (int32's zero value)
        validate_scale(scale_type, name, replicas)
        change: JSON = {"spec": {"replicas": replicas}}
        sent_version = (wanted.get("metadata") or {}).get("resourceVersion")
        if sent_version:
            change["metadata"] = {"resourceVersion": sent_version}
        updated = self._store.patch(rt, namespace, name, MERGE_PATCH, change, dry_run=dry_run)
        return Answer(200, _scale_of(updated), {})


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}
MAX_FIELD_MANAGER_BYTES = 128


def _dry_run(method: str, query: dict[str, list[str]]) -> bool:
    """``dryRun`` (only "All") and ``fieldManager`` (at most 128 bytes) as the API server
    validates a write's options: 422 on the options kind of the request."""
    values = query.get("dryRun") or []
    options = _OPTIONS_KIND.get(method, "DeleteOptions")
    if bad := [v for v in values if v != "All"]:
        listed = ", ".join(f'"{v}"' for v in bad)
        raise KubeError(
            422,
            "Invalid",
            f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{{{listed}}}:'
            ' supported values: "All"',
        )
    manager = _first(query, "fieldManager")
    if manager is not None and len(manager.encode()) > MAX_FIELD_MANAGER_BYTES and method != "GET":
        raise KubeError(
            422,
            "Invalid",
            f'{options}.meta.k8s.io "" is invalid: fieldManager: Too long: may not be longer'
            f" than {MAX_FIELD_MANAGER_BYTES}",
        )
    return bool(values)


def _propagation(query: dict[str, list[str]], body: JSON) -> str:
    options = body if isinstance(body, dict) else {}
    if _first(query, "orphanDependents") == "true" or options.get("orphanDependents") is True:
        return "Orphan"
    return _first(query, "propagationPolicy") or options.get("propagationPolicy") or "Background"


def _paginate(
    items: list[JSON], metadata: dict[str, JSON], query: dict[str, list[str]]
) -> tuple[list[JSON], dict[str, JSON]]:
    """`limit` and `continue`: the token is opaque to clients, here simply the next offset."""
    token = _first(query, "continue")
    try:
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError as error:
        raise KubeError(410, "Expired", "The provided continue parameter is too old") from error
    limit = int(_first(query, "limit") or 0)
    end = start + limit if limit > 0 else len(items)
    if end < len(items):
        metadata["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
        metadata["remainingItemCount"] = len(items) - end
    return items[start:end], metadata


def _scale_of(obj: JSON) -> JSON:
    metadata = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": label_selector_string(obj["spec"].get("selector")),
        },
    }
