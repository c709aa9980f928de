"""What staging runs after a rehearsal, read from the roll-forward's own steps: for each thing
the rollback changed (a Service's selector, a replica count, a canary weight, an image, a call to
the staging deployment API), what it is now, and — when it is not back where the rehearsal
started — the exact command that puts it back.

The roll-forward steps carry the values staging had before the rehearsal (pinned when it was
planned), so a roll-forward that failed or never ran still says where staging has to go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.catalog.load import Service
from bot.execution.steps.base import StepFailed
from bot.execution.steps.http import redact_url
from bot.execution.steps.kubernetes.traffic import traffic_weights
from bot.rehearsal.forward import rolls_forward
from bot.rollback.lifecycle import StepStatus
from storage.models import RollbackStep


@dataclass(frozen=True)
class StagingNow:
    """``lines``: what staging runs now, one phrase each; ``fixes``: the commands that put back
    what is not where the rehearsal started, in the order to run them; ``is_back``: None when
    nothing could be checked (or read)."""

    lines: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    is_back: bool | None = None
    unread: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Check:
    line: str
    fix: tuple[str, ...] = ()  # empty: back where it started


def staging_now(kube: KubernetesClient, twin: Service, steps: Sequence[RollbackStep]) -> StagingNow:
    """Check every roll-forward step's target against staging (``kube``: a reading-once view)."""
    t = KubeTarget(twin.context, twin.namespace)
    kubectl = f"kubectl {f'--context {twin.context} ' if twin.context else ''}-n {twin.namespace}"
    checks: list[_Check] = []
    unread: list[str] = []
    marks = rolls_forward(steps)
    called = any(  # the staging API's rollback endpoint was called (or may have been)
        s.kind == "http_request" and not is_forward and s.detail.get("sent")
        for s, is_forward in zip(steps, marks, strict=True)
    )
    for s, is_forward in zip(steps, marks, strict=True):
        if not is_forward or (s.kind == "http_request" and not called):
            continue
        p = dict(s.detail.get("params") or {})
        try:
            check = _check(kube, t, kubectl, s, p, twin.spec.deployment)
        except (KubeError, StepFailed) as exc:
            unread.append(f"{s.name}: {exc}")
            continue
        if check is not None:
            checks.append(check)
    if not checks:
        return StagingNow(unread=tuple(unread))
    fixes = tuple(f for c in checks for f in c.fix)
    is_back = None if unread and not fixes else not fixes
    lines = tuple(dict.fromkeys(c.line for c in checks if c.line))
    return StagingNow(lines, fixes, is_back, tuple(unread))


def _check(
    kube: KubernetesClient,
    t: KubeTarget,
    kubectl: str,
    s: RollbackStep,
    p: Mapping[str, Any],
    default: str,
) -> _Check | None:
    name = str(p.get("deployment") or default)
    if s.kind == "switch_selector":
        service, want = str(p["service"]), {str(k): str(v) for k, v in p["selector"].items()}
        now = kube.service_selector(t, service)
        patch = _json({"spec": {"selector": want}})
        is_back = all(now.get(k) == v for k, v in want.items())
        fix = () if is_back else (f"{kubectl} patch service {service} -p '{patch}'",)
        return _Check(f"Service {service} selects {_pairs(now)}", fix)
    if s.kind in ("scale", "set_image"):
        return _deployment(kube, t, kubectl, name, s.kind, p)
    if s.kind == "shift_traffic":
        return _traffic(kube, t, kubectl, p)
    if s.kind == "http_request":
        method, url = str(p.get("method", "POST")), redact_url(str(p["url"]))
        if s.status == StepStatus.SUCCEEDED:
            return _Check("the staging API was called to roll forward")
        return _Check("", (f"{method} {url} (the staging API's roll-forward)",))
    return None  # rollout_undo: the undo's own check (report.py); waits and health checks


def _deployment(
    kube: KubernetesClient, t: KubeTarget, kubectl: str, name: str, kind: str, p: Mapping[str, Any]
) -> _Check:
    """A replica count or an image put back; then wait for it (not before traffic goes back)."""
    dep = kube.deployment(t, name)
    now: object
    want: object
    if kind == "scale":
        now, want = dep.replicas, int(p["replicas"])
        line = f"{name} has {now} replica{'s' if now != 1 else ''}"
        fix = f"scale deployment/{name} --replicas={want}"
    else:
        container, want = str(p["container"]), str(p["image"])
        now = dep.images.get(container)
        line, fix = (
            f"{name} {container} runs {now}",
            f"set image deployment/{name} {container}={want}",
        )
    if now == want:
        return _Check(line)
    wait = (f"{kubectl} rollout status deployment/{name}",) if want != 0 else ()
    return _Check(line, (f"{kubectl} {fix}", *wait))


def _traffic(kube: KubernetesClient, t: KubeTarget, kubectl: str, p: Mapping[str, Any]) -> _Check:
    tr, want = p["traffic"], int(p.get("to_percent", 0))
    kind, name, stable_path, canary_path = (
        str(tr["kind"]),
        str(tr["name"]),
        str(tr["stable_weight_path"]),
        str(tr["canary_weight_path"]),
    )
    obj = kube.read_object(t, str(tr["api_version"]), kind, name)
    stable, canary = traffic_weights(obj, f"{kind} {name}", stable_path, canary_path)
    line = f"{kind} {name} sends {canary} % to the canary, {stable} % to stable"
    if canary == want:
        return _Check(line)
    ops = [  # `add` sets an object member whether it is there or not (a weight of 0 may not be)
        {"op": "add", "path": canary_path, "value": want},
        {"op": "add", "path": stable_path, "value": stable + canary - want},
    ]
    group = str(tr["api_version"]).rpartition("/")[0]
    resource = f"{kind.lower()}.{group}" if group else kind.lower()
    return _Check(line, (f"{kubectl} patch {resource} {name} --type=json -p '{_json(ops)}'",))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _pairs(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items()) or "nothing"
