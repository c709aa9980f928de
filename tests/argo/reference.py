"""The reference the bot's port is held to: ``kubectl argo rollouts undo`` and ``abort``
transcribed step by step from argo-rollouts' pkg/kubectl-argo-rollouts/cmd/undo/undo.go and
cmd/abort/abort.go, on raw JSON through the official client.

Written apart from bot/adapters/kube/argo.py on purpose, in the plugin's own order (GET the
Rollout, list the ReplicaSets by selector, keep those it controls, the latest/previous loop,
equalIgnoreHash by DeepDerivative, one JSON Patch), so that a test running both on identical
objects compares the bot with the algorithm, not with itself.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

JSON = Any
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"
_ABSENT = object()  # reflect.Value{}: a map index that does not exist


class PluginError(Exception):
    """What the plugin prints as ``Error: …`` and exits 1 with."""


def deep_value_derive(v1: JSON, v2: JSON) -> bool:
    """apimachinery third_party/forked/golang/reflect deepValueDerive, on interface{} values."""
    if v1 is _ABSENT or v2 is _ABSENT:
        return (v1 is _ABSENT) == (v2 is _ABSENT)
    if v1 is None:  # case reflect.Interface: v1.IsNil()
        return True
    if v2 is None or type(v1) is not type(v2):  # v2.Elem() invalid, or v1.Type() != v2.Type()
        return False
    if isinstance(v1, dict | list | str):  # Map, Slice, String: an empty v1 derives anything
        if len(v1) == 0:
            return True
        if len(v1) > len(v2):
            return False
    if isinstance(v1, dict):
        return all(deep_value_derive(v1[k], v2.get(k, _ABSENT)) for k in v1)
    if isinstance(v1, list):
        return all(deep_value_derive(v1[i], v2[i]) for i in range(len(v1)))
    return bool(v1 == v2)


def remove_hash(template: JSON) -> JSON:
    template = json.loads(json.dumps(template))  # DeepCopy
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return template


def _revision(rs: JSON) -> int | None:
    value = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value, 10)
    except ValueError:
        return None  # ParseInt failed: the loop skips it


def _selector_string(selector: JSON) -> str:
    labels = selector.get("matchLabels") or {}
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def run_undo_rollout(api: ApiClient, namespace: str, name: str, to_revision: int) -> str:
    """RunUndoRollout: the text the plugin prints, or PluginError with its message."""
    custom = CustomObjectsApi(api)
    ro = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "rollouts", name)
    listed = AppsV1Api(api).list_namespaced_replica_set(
        namespace, label_selector=_selector_string(ro["spec"]["selector"]), _preload_content=False
    )
    all_rss = [
        rs
        for rs in json.loads(listed.data)["items"]
        if any(
            ref.get("controller") and ref.get("uid") == ro["metadata"]["uid"]
            for ref in rs["metadata"].get("ownerReferences") or []
        )
    ]
    latest_rs, latest_rev, previous_rs, previous_rev = None, -1, None, -1
    found = None
    for rs in all_rss:
        v = _revision(rs)
        if v is None:
            continue
        if to_revision == 0:
            if latest_rev < v:
                previous_rev, previous_rs = latest_rev, latest_rs
                latest_rev, latest_rs = v, rs
            elif previous_rev < v:
                previous_rev, previous_rs = v, rs
        elif to_revision == v:
            found = rs
            break
    if found is None and to_revision > 0:
        raise PluginError(f"unable to find specified revision {to_revision} in history")
    if found is None and previous_rs is None:
        raise PluginError(f'no revision found for rollout "{name}"')
    rs_for_revision = found or previous_rs
    assert rs_for_revision is not None
    ro_template = remove_hash(ro["spec"]["template"])
    rs_template = remove_hash(rs_for_revision["spec"]["template"])
    if deep_value_derive(ro_template, rs_template):
        return f"skipped rollback (current template already matches revision {to_revision})"
    patch = [{"op": "replace", "path": "/spec/template", "value": rs_template}]
    try:
        custom.patch_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            namespace,
            "rollouts",
            name,
            patch,
            _content_type="application/json-patch+json",
        )
    except ApiException as exc:
        raise PluginError(f"failed restoring revision {to_revision}: {exc.reason}") from None
    return f"rollout '{name}' undo\n"


def abort_rollout(api: ApiClient, namespace: str, name: str) -> str:
    """AbortRollout: the status subresource first, the Rollout itself when that is NotFound."""
    custom = CustomObjectsApi(api)
    args = ("argoproj.io", "v1alpha1", namespace, "rollouts", name, {"status": {"abort": True}})
    merge = "application/merge-patch+json"
    try:
        ro = custom.patch_namespaced_custom_object_status(*args, _content_type=merge)
    except ApiException as exc:
        if exc.status != 404:
            raise
        ro = custom.patch_namespaced_custom_object(*args, _content_type=merge)
    return f"rollout '{ro['metadata']['name']}' aborted\n"
