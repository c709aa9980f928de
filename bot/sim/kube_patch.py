"""The three PATCH flavours the Kubernetes API server accepts, on plain JSON values.

- JSON Patch (RFC 6902, ``application/json-patch+json``): every failure — a failed ``test``, a
  missing path, an unknown op — raises `PatchError`, which the API server answers with 422.
- JSON Merge Patch (RFC 7386, ``application/merge-patch+json``): ``null`` deletes, objects merge,
  anything else replaces.
- Strategic merge patch (``application/strategic-merge-patch+json``): an approximation that is
  good enough for Deployments, Services and Jobs: objects merge recursively, lists of known
  element types (containers, env, ports, volumes …) merge by their key, other lists are replaced;
  the ``$patch`` (replace/delete), ``$retainKeys`` and ``$setElementOrder`` directives are honoured
  or dropped the way the server would. A map such as ``spec.selector`` is merged, not replaced —
  which is exactly why the bot switches selectors with a JSON Patch.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PatchError", "json_equal", "json_patch", "merge_patch", "strategic_merge_patch"]

JSON = Any

# Merge keys of the list fields the bot's objects carry (from the Kubernetes OpenAPI
# `x-kubernetes-patch-merge-key` extensions). "ports" depends on the list: containerPort for
# container ports, port for Service ports.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "envFrom": (),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey",),
}


class PatchError(ValueError):
    """A patch that cannot be applied to the document (HTTP 422 on a real API server)."""


# -- JSON Patch (RFC 6902) -------------------------------------------------------------------


def json_patch(document: JSON, operations: list[JSON]) -> JSON:
    """Apply `operations` to a copy of `document`; all or nothing."""
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"invalid JSON Patch operation {operation!r}")
        result = _apply_operation(result, operation)
    return result


def _apply_operation(doc: JSON, operation: dict[str, JSON]) -> JSON:
    op = operation.get("op")
    path = operation.get("path")
    if not isinstance(path, str):
        raise PatchError(f"operation {op!r} has no path")
    if op == "test":
        if not json_equal(_get(doc, path), _value(operation)):
            raise PatchError(f"testing value {path} failed: test failed")
        return doc
    if op == "add":
        return _add(doc, path, copy.deepcopy(_value(operation)))
    if op == "remove":
        return _remove(doc, path)[0]
    if op == "replace":
        return _replace(doc, path, copy.deepcopy(_value(operation)))
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise PatchError(f"operation {op!r} has no from")
        if op == "move":
            doc, moved = _remove(doc, source)
        else:
            moved = copy.deepcopy(_get(doc, source))
        return _add(doc, path, moved)
    raise PatchError(f"Unexpected kind: {op}")


def _value(operation: dict[str, JSON]) -> JSON:
    if "value" not in operation:
        raise PatchError(f"operation {operation.get('op')!r} on {operation['path']} has no value")
    return operation["value"]


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[JSON], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _get(doc: JSON, path: str) -> JSON:
    current = doc
    for token in _tokens(path):
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"doc is missing path: {path}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return current


def _parent(doc: JSON, path: str) -> tuple[JSON, str]:
    tokens = _tokens(path)
    parent_path = "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
    return _get(doc, parent_path), tokens[-1]


def _add(doc: JSON, path: str, value: JSON) -> JSON:
    if path == "":
        return value
    parent, token = _parent(doc, path)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path}")
    return doc


def _replace(doc: JSON, path: str, value: JSON) -> JSON:
    """Replace in place (keeping key order); unlike add, the target must already exist."""
    if path == "":
        return value
    parent, token = _parent(doc, path)
    if isinstance(parent, dict) and token in parent:
        parent[token] = value
    elif isinstance(parent, list):
        parent[_index(parent, token, allow_end=False)] = value
    else:
        raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
    return doc


def _remove(doc: JSON, path: str) -> tuple[JSON, JSON]:
    if path == "":
        raise PatchError("cannot remove the whole document")
    parent, token = _parent(doc, path)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {token}: missing value")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, allow_end=False))
    raise PatchError(f"doc is missing path: {path}")


def json_equal(left: JSON, right: JSON) -> bool:
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


# -- JSON Merge Patch (RFC 7386) ---------------------------------------------------------------


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch (approximation) -----------------------------------------------------


def strategic_merge_patch(target: JSON, patch: JSON) -> JSON:
    """Merge `patch` into `target` the way `kubectl patch --type strategic` mostly does."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder, $retainKeys, …: ordering and pruning, not content
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, _MERGE_KEYS[key])
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: JSON, patch: list[JSON], keys: tuple[str, ...]) -> list[JSON]:
    """Merge a list of objects by the first merge key the patch elements carry."""
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(item) for item in patch if not _is_directive(item)]
    key = next((k for k in keys if any(isinstance(i, dict) and k in i for i in patch)), None)
    if key is None or not isinstance(current, list):
        return [_strip_directives(item) for item in patch if not _is_directive(item)]
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            continue
        position = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def _is_directive(item: JSON) -> bool:
    return isinstance(item, dict) and set(item) == {"$patch"}


def _strip_directives(value: JSON) -> JSON:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return value
