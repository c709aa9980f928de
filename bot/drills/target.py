"""The target check: what the rollback would go back to exists, and is not what runs now.

Per strategy: an undo's revision (the previous one, or ``--to N``) is in the ReplicaSet history
with another template than the running one; blue-green's stable colour has available pods;
canary's traffic object exists; an ``http`` rollback's API answers at its base URL (a GET, never
the rollback's own POST).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.adapters.http import HttpClient, HttpError
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, Revision
from bot.catalog.load import Service
from bot.drills.checks import Check, failed, ok
from bot.rollback.plan import Plan
from bot.rollback.safety import KnownRevision, Refusal, release_label, resolve_target

NAME = "Target"
HTTP_TIMEOUT_SECONDS = 5.0


def target_checks(
    kube: KubernetesClient, http: HttpClient, service: Service, plan: Plan, wanted: str | None
) -> list[Check]:
    """One line per thing the plan goes back to (none for a plan that names no target)."""
    t = KubeTarget(service.context, service.namespace)
    spec = service.spec
    found = [
        _undo(kube, t, str(s.params.get("deployment") or spec.deployment), wanted)
        for s in plan.steps
        if s.kind == "rollout_undo"
    ]
    if spec.strategy == "blue-green" and spec.blue_green is not None:
        found.append(_stable_colour(kube, t, spec.deployment))
    if spec.strategy == "canary" and spec.canary is not None:
        tr = spec.canary.traffic
        found.append(_traffic_object(kube, t, tr.api_version, tr.kind, tr.name))
    if spec.strategy == "http" and spec.http_rollback is not None:
        found.append(_http_base(http, spec.http_rollback.url))
    return found


def _undo(kube: KubernetesClient, t: KubeTarget, deployment: str, wanted: str | None) -> Check:
    def pick(listed: list[Revision], current: int) -> int | None:
        if not wanted:
            return None
        known = [KnownRevision(r.number, r.images, r.template) for r in listed]
        return resolve_target(wanted, known, deployment=deployment, current=current)

    try:
        undo, _, _ = kube.preview_undo(t, deployment, pick)
    except Refusal as refusal:
        return failed(NAME, str(refusal), "Choose a revision of the history with `--to N`.")
    except KubeError as exc:
        return failed(
            NAME,
            f"{deployment}: {exc}",
            "A rollout undo needs an earlier revision in the ReplicaSet history: keep"
            " `revisionHistoryLimit` above 0 and check the deployment's name and namespace.",
        )
    before, after = release_label(undo.images_before), release_label(undo.images_after)
    if undo.is_noop:
        return failed(
            NAME,
            f"{deployment}: revision {undo.to_revision} has the running template ({after}):"
            " a rollback to it would change nothing",
            "Choose another revision with `--to N`, or deploy the previous release again.",
        )
    return ok(
        NAME,
        f"{deployment}: revision {undo.from_revision} ({before}) → revision"
        f" {undo.to_revision} ({after}), another template than the running one",
    )


def _stable_colour(kube: KubernetesClient, t: KubeTarget, deployment: str) -> Check:
    try:
        info = kube.deployment(t, deployment)
    except KubeError as exc:
        return failed(NAME, f"stable colour {deployment}: {exc}", "Check the catalog's deployment.")
    if info.available_replicas < 1:
        return failed(
            NAME,
            f"stable colour {deployment} has no available pods ({info.replicas} wanted)",
            f"Scale {deployment} up: traffic cannot go back to a colour without pods.",
        )
    return ok(NAME, f"stable colour {deployment} has {info.available_replicas} available pods")


def _traffic_object(
    kube: KubernetesClient, t: KubeTarget, api_version: str, kind: str, name: str
) -> Check:
    try:
        kube.read_object(t, api_version, kind, name)
    except KubeError as exc:
        return failed(
            NAME,
            f"traffic object {kind} {name}: {exc}",
            "Create it, or fix canary.traffic in the catalog.",
        )
    return ok(NAME, f"traffic object {kind} {name} exists ({api_version})")


def _http_base(http: HttpClient, url: str) -> Check:
    parts = urlsplit(url)  # scheme and host only: never the path, a query or credentials
    port = f":{parts.port}" if parts.port else ""
    base = f"{parts.scheme}://{parts.hostname}{port}/"
    try:
        answer = http.get(base, timeout=HTTP_TIMEOUT_SECONDS)
    except HttpError as exc:
        why = f"no answer within {HTTP_TIMEOUT_SECONDS:g} s" if exc.is_timeout else exc.kind
        return failed(
            NAME,
            f"the deployment API at {base} is unreachable ({why})",
            "Check http_rollback.url and that the bot can reach that host.",
        )
    if answer.status >= 500:
        return failed(
            NAME,
            f"the deployment API at {base} answered HTTP {answer.status}",
            "The rollback endpoint's server is failing: fix it before a rollback needs it.",
        )
    return ok(NAME, f"the deployment API at {base} answers (HTTP {answer.status}; no POST sent)")
