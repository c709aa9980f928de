"""The arithmetic of the deployment controller, apart from its reconcile loop.

Ownership (controller references), revisions, the pod-template-hash, maxSurge/maxUnavailable
and how far a RollingUpdate may go with the pods that are ready now (`rolled_sizes`). Pure
functions on plain JSON objects.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "REVISION",
    "controller_reference",
    "controller_uid",
    "max_surge",
    "max_unavailable",
    "owner_reference",
    "revision_of",
    "rolled_sizes",
    "template_hash",
    "with_status",
]

JSON = Any
REVISION = "deployment.kubernetes.io/revision"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString


def rolled_sizes(
    spec: JSON, current: JSON, owned: list[JSON], ready: dict[str, bool]
) -> dict[str, int]:
    """The replicas of each ReplicaSet once the rollout has gone as far as it can now.

    RollingUpdate as the controller does it (rolling.go): the new ReplicaSet grows while all
    pods stay within replicas + maxSurge; old ones shrink, unavailable pods first, while
    replicas - maxUnavailable pods stay available (the new ReplicaSet's unready pods count
    against that). So old pods keep serving until new ones are available. Recreate, and a
    paused Deployment, scale at once.
    """
    want: int = spec["replicas"]
    new_uid = current["metadata"]["uid"]
    sizes = {rs["metadata"]["uid"]: int(rs["spec"].get("replicas", 0)) for rs in owned}
    is_rolling = (spec.get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if not is_rolling or spec.get("paused"):
        return {uid: want if uid == new_uid else 0 for uid in sizes}
    old = sorted((rs for rs in owned if rs["metadata"]["uid"] != new_uid), key=revision_of)
    surge, unavailable = max_surge(spec), max_unavailable(spec)
    while True:
        before = dict(sizes)
        total = sum(sizes.values())
        if sizes[new_uid] > want:
            sizes[new_uid] = want
        else:
            room = max(0, want + surge - total)
            sizes[new_uid] = min(want, sizes[new_uid] + room)
        new_unready = 0 if ready[new_uid] else sizes[new_uid]
        removable = sum(sizes.values()) - (want - unavailable) - new_unready
        for is_ready_pass in (False, True):  # unavailable old pods go first
            for rs in old:
                uid = rs["metadata"]["uid"]
                if ready[uid] != is_ready_pass or removable <= 0:
                    continue
                cut = min(sizes[uid], removable)
                sizes[uid] -= cut
                removable -= cut
        if sizes == before:
            return sizes


# -- ownership and revisions -----------------------------------------------------------------------


def controller_reference(obj: JSON) -> JSON | None:
    references = obj["metadata"].get("ownerReferences") or []
    return next((ref for ref in references if ref.get("controller")), None)


def controller_uid(obj: JSON) -> str | None:
    reference = controller_reference(obj)
    return None if reference is None else reference.get("uid")


def owner_reference(owner: JSON) -> JSON:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def revision_of(replica_set: JSON) -> int:
    value = (replica_set["metadata"].get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def with_status(obj: JSON, **fields: JSON) -> JSON:
    return {**obj, "status": {**(obj.get("status") or {}), **fields}}


def template_hash(template: JSON, collisions: int) -> str:
    """FNV-1a of the template, encoded like ComputeHash + SafeEncodeString (e.g. 7c5ddbdf54)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collisions:
        data += str(collisions)
    value = 0x811C9DC5
    for byte in data.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_HASH_ALPHABET[ord(c) % len(_HASH_ALPHABET)] for c in str(value))


def _scaled(value: JSON, replicas: int, *, round_up: bool) -> int:
    """An int-or-percent like maxSurge "25%" as a number of pods."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(str(value))


def max_surge(spec: JSON) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate")
    if rolling is None:
        return 0
    return _scaled(rolling.get("maxSurge", "25%"), spec["replicas"], round_up=True)


def max_unavailable(spec: JSON) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate")
    replicas: int = spec["replicas"]
    if rolling is None or replicas == 0:
        return 0
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if unavailable == 0 and max_surge(spec) == 0:
        unavailable = 1  # the API forbids both zero; the controller treats it as 1
    return min(unavailable, replicas)
