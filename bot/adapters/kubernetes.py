"""Kubernetes API adapter: the only importer of the ``kubernetes`` SDK (v37, pydantic models).

It speaks in the bot's terms (revisions, images, rollout status) and ports the kubectl behaviour
the bot relies on: ``rollout undo`` (``pkg/polymorphichelpers/rollback.go`` with
``pkg/util/deployment/deployment.go``), ``rollout status`` (``rollout_status.go``) and
``rollout restart`` (``objectrestarter.go``). Every failure leaves as :class:`KubeError`, in words.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config import ConfigException, load_incluster_config, new_client_from_config
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

T = TypeVar("T")

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"  # appsv1.DefaultDeploymentUniqueLabelKey
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"  # deploymentutil.TimedOutReason

# rollback.go annotationsToSkip: kept from the Deployment, never copied back from the ReplicaSet
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
MAX_RETRY_AFTER_SECONDS = 30.0

# metav1.StatusReason for answers that carry no Status body (proxies, injected faults)
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


# ── values the adapter hands out ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class KubeTarget:
    context: str | None
    namespace: str


class KubeError(Exception):
    """A Kubernetes failure in words. ``status`` is the HTTP status, None for local problems."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Revision:
    number: int
    images: dict[str, str]
    replicaset: str
    created: datetime | None
    change_cause: str | None


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    revision: int
    images: dict[str, str]
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    is_paused: bool
    generation: int
    observed_generation: int
    selector: dict[str, str]


@dataclass(frozen=True)
class UndoPlan:
    deployment: str
    from_revision: int
    to_revision: int
    images_before: dict[str, str]
    images_after: dict[str, str]
    is_noop: bool  # the template already matches (kubectl: "skipped rollback")


@dataclass(frozen=True)
class RolloutStatus:
    is_complete: bool
    is_failed: bool
    message: str


@dataclass(frozen=True)
class JobState:
    phase: Literal["running", "complete", "failed"]
    message: str


# ── kubectl ports (pure; fed with SDK model objects) ──────────────────────────────────────────


def wire(model: BaseModel) -> dict[str, Any]:
    """A model as the API writes it: camelCase keys, no nulls, timestamps as strings."""
    data: dict[str, Any] = json.loads(model.to_json())  # type: ignore[attr-defined]  # generated
    return data


def meta(metadata: k8s.V1ObjectMeta | None) -> k8s.V1ObjectMeta:
    """Server objects always carry metadata; the models still declare it optional."""
    return metadata or k8s.V1ObjectMeta()


def revision_of(metadata: k8s.V1ObjectMeta | None) -> int | None:
    """deploymentutil.Revision: a missing annotation is revision 0; garbage is None (skipped)."""
    value = (meta(metadata).annotations or {}).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def images_of(template: k8s.V1PodTemplateSpec | None) -> dict[str, str]:
    """Container name → image (init containers are not what a revision is known by)."""
    containers = template.spec.containers if template and template.spec else []
    return {c.name: c.image or "" for c in containers}


def is_controlled_by(replicaset: k8s.V1ReplicaSet, owner_uid: str | None) -> bool:
    """metav1.IsControlledBy: the owner reference marked controller=true carries this uid."""
    refs = meta(replicaset.metadata).owner_references or []
    controller = next((ref for ref in refs if ref.controller), None)
    return controller is not None and owner_uid is not None and controller.uid == owner_uid


def _pruned(value: Any) -> Any:
    """Drop nulls and empty lists/maps: apimachinery's semantic DeepEqual treats nil == empty."""
    if isinstance(value, dict):
        items = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_without_hash(template: k8s.V1PodTemplateSpec | None) -> dict[str, Any]:
    """The pod template in wire form minus the pod-template-hash label the controller adds."""
    data = wire(template) if template is not None else {}
    labels = data.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
    return data


def equal_ignore_hash(
    template1: k8s.V1PodTemplateSpec | None, template2: k8s.V1PodTemplateSpec | None
) -> bool:
    """kubectl equalIgnoreHash. Quantities compare as text: the API server stores them canonical."""
    first, second = template_without_hash(template1), template_without_hash(template2)
    return bool(_pruned(first) == _pruned(second))


def select_revision(
    deployment: k8s.V1Deployment, replicasets: Sequence[k8s.V1ReplicaSet], to_revision: int | None
) -> k8s.V1ReplicaSet:
    """rollback.go deploymentRevision: the asked revision, else the second-highest one."""
    wanted = to_revision or 0  # kubectl's --to-revision=0 means "the previous one"
    if wanted < 0:
        raise _revision_not_found(wanted)
    if wanted:
        found = next((rs for rs in replicasets if revision_of(rs.metadata) == wanted), None)
        if found is None:
            raise _revision_not_found(wanted)
        return found
    latest: tuple[int, k8s.V1ReplicaSet] | None = None
    previous: tuple[int, k8s.V1ReplicaSet] | None = None
    for rs in replicasets:
        number = revision_of(rs.metadata)
        if number is None:
            continue
        if latest is None or latest[0] < number:
            previous, latest = latest, (number, rs)
        elif previous is None or previous[0] < number:
            previous = (number, rs)
    if previous is None:
        name = meta(deployment.metadata).name
        raise KubeError(
            None, "NoRolloutHistory", f'no rollout history found for deployment "{name}"'
        )
    return previous[1]


def _revision_not_found(number: int) -> KubeError:
    message = f"unable to find specified revision {number} in history"
    return KubeError(None, "RevisionNotFound", message)


def undo_annotations(deployment: k8s.V1Deployment, replicaset: k8s.V1ReplicaSet) -> dict[str, str]:
    """rollback.go: the Deployment keeps its revision bookkeeping, the rest comes from the RS."""
    own = meta(deployment.metadata).annotations or {}
    theirs = meta(replicaset.metadata).annotations or {}
    kept = {k: v for k, v in own.items() if k in ANNOTATIONS_TO_SKIP}
    return kept | {k: v for k, v in theirs.items() if k not in ANNOTATIONS_TO_SKIP}


def undo_patch(deployment: k8s.V1Deployment, replicaset: k8s.V1ReplicaSet) -> list[dict[str, Any]]:
    """rollback.go getDeploymentPatch: a JSON Patch replacing the template and the annotations."""
    template = template_without_hash(replicaset.spec.template)
    annotations = undo_annotations(deployment, replicaset)
    return [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


def rollout_status_of(deployment: k8s.V1Deployment) -> RolloutStatus:
    """rollout_status.go DeploymentStatusViewer.Status, with kubectl's words."""
    name = meta(deployment.metadata).name
    status = deployment.status or k8s.V1DeploymentStatus()
    if (meta(deployment.metadata).generation or 0) > (status.observed_generation or 0):
        return _waiting("Waiting for deployment spec update to be observed...")
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == TIMED_OUT_REASON:
        return RolloutStatus(False, True, f'deployment "{name}" exceeded its progress deadline')
    wanted, updated = deployment.spec.replicas, status.updated_replicas or 0
    replicas, available = status.replicas or 0, status.available_replicas or 0
    prefix = f'Waiting for deployment "{name}" rollout to finish'
    if wanted is not None and updated < wanted:
        return _waiting(f"{prefix}: {updated} out of {wanted} new replicas have been updated...")
    if replicas > updated:
        return _waiting(f"{prefix}: {replicas - updated} old replicas are pending termination...")
    if available < updated:
        return _waiting(f"{prefix}: {available} of {updated} updated replicas are available...")
    return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')


def _waiting(message: str) -> RolloutStatus:
    return RolloutStatus(False, False, message)


def label_selector_string(selector: k8s.V1LabelSelector) -> str:
    """metav1.LabelSelectorAsSelector(...).String(), the label_selector of a list call."""
    parts = [f"{k}={v}" for k, v in (selector.match_labels or {}).items()]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        forms = {"In": f"{expr.key} in ({values})", "NotIn": f"{expr.key} notin ({values})"}
        forms |= {"Exists": expr.key, "DoesNotExist": f"!{expr.key}"}
        parts.append(forms[expr.operator])
    return ",".join(sorted(parts))


def job_state_of(job: k8s.V1Job) -> JobState:
    """Complete/Failed decide; FailureTarget is not final yet (pods may still be stopping)."""
    name = meta(job.metadata).name
    status = job.status or k8s.V1JobStatus()
    for cond in status.conditions or []:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return JobState("complete", f'job "{name}" completed')
        if cond.type == "Failed":
            detail = ": ".join(part for part in (cond.reason, cond.message) if part)
            return JobState("failed", f'job "{name}" failed: {detail or "no reason given"}')
    active, done, failed = status.active or 0, status.succeeded or 0, status.failed or 0
    counts = f"{active} active, {done} succeeded, {failed} failed"
    return JobState("running", f'job "{name}" running: {counts}')


# ── errors in words ───────────────────────────────────────────────────────────────────────────


def error_from_api(exc: ApiException, not_found: str | None = None) -> KubeError:
    """An ApiException as KubeError: the Status message when there is one, never the repr."""
    status: int | None = exc.status or None
    if status is None:  # the SDK's own failures (TLS set-up, undecodable answer) carry status 0
        return KubeError(None, "ClientError", _one_line(str(exc.reason or "request failed")))
    body = _status_body(exc.body)
    reason = str(body.get("reason") or _STATUS_REASONS.get(status) or _phrase(status))
    if status == 404 and not_found:
        return KubeError(404, reason, not_found)
    message = body.get("message") or _plain_text(exc.body)
    if not message:
        message = f"the Kubernetes API answered HTTP {status} {_phrase(status)}"
    return KubeError(status, reason, _one_line(str(message)))


def _status_body(body: str | None) -> dict[str, Any]:
    try:
        data = json.loads(body or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _plain_text(body: str | None) -> str:
    """A short non-JSON answer is worth quoting; HTML error pages are not."""
    text = (body or "").strip()
    if not text or text.startswith(("<", "{", "[")) or len(text) > 300:
        return ""
    return text


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unreachable(exc: urllib3.exceptions.HTTPError) -> KubeError:
    """A connection-level failure in words: the server's address only, never the URL."""
    pool = getattr(exc, "pool", None)
    host = f"{pool.host}:{pool.port}" if pool is not None else "the configured server"
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # most specific first: NewConnectionError is a ConnectTimeoutError in urllib3 2
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        why = "host name not resolved"
    elif isinstance(cause, urllib3.exceptions.NewConnectionError):
        why = "connection refused or host unreachable"
    elif isinstance(cause, urllib3.exceptions.TimeoutError):
        why = "timed out"
    elif isinstance(cause, urllib3.exceptions.SSLError):
        why = "TLS handshake failed"
    else:
        why = "connection lost"
    return KubeError(None, "Unreachable", f"Kubernetes API at {host} unreachable: {why}")


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except ValueError:
        return None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else first["msg"]
    return _one_line(str(exc).split("\n", 1)[0])


# ── the client ────────────────────────────────────────────────────────────────────────────────

# the typed APIs for snapshot kinds; anything else goes through CustomObjectsApi
_BUILTIN_KINDS: dict[tuple[str, str], tuple[Callable[[ApiClient], Any], str]] = {
    ("apps/v1", "Deployment"): (k8s.AppsV1Api, "deployment"),
    ("apps/v1", "ReplicaSet"): (k8s.AppsV1Api, "replica_set"),
    ("v1", "Service"): (k8s.CoreV1Api, "service"),
    ("batch/v1", "Job"): (k8s.BatchV1Api, "job"),
    ("networking.k8s.io/v1", "Ingress"): (k8s.NetworkingV1Api, "ingress"),
}


def default_api_client_factory(kubeconfig: str | None) -> Callable[[str | None], ApiClient]:
    """In-cluster credentials inside a pod when no context is named, else the kubeconfig."""

    def build(context: str | None) -> ApiClient:
        # the SDK's in-cluster loader keys on this variable too; Settings has no say in it
        if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            # the config loaders carry no annotations, hence the ignores below
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return ApiClient(configuration=configuration)
        # persist_config=False: refreshed tokens are not written back into the user's file
        built: ApiClient = new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, persist_config=False
        )
        return built

    return build


def _with_adapter_retries(api_client: ApiClient) -> ApiClient:
    """Leave retrying to the adapter alone.

    urllib3's default policy, which the SDK keeps, re-sends a GET answered 429/503 with
    Retry-After by itself, sleeping in the calling thread: unlogged, and past the injected sleep.
    Connection errors are retried by `KubernetesClient._call` with backoff instead.
    """
    pool_manager = api_client.rest_client.pool_manager
    no_retries = urllib3.Retry(total=0, redirect=False, respect_retry_after_header=False)
    pool_manager.connection_pool_kw["retries"] = no_retries
    pool_manager.clear()  # pools made before this would keep the old policy
    return api_client


def _dry_run(dry_run: bool) -> str | None:
    return "All" if dry_run else None


def _rfc3339(at: datetime) -> str:
    """time.RFC3339 as kubectl writes it; a naive datetime is taken as UTC."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    if not group:
        message = f"{api_version} objects other than Services are not supported"
        raise KubeError(None, "Unsupported", message)
    return group, version


def _json_object(raw: object) -> dict[str, Any]:
    """The raw answer (``_preload_content=False``) or a CustomObjectsApi answer as a dict."""
    try:
        data = json.loads(raw) if isinstance(raw, bytes | str) else raw
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise KubeError(
            None, "ClientError", "the Kubernetes API answered with something else than an object"
        )
    return data


def _labels(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"


class KubernetesClient:
    """Deployments, Services, Jobs and snapshots across kube contexts, with bounded retries.

    409 Conflict on a read-modify-write re-reads and retries; 429/5xx and connection errors
    back off exponentially through the injected ``sleep``; any other 4xx fails at once.
    """

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        api_client_for: Callable[[str | None], ApiClient] | None = None,
        retries: int = 4,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout_seconds: float = 30.0,
    ) -> None:
        self._build_client = api_client_for or default_api_client_factory(kubeconfig)
        self._retries = max(0, retries)
        self._backoff = backoff_seconds
        self._sleep = sleep
        # the SDK waits forever by default; a hung API server must not hang a rollback worker
        self._timeout = request_timeout_seconds
        self._clients: dict[str | None, ApiClient] = {}
        self._plurals: dict[tuple[str | None, str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for api_client in clients:
            api_client.close()  # type: ignore[no-untyped-call]  # SDK method is unannotated

    # ── deployments ──

    def deployment(self, t: KubeTarget, name: str) -> DeploymentInfo:
        dep = self._read_deployment(t, name)
        status = dep.status or k8s.V1DeploymentStatus()
        return DeploymentInfo(
            name=meta(dep.metadata).name or name,
            revision=revision_of(dep.metadata) or 0,
            images=images_of(dep.spec.template),
            replicas=dep.spec.replicas if dep.spec.replicas is not None else 1,
            updated_replicas=status.updated_replicas or 0,
            ready_replicas=status.ready_replicas or 0,
            available_replicas=status.available_replicas or 0,
            is_paused=bool(dep.spec.paused),
            generation=meta(dep.metadata).generation or 0,
            observed_generation=status.observed_generation or 0,
            selector=dict(dep.spec.selector.match_labels or {}),
        )

    def history(self, t: KubeTarget, name: str) -> list[Revision]:
        """kubectl rollout history: one entry per owned ReplicaSet, ascending by revision."""
        dep = self._read_deployment(t, name)
        revisions = [
            Revision(
                number=number,
                images=images_of(rs.spec.template),
                replicaset=meta(rs.metadata).name or "",
                created=meta(rs.metadata).creation_timestamp,
                change_cause=(meta(rs.metadata).annotations or {}).get(CHANGE_CAUSE),
            )
            for rs in self._owned_replicasets(t, dep)
            if (number := revision_of(rs.metadata)) is not None
        ]
        return sorted(revisions, key=lambda r: (r.number, r.replicaset))

    def plan_undo(self, t: KubeTarget, name: str, to_revision: int | None) -> UndoPlan:
        """What ``kubectl rollout undo`` would do; changes nothing."""
        dep = self._read_deployment(t, name)
        return _plan(dep, select_revision(dep, self._owned_replicasets(t, dep), to_revision))

    def undo(
        self,
        t: KubeTarget,
        name: str,
        to_revision: int | None,
        *,
        dry_run: bool = False,
        before_patch: Callable[[UndoPlan], None] | None = None,
    ) -> UndoPlan:
        """kubectl rollout undo; ``dry_run`` asks the server for a dry run (dryRun=All).

        ``before_patch`` sees the plan right before the patch is sent (to record it, or to
        refuse it by raising), so a caller needs no separate read to know what will change.
        """

        def attempt() -> UndoPlan:
            dep = self._read_deployment(t, name)
            rs = select_revision(dep, self._owned_replicasets(t, dep), to_revision)
            plan = _plan(dep, rs)
            if before_patch is not None:
                before_patch(plan)
            if plan.is_noop:
                return plan
            try:
                self._patch_deployment(t, name, undo_patch(dep, rs), dry_run=dry_run)
            except KubeError as exc:
                # kubectl's words; status and reason stay, so a 409 is still retried
                message = f"failed restoring revision {plan.to_revision}: {exc}"
                raise KubeError(exc.status, exc.reason, message) from None
            return plan

        return self._with_conflict_retry(f"rollout undo deployment {t.namespace}/{name}", attempt)

    def rollout_status(self, t: KubeTarget, name: str) -> RolloutStatus:
        return rollout_status_of(self._read_deployment(t, name))

    def set_image(
        self, t: KubeTarget, name: str, container: str, image: str, *, dry_run: bool = False
    ) -> tuple[str, str]:
        """kubectl set image for one container; (image before, image after)."""

        def attempt() -> tuple[str, str]:
            dep = self._read_deployment(t, name)
            pod = dep.spec.template.spec
            containers = pod.containers if pod else []
            index = next((i for i, c in enumerate(containers) if c.name == container), None)
            if index is None:
                message = f'unable to find container named "{container}" in deployment "{name}"'
                raise KubeError(None, "ContainerNotFound", message)
            before = containers[index].image or ""
            if before == image:
                return before, image  # nothing to change: no request, no new revision
            path = f"/spec/template/spec/containers/{index}"
            # the `test` pins the index to the name just read, should containers be reordered
            patch = [
                {"op": "test", "path": f"{path}/name", "value": container},
                {"op": "replace", "path": f"{path}/image", "value": image},
            ]
            after = self._patch_deployment(t, name, patch, dry_run=dry_run)
            return before, images_of(after.spec.template).get(container, image)

        return self._with_conflict_retry(f"set image deployment {t.namespace}/{name}", attempt)

    def scale(
        self, t: KubeTarget, name: str, replicas: int, *, dry_run: bool = False
    ) -> tuple[int, int]:
        """kubectl scale through the scale subresource; (replicas before, replicas after)."""
        if replicas < 0:
            raise KubeError(None, "Invalid", f"cannot scale to {replicas} replicas")
        api = k8s.AppsV1Api(self._client(t))
        not_found = _not_found("deployment", name, t)
        what = f"deployment {t.namespace}/{name} scale"

        def attempt() -> tuple[int, int]:
            current = self._call(
                f"GET {what}",
                lambda: api.read_namespaced_deployment_scale(
                    name, t.namespace, _request_timeout=self._timeout
                ),
                not_found,
            )
            after = self._call(
                f"PATCH {what}",
                lambda: api.patch_namespaced_deployment_scale(
                    name,
                    t.namespace,
                    {"spec": {"replicas": replicas}},
                    dry_run=_dry_run(dry_run),
                    _content_type=MERGE_PATCH,  # what kubectl scale sends
                    _request_timeout=self._timeout,
                ),
                not_found,
            )
            return _scale_replicas(current), _scale_replicas(after)

        return self._with_conflict_retry(f"scale {what}", attempt)

    def restart(self, t: KubeTarget, name: str, *, at: datetime, dry_run: bool = False) -> None:
        """kubectl rollout restart: stamp the pod template so every pod is replaced."""
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: _rfc3339(at)}}}}}

        def attempt() -> None:
            if self._read_deployment(t, name).spec.paused:
                message = "can't restart paused deployment (run rollout resume first)"
                raise KubeError(None, "Paused", message)
            # kubectl sends this map as a strategic merge patch; for a map a merge patch agrees
            self._patch_deployment(t, name, patch, dry_run=dry_run, content_type=MERGE_PATCH)

        self._with_conflict_retry(f"rollout restart deployment {t.namespace}/{name}", attempt)

    # ── services ──

    def service_selector(self, t: KubeTarget, service: str) -> dict[str, str]:
        return _selector_of(self._read_service(t, service))

    def switch_selector(
        self, t: KubeTarget, service: str, selector: dict[str, str], *, dry_run: bool = False
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Replace the whole selector (a merge would keep stale keys); (before, after).

        The JSON Patch ``test`` on the selector just read makes a concurrent change fail
        instead of being overwritten.
        """
        api = k8s.CoreV1Api(self._client(t))

        def attempt() -> tuple[dict[str, str], dict[str, str]]:
            before = _selector_of(self._read_service(t, service))
            if not before:
                message = f'service "{service}" has no selector (endpoints managed by hand)'
                raise KubeError(None, "NoSelector", message)
            patch = [
                {"op": "test", "path": "/spec/selector", "value": before},
                {"op": "replace", "path": "/spec/selector", "value": selector},
            ]
            try:
                after = self._call(
                    f"PATCH service {t.namespace}/{service}",
                    lambda: api.patch_namespaced_service(
                        service,
                        t.namespace,
                        patch,
                        dry_run=_dry_run(dry_run),
                        _content_type=JSON_PATCH,
                        _request_timeout=self._timeout,
                    ),
                    _not_found("service", service, t),
                )
            except KubeError as exc:
                return before, self._after_failed_switch(t, service, before, selector, exc)
            return before, _selector_of(after)

        return self._with_conflict_retry(f"switch selector {t.namespace}/{service}", attempt)

    def _after_failed_switch(
        self,
        t: KubeTarget,
        service: str,
        before: dict[str, str],
        wanted: dict[str, str],
        exc: KubeError,
    ) -> dict[str, str]:
        """A 422 may be our `test` failing: find out whether someone else changed the selector."""
        if exc.status != 422:
            raise exc
        now = self.service_selector(t, service)
        if now == wanted:
            return now  # a retried request whose first answer was lost already switched it
        if now == before:
            raise exc  # the test held: the 422 is about something else
        raise KubeError(
            422,
            "SelectorChanged",
            f'the selector of service "{service}" changed while switching it: expected '
            f"{_labels(before)}, found {_labels(now)} (wanted {_labels(wanted)})",
        )

    # ── jobs ──

    def create_job(
        self,
        t: KubeTarget,
        name: str,
        spec: dict[str, Any],
        *,
        labels: dict[str, str] | None = None,
        dry_run: bool = False,
    ) -> None:
        """Create a Job; one that already exists counts as created (the step may be re-run)."""
        metadata = {"name": name, "labels": labels or {}}
        try:
            body = k8s.V1Job.model_validate(
                {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}
            )
        except ValidationError as exc:
            raise KubeError(None, "Invalid", f'job "{name}": {_first_error(exc)}') from None
        api = k8s.BatchV1Api(self._client(t))
        try:
            self._call(
                f"POST job {t.namespace}/{name}",
                lambda: api.create_namespaced_job(
                    t.namespace, body, dry_run=_dry_run(dry_run), _request_timeout=self._timeout
                ),
            )
        except KubeError as exc:
            if exc.reason != "AlreadyExists":
                raise
            log.info("job %s/%s already exists; not creating it again", t.namespace, name)

    def job_state(self, t: KubeTarget, name: str) -> JobState:
        api = k8s.BatchV1Api(self._client(t))
        job = self._call(
            f"GET job {t.namespace}/{name}",
            lambda: api.read_namespaced_job(name, t.namespace, _request_timeout=self._timeout),
            _not_found("job", name, t),
        )
        return job_state_of(job)

    # ── snapshots and generic patches ──

    def read_object(self, t: KubeTarget, api_version: str, kind: str, name: str) -> dict[str, Any]:
        """The object exactly as the API serves it (camelCase), ready for ``yaml.safe_dump``."""
        what, not_found = f"GET {kind} {t.namespace}/{name}", _not_found(kind.lower(), name, t)
        builtin = _BUILTIN_KINDS.get((api_version, kind))
        if builtin is not None:
            api_class, resource = builtin
            read = getattr(api_class(self._client(t)), f"read_namespaced_{resource}")
            # the raw answer: the models would drop fields newer than the SDK
            response = self._call(
                what,
                lambda: read(
                    name, t.namespace, _preload_content=False, _request_timeout=self._timeout
                ),
                not_found,
            )
            return _json_object(response.data)
        group, version = _group_version(api_version)
        plural = self._plural(t, api_version, kind)
        api = k8s.CustomObjectsApi(self._client(t))
        found = self._call(
            what,
            lambda: api.get_namespaced_custom_object(
                group, version, t.namespace, plural, name, _request_timeout=self._timeout
            ),
            not_found,
        )
        return _json_object(found)

    def patch_object(
        self,
        t: KubeTarget,
        api_version: str,
        kind: str,
        name: str,
        json_patch: list[dict[str, Any]],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply a JSON Patch (canary weights, ingress annotations); returns the patched object."""
        if not json_patch:  # the SDK silently drops an empty body
            raise KubeError(None, "Invalid", "empty JSON Patch: nothing to change")
        what, not_found = f"PATCH {kind} {t.namespace}/{name}", _not_found(kind.lower(), name, t)
        dry = _dry_run(dry_run)
        builtin = _BUILTIN_KINDS.get((api_version, kind))
        if builtin is not None:
            api_class, resource = builtin
            patch = getattr(api_class(self._client(t)), f"patch_namespaced_{resource}")
            response = self._call(
                what,
                lambda: patch(
                    name,
                    t.namespace,
                    json_patch,
                    dry_run=dry,
                    _content_type=JSON_PATCH,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                ),
                not_found,
            )
            return _json_object(response.data)
        group, version = _group_version(api_version)
        plural = self._plural(t, api_version, kind)
        api = k8s.CustomObjectsApi(self._client(t))
        patched = self._call(
            what,
            lambda: api.patch_namespaced_custom_object(
                *(group, version, t.namespace, plural, name, json_patch),
                dry_run=dry,
                # CustomObjectsApi defaults to merge-patch, which would misread a list body
                _content_type=JSON_PATCH,
                _request_timeout=self._timeout,
            ),
            not_found,
        )
        return _json_object(patched)

    # ── internals ──

    def _read_deployment(self, t: KubeTarget, name: str) -> k8s.V1Deployment:
        api = k8s.AppsV1Api(self._client(t))
        return self._call(
            f"GET deployment {t.namespace}/{name}",
            lambda: api.read_namespaced_deployment(
                name, t.namespace, _request_timeout=self._timeout
            ),
            _not_found("deployment", name, t),
        )

    def _read_service(self, t: KubeTarget, name: str) -> k8s.V1Service:
        api = k8s.CoreV1Api(self._client(t))
        return self._call(
            f"GET service {t.namespace}/{name}",
            lambda: api.read_namespaced_service(name, t.namespace, _request_timeout=self._timeout),
            _not_found("service", name, t),
        )

    def _patch_deployment(
        self,
        t: KubeTarget,
        name: str,
        patch: list[dict[str, Any]] | dict[str, Any],
        *,
        dry_run: bool,
        content_type: str = JSON_PATCH,
    ) -> k8s.V1Deployment:
        api = k8s.AppsV1Api(self._client(t))
        return self._call(
            f"PATCH deployment {t.namespace}/{name}",
            lambda: api.patch_namespaced_deployment(
                name,
                t.namespace,
                patch,
                dry_run=_dry_run(dry_run),
                _content_type=content_type,
                _request_timeout=self._timeout,
            ),
            _not_found("deployment", name, t),
        )

    def _owned_replicasets(self, t: KubeTarget, dep: k8s.V1Deployment) -> list[k8s.V1ReplicaSet]:
        """deploymentutil listReplicaSets: by the Deployment's selector, then controller uid."""
        api = k8s.AppsV1Api(self._client(t))
        selector = label_selector_string(dep.spec.selector) or None
        items: list[k8s.V1ReplicaSet] = []
        token: str | None = None
        while True:
            request = functools.partial(
                api.list_namespaced_replica_set,
                t.namespace,
                label_selector=selector,
                _continue=token,
                _request_timeout=self._timeout,
            )
            page = self._call(f"LIST replicasets {t.namespace}", request)
            items.extend(page.items)
            # the continue token is `var_continue` on the model, `_continue` as a parameter
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                uid = meta(dep.metadata).uid
                return [rs for rs in items if is_controlled_by(rs, uid)]

    def _plural(self, t: KubeTarget, api_version: str, kind: str) -> str:
        """The resource name of a custom kind, from discovery as kubectl's RESTMapper does."""
        key = (t.context, api_version, kind)
        if key not in self._plurals:
            group, version = _group_version(api_version)
            api = k8s.CustomObjectsApi(self._client(t))
            try:
                listing = self._call(
                    f"GET discovery {api_version}",
                    lambda: api.get_api_resources(group, version, _request_timeout=self._timeout),
                )
                resources = listing.resources
            except KubeError as exc:
                if exc.status != 404:
                    raise
                resources = []  # no discovery for the group: fall back to the naming convention
            names = (r.name for r in resources if r.kind == kind and "/" not in r.name)
            self._plurals[key] = next(names, kind.lower() + "s")
        return self._plurals[key]

    def _client(self, t: KubeTarget) -> ApiClient:
        """One ApiClient per kube context, built on first use."""
        with self._lock:
            cached = self._clients.get(t.context)
            if cached is not None:
                return cached
            try:
                built = self._build_client(t.context)
            except (ConfigException, OSError) as exc:
                where = f'context "{t.context}"' if t.context else "the default context"
                message = f"cannot load Kubernetes credentials for {where}: {_one_line(str(exc))}"
                raise KubeError(None, "ConfigError", message) from None
            self._clients[t.context] = _with_adapter_retries(built)
            return built

    def _call(self, what: str, request: Callable[[], T], not_found: str | None = None) -> T:
        """One API request; 429/5xx and connection errors are retried with exponential backoff."""
        attempt = 0
        while True:
            delay: float | None = None
            try:
                return request()
            except ApiException as exc:
                error, delay = error_from_api(exc, not_found), _retry_after(exc)
            except urllib3.exceptions.HTTPError as exc:
                error = _unreachable(exc)
            except json.JSONDecodeError:
                message = f"{what}: the Kubernetes API answered with invalid JSON"
                raise KubeError(None, "ClientError", message) from None
            except (ValueError, OpenApiException) as exc:
                # pydantic: arguments or an answer that do not fit the models
                raise KubeError(None, "Invalid", f"{what}: {_first_error(exc)}") from None
            is_transient = error.status in TRANSIENT_STATUSES or error.reason == "Unreachable"
            if not is_transient or attempt >= self._retries:
                raise error from None
            attempt += 1
            wait = max(delay or 0.0, self._backoff * 2 ** (attempt - 1))
            status = error.status or "no answer"
            log.warning(
                "kubernetes %s: %s (%s); retry %d/%d in %.1f s",
                *(what, error.reason, status, attempt, self._retries, wait),
            )
            self._sleep(wait)

    def _with_conflict_retry(self, what: str, attempt: Callable[[], T]) -> T:
        """Re-run a whole read-modify-write when its write met a 409 Conflict."""
        tries = 0
        while True:
            try:
                return attempt()
            except KubeError as exc:
                if exc.status != 409 or exc.reason != "Conflict" or tries >= self._retries:
                    raise
                tries += 1
                log.warning(
                    "kubernetes %s: conflict, re-reading (retry %d/%d)", what, tries, self._retries
                )


def _plan(dep: k8s.V1Deployment, rs: k8s.V1ReplicaSet) -> UndoPlan:
    """rollback.go after the revision is found: refuse when paused, skip when it matches."""
    name = meta(dep.metadata).name or ""
    if dep.spec.paused:
        raise KubeError(
            None,
            "Paused",
            "you cannot rollback a paused deployment; resume it first with "
            f"'kubectl rollout resume deployment/{name}' and try again",
        )
    return UndoPlan(
        deployment=name,
        from_revision=revision_of(dep.metadata) or 0,
        to_revision=revision_of(rs.metadata) or 0,
        images_before=images_of(dep.spec.template),
        images_after=images_of(rs.spec.template),
        is_noop=equal_ignore_hash(rs.spec.template, dep.spec.template),
    )


def _not_found(kind: str, name: str, t: KubeTarget) -> str:
    """The words for a 404 on a named object (the API's own say `deployments.apps "x"`)."""
    return f'{kind} "{name}" not found in namespace "{t.namespace}"'


def _selector_of(service: k8s.V1Service) -> dict[str, str]:
    return dict(service.spec.selector or {}) if service.spec else {}


def _scale_replicas(scale: k8s.V1Scale) -> int:
    return (scale.spec.replicas or 0) if scale.spec else 0
