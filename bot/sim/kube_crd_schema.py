"""Structural schemas of the custom resources the simulated cluster validates, and what the API
server does with one: prune unknown fields, refuse wrong types (422), report missing required
fields. Argo Rollouts' Rollout is the one served with a schema: the trimmed copy of its published
CRD that tests/kube installs on the real control plane (tests/argo/test_sim_rollouts.py keeps
the two equal)."""

from __future__ import annotations

from typing import Any

__all__ = ["ROLLOUT_SCHEMA", "SCHEMAS", "check"]

JSON = Any
PRESERVE = "x-kubernetes-preserve-unknown-fields"

_STR: JSON = {"type": "string"}
_BOOL: JSON = {"type": "boolean"}
_INT32: JSON = {"format": "int32", "type": "integer"}
_TIME: JSON = {"format": "date-time", "type": "string"}
_LOOSE: JSON = {"type": "object", PRESERVE: True}  # a subtree the trimmed CRD keeps whole
_STRING_MAP: JSON = {"additionalProperties": _STR, "type": "object"}


def _object(properties: JSON, required: list[str] | None = None) -> JSON:
    schema: JSON = {"properties": properties}
    if required:
        schema["required"] = required
    return schema | {"type": "object"}


def _array(items: JSON) -> JSON:
    return {"items": items, "type": "array"}


_SELECTOR = _object(
    {
        "matchExpressions": _array(
            _object({"key": _STR, "operator": _STR, "values": _array(_STR)}, ["key", "operator"])
        ),
        "matchLabels": _STRING_MAP,
    }
)
_CONDITION = _object(
    {k: _TIME for k in ("lastTransitionTime", "lastUpdateTime")}
    | {k: _STR for k in ("message", "reason", "status", "type")},
    ["lastTransitionTime", "lastUpdateTime", "message", "reason", "status", "type"],
)
_SPEC = _object(
    {
        "analysis": _LOOSE,
        "minReadySeconds": _INT32,
        "paused": _BOOL,
        "progressDeadlineAbort": _BOOL,
        "progressDeadlineSeconds": _INT32,
        "replicas": _INT32,
        "restartAt": _TIME,
        "revisionHistoryLimit": _INT32,
        "selector": _SELECTOR,
        "strategy": _object({"blueGreen": _LOOSE, "canary": _LOOSE}),
        "template": _object(
            {
                "metadata": _object({"annotations": _STRING_MAP, "labels": _STRING_MAP}),
                "spec": _LOOSE,
            }
        ),
        "workloadRef": _object({"apiVersion": _STR, "kind": _STR, "name": _STR}),
    }
)
_STATUS = _object(
    {
        "HPAReplicas": _INT32,
        "abort": _BOOL,
        "abortedAt": _TIME,
        "alb": _LOOSE,
        "availableReplicas": _INT32,
        "blueGreen": _LOOSE,
        "canary": _LOOSE,
        "collisionCount": _INT32,
        "conditions": _array(_CONDITION),
        "controllerPause": _BOOL,
        "currentPodHash": _STR,
        "currentStepHash": _STR,
        "currentStepIndex": _INT32,
        "message": _STR,
        "observedGeneration": _STR,
        "pauseConditions": _array(
            _object({"reason": _STR, "startTime": _TIME}, ["reason", "startTime"])
        ),
        "phase": _STR,
        "promoteFull": _BOOL,
        "readyReplicas": _INT32,
        "replicas": _INT32,
        "restartedAt": _TIME,
        "selector": _STR,
        "stableRS": _STR,
        "updatedReplicas": _INT32,
        "workloadObservedGeneration": _STR,
    }
)
ROLLOUT_SCHEMA: JSON = _object(
    {
        "apiVersion": _STR,
        "kind": _STR,
        "metadata": {"type": "object"},
        "spec": _SPEC,
        "status": _STATUS,
    },
    ["spec"],
)
SCHEMAS: dict[tuple[str, str], JSON] = {("argoproj.io", "Rollout"): ROLLOUT_SCHEMA}

_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_name(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "object"


def _fits(kind: str, value: JSON) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _JSON_TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def check(schema: JSON, value: JSON, errors: list[tuple[str, str]], unknown: list[str]) -> JSON:
    """``value`` pruned of the fields ``schema`` does not know (their paths go to ``unknown``);
    wrong types and missing required fields go to ``errors`` as (path, message) pairs."""
    return _check(schema, value, "", errors, unknown)


def _check(
    schema: JSON, value: JSON, path: str, errors: list[tuple[str, str]], unknown: list[str]
) -> JSON:
    kind = schema.get("type")
    if kind and not _fits(kind, value):
        got = _type_name(value)
        message = f'Invalid value: "{got}": {path} in body must be of type {kind}: "{got}"'
        errors.append((path, message))
        return value
    if isinstance(value, list) and "items" in schema:
        return [
            _check(schema["items"], v, f"{path}[{i}]", errors, unknown) for i, v in enumerate(value)
        ]
    if not isinstance(value, dict) or path == "metadata":
        return value
    properties, extra = schema.get("properties") or {}, schema.get("additionalProperties")
    kept: JSON = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key in properties:
            kept[key] = _check(properties[key], item, where, errors, unknown)
        elif extra is not None:
            kept[key] = _check(extra, item, where, errors, unknown)
        elif schema.get(PRESERVE):
            kept[key] = item
        else:
            unknown.append(where)
    for key in schema.get("required") or []:
        if key not in value:
            errors.append((f"{path}.{key}" if path else key, "Required value"))
    return kept
