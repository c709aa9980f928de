"""Kubernetes API adapter: the only importer of the ``kubernetes`` SDK (v37, pydantic models).

It speaks in the bot's terms (revisions, images, rollout status) and ports the kubectl behaviour
the bot relies on: ``rollout undo`` (kubectl ``pkg/polymorphichelpers/rollback.go`` with
``pkg/util/deployment/deployment.go``), ``rollout status`` (``rollout_status.go``) and
``rollout restart`` (``objectrestarter.go``). Every failure leaves as :class:`KubeError`, in words.
"""

from __future__ import annotations

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
from pydantic import ValidationError

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


def wire(model: Any) -> dict[str, Any]:
    """A model as the API writes it: camelCase keys, no nulls, timestamps as strings."""
    data: dict[str, Any] = json.loads(model.to_json())
    return data


def revision_of(annotations: dict[str, str] | None) -> int | None:
    """deploymentutil.Revision: a missing annotation is revision 0; garbage is None (skipped)."""
    value = (annotations or {}).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def images_of(template: Any) -> dict[str, str]:
    """Container name → image of a pod template (init containers are not the app's version)."""
    containers = template.spec.containers if template and template.spec else []
    return {c.name: c.image or "" for c in containers or []}


def is_controlled_by(replicaset: Any, owner_uid: str | None) -> bool:
    """metav1.IsControlledBy: the owner reference marked controller=true carries this uid."""
    refs = (replicaset.metadata.owner_references or []) if replicaset.metadata else []
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


def template_without_hash(template: Any) -> dict[str, Any]:
    """The pod template in wire form minus the pod-template-hash label the controller adds."""
    data = wire(template)
    labels = data.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
    return data


def equal_ignore_hash(template1: Any, template2: Any) -> bool:
    """kubectl equalIgnoreHash. Quantities compare as text: the API server stores them canonical."""
    return bool(
        _pruned(template_without_hash(template1)) == _pruned(template_without_hash(template2))
    )


def select_revision(deployment: Any, replicasets: Sequence[Any], to_revision: int | None) -> Any:
    """rollback.go deploymentRevision: the asked revision, else the second-highest one."""
    wanted = to_revision or 0
    if wanted < 0:
        raise _revision_not_found(wanted)
    latest: tuple[int, Any] | None = None
    previous: tuple[int, Any] | None = None
    for rs in replicasets:
        number = revision_of(rs.metadata.annotations)
        if number is None:
            continue
        if wanted and number == wanted:
            return rs
        if wanted:
            continue
        if latest is None or latest[0] < number:
            previous, latest = latest, (number, rs)
        elif previous is None or previous[0] < number:
            previous = (number, rs)
    if wanted:
        raise _revision_not_found(wanted)
    if previous is None:
        raise KubeError(
            None,
            "NoRolloutHistory",
            f'no rollout history found for deployment "{deployment.metadata.name}"',
        )
    return previous[1]


def _revision_not_found(number: int) -> KubeError:
    return KubeError(
        None, "RevisionNotFound", f"unable to find specified revision {number} in history"
    )


def undo_annotations(deployment: Any, replicaset: Any) -> dict[str, str]:
    """rollback.go: the Deployment keeps its revision bookkeeping, the rest comes from the RS."""
    own = deployment.metadata.annotations or {}
    kept = {k: v for k, v in own.items() if k in ANNOTATIONS_TO_SKIP}
    restored = {
        k: v
        for k, v in (replicaset.metadata.annotations or {}).items()
        if k not in ANNOTATIONS_TO_SKIP
    }
    return kept | restored


def undo_patch(deployment: Any, replicaset: Any) -> list[dict[str, Any]]:
    """rollback.go getDeploymentPatch: a JSON Patch replacing the template and the annotations."""
    return [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": template_without_hash(replicaset.spec.template),
        },
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": undo_annotations(deployment, replicaset),
        },
    ]


def rollout_status_of(deployment: Any) -> RolloutStatus:
    """rollout_status.go DeploymentStatusViewer.Status, with kubectl's words."""
    name = deployment.metadata.name
    status = deployment.status or k8s.V1DeploymentStatus()
    if (deployment.metadata.generation or 0) > (status.observed_generation or 0):
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


def label_selector_string(selector: Any) -> str:
    """metav1.LabelSelectorAsSelector(...).String() for list calls."""
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        parts.append(
            {
                "In": f"{expr.key} in ({values})",
                "NotIn": f"{expr.key} notin ({values})",
                "Exists": expr.key,
                "DoesNotExist": f"!{expr.key}",
            }[expr.operator]
        )
    return ",".join(sorted(parts))


def job_state_of(job: Any) -> JobState:
    """Complete/Failed conditions decide; FailureTarget is not final (pods may still stop)."""
    name = job.metadata.name
    status = job.status or k8s.V1JobStatus()
    for cond in status.conditions or []:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return JobState("complete", f'job "{name}" completed')
        if cond.type == "Failed":
            detail = ": ".join(part for part in (cond.reason, cond.message) if part)
            return JobState("failed", f'job "{name}" failed: {detail or "no reason given"}')
    counts = f"{status.active or 0} active, {status.succeeded or 0} succeeded, {status.failed or 0} failed"
    return JobState("running", f'job "{name}" running: {counts}')


# ── errors in words ───────────────────────────────────────────────────────────────────────────


def error_from_api(exc: ApiException, subject: str | None = None) -> KubeError:
    """An ApiException as KubeError: the Status message when there is one, never the repr."""
    status = exc.status or None
    body = _status_body(exc.body)
    reason = str(body.get("reason") or _STATUS_REASONS.get(status or 0) or _phrase(status))
    if status is None:  # the SDK's own failures (TLS, undecodable answer) carry status 0
        return KubeError(None, "ClientError", _one_line(str(exc.reason or "request failed")))
    if status == 404 and subject:
        return KubeError(404, reason, f"{subject} not found")
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


def _phrase(status: int | None) -> str:
    try:
        return HTTPStatus(status or 0).phrase
    except ValueError:
        return "Error"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unreachable(exc: urllib3.exceptions.HTTPError) -> KubeError:
    """A connection-level failure in words: the server's address, never URLs with tokens."""
    pool = getattr(exc, "pool", None)
    host = f"{pool.host}:{pool.port}" if pool is not None else "the configured server"
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(cause, urllib3.exceptions.TimeoutError):
        why = "timed out"
    elif isinstance(cause, urllib3.exceptions.NewConnectionError):
        why = "connection refused or host unreachable"
    elif isinstance(cause, urllib3.exceptions.NameResolutionError):
        why = "host name not resolved"
    elif isinstance(cause, urllib3.exceptions.SSLError):
        why = "TLS handshake failed"
    else:
        why = "connection failed"
    return KubeError(None, "Unreachable", f"Kubernetes API at {host} unreachable: {why}")


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except ValueError:
        return None


# ── the client ────────────────────────────────────────────────────────────────────────────────

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
        # the SDK's in-cluster loader keys on the same variable; Settings does not model it
        if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            load_incluster_config(client_configuration=configuration)
            return ApiClient(configuration=configuration)
        # persist_config=False: refreshed tokens must not be written back into the user's file
        return new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)

    return build


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
            api_client.close()

    # ── deployments ──

    def deployment(self, t: KubeTarget, name: str) -> DeploymentInfo:
        dep = self._read_deployment(t, name)
        status = dep.status or k8s.V1DeploymentStatus()
        return DeploymentInfo(
            name=dep.metadata.name,
            revision=revision_of(dep.metadata.annotations) or 0,
            images=images_of(dep.spec.template),
            replicas=dep.spec.replicas if dep.spec.replicas is not None else 1,
            updated_replicas=status.updated_replicas or 0,
            ready_replicas=status.ready_replicas or 0,
            available_replicas=status.available_replicas or 0,
            is_paused=bool(dep.spec.paused),
            generation=dep.metadata.generation or 0,
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
                replicaset=rs.metadata.name,
                created=rs.metadata.creation_timestamp,
                change_cause=(rs.metadata.annotations or {}).get(CHANGE_CAUSE),
            )
            for rs in self._owned_replicasets(t, dep)
            if (number := revision_of(rs.metadata.annotations)) is not None
        ]
        return sorted(revisions, key=lambda r: (r.number, r.replicaset))

    def plan_undo(self, t: KubeTarget, name: str, to_revision: int | None) -> UndoPlan:
        """What ``kubectl rollout undo`` would do; changes nothing."""
        dep = self._read_deployment(t, name)
        rs = select_revision(dep, self._owned_replicasets(t, dep), to_revision)
        return self._plan(dep, rs)

    def undo(
        self, t: KubeTarget, name: str, to_revision: int | None, *, dry_run: bool = False
    ) -> UndoPlan:
        """kubectl rollout undo (server-side dry run with ``dry_run``)."""

        def attempt() -> UndoPlan:
            dep = self._read_deployment(t, name)
            rs = select_revision(dep, self._owned_replicasets(t, dep), to_revision)
            plan = self._plan(dep, rs)
            if plan.is_noop:
                return plan
            try:
                self._patch_deployment(t, name, undo_patch(dep, rs), dry_run=dry_run)
            except KubeError as exc:
                # kubectl's words; status and reason stay so a 409 is still retried
                raise KubeError(
                    exc.status, exc.reason, f"failed restoring revision {plan.to_revision}: {exc}"
                ) from None
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
            containers = dep.spec.template.spec.containers or []
            index = next((i for i, c in enumerate(containers) if c.name == container), None)
            if index is None:
                raise KubeError(
                    None,
                    "ContainerNotFound",
                    f'unable to find container named "{container}" in deployment "{name}"',
                )
            before = containers[index].image or ""
            if before == image:
                return before, image
            path = f"/spec/template/spec/containers/{index}"
            # the `test` pins the index to the name we looked up, should containers be reordered
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
        subject = self._subject("deployment", name, t)

        def attempt() -> tuple[int, int]:
            api = k8s.AppsV1Api(self._client(t))
            current = self._call(
                f"GET deployment scale {t.namespace}/{name}",
                lambda: api.read_namespaced_deployment_scale(
                    name, t.namespace, _request_timeout=self._timeout
                ),
                subject,
            )
            after = self._call(
                f"PATCH deployment scale {t.namespace}/{name}",
                lambda: api.patch_namespaced_deployment_scale(
                    name,
                    t.namespace,
                    {"spec": {"replicas": replicas}},
                    dry_run=_dry_run(dry_run),
                    _content_type=MERGE_PATCH,  # kubectl scale sends a merge patch
                    _request_timeout=self._timeout,
                ),
                subject,
            )
            return current.spec.replicas or 0, after.spec.replicas or 0

        return self._with_conflict_retry(f"scale deployment {t.namespace}/{name}", attempt)

    def restart(self, t: KubeTarget, name: str, *, at: datetime, dry_run: bool = False) -> None:
        """kubectl rollout restart: stamp the pod template so every pod is replaced."""
        stamp = _rfc3339(at)

        def attempt() -> None:
            dep = self._read_deployment(t, name)
            if dep.spec.paused:
                raise KubeError(
                    None, "Paused", "can't restart paused deployment (run rollout resume first)"
                )
            patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
            # kubectl sends the same map as a strategic merge patch; for a map both agree
            self._patch_deployment(t, name, patch, dry_run=dry_run, content_type=MERGE_PATCH)

        self._with_conflict_retry(f"rollout restart deployment {t.namespace}/{name}", attempt)

    # ── services ──

    def service_selector(self, t: KubeTarget, service: str) -> dict[str, str]:
        return dict(self._read_service(t, service).spec.selector or {})

    def switch_selector(
        self, t: KubeTarget, service: str, selector: dict[str, str], *, dry_run: bool = False
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Replace the whole selector (a merge would keep stale keys); (before, after).

        The JSON Patch ``test`` on the selector just read makes a concurrent change fail
        instead of being overwritten.
        """
        subject = self._subject("service", service, t)

        def attempt() -> tuple[dict[str, str], dict[str, str]]:
            before = dict(self._read_service(t, service).spec.selector or {})
            if not before:
                raise KubeError(
                    None,
                    "NoSelector",
                    f'service "{service}" has no selector (its endpoints are managed by hand); '
                    "refusing to add one",
                )
            patch = [
                {"op": "test", "path": "/spec/selector", "value": before},
                {"op": "replace", "path": "/spec/selector", "value": selector},
            ]
            api = k8s.CoreV1Api(self._client(t))
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
                    subject,
                )
            except KubeError as exc:
                raise self._stale_selector(t, service, before, selector, exc) from None
            return before, dict(after.spec.selector or {})

        return self._with_conflict_retry(
            f"switch selector service {t.namespace}/{service}", attempt
        )

    def _stale_selector(
        self,
        t: KubeTarget,
        service: str,
        before: dict[str, str],
        wanted: dict[str, str],
        exc: KubeError,
    ) -> KubeError:
        """A failed ``test`` (422) is a concurrent change: say what the selector is now."""
        if exc.status != 422:
            return exc
        now = dict(self._read_service(t, service).spec.selector or {})
        if now == before:
            return exc  # the test held: the 422 is about something else
        return KubeError(
            409,
            "Conflict",
            f'the selector of service "{service}" changed while switching it '
            f"(expected {_labels(before)}, found {_labels(now)}, wanted {_labels(wanted)})",
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
        try:
            body = k8s.V1Job.from_dict(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": name, "labels": labels or {}},
                    "spec": spec,
                }
            )
        except ValidationError as exc:
            raise KubeError(
                None, "Invalid", f'job "{name}" has an invalid spec: {_first_error(exc)}'
            ) from None
        api = k8s.BatchV1Api(self._client(t))
        try:
            self._call(
                f"POST job {t.namespace}/{name}",
                lambda: api.create_namespaced_job(
                    t.namespace, body, dry_run=_dry_run(dry_run), _request_timeout=self._timeout
                ),
            )
        except KubeError as exc:
            if exc.status != 409 or exc.reason == "Conflict":
                raise
            log.info("job %s/%s already exists; not creating it again", t.namespace, name)

    def job_state(self, t: KubeTarget, name: str) -> JobState:
        api = k8s.BatchV1Api(self._client(t))
        job = self._call(
            f"GET job {t.namespace}/{name}",
            lambda: api.read_namespaced_job(name, t.namespace, _request_timeout=self._timeout),
            self._subject("job", name, t),
        )
        return job_state_of(job)

    # ── snapshots and generic patches ──

    def read_object(self, t: KubeTarget, api_version: str, kind: str, name: str) -> dict[str, Any]:
        """The object exactly as the API serves it (camelCase), ready for ``yaml.safe_dump``."""
        subject = self._subject(kind.lower(), name, t)
        builtin = _BUILTIN_KINDS.get((api_version, kind))
        if builtin is not None:
            api_class, resource = builtin
            read = getattr(api_class(self._client(t)), f"read_namespaced_{resource}")
            response = self._call(
                f"GET {kind} {t.namespace}/{name}",
                # raw answer: the models would drop fields newer than the SDK
                lambda: read(
                    name, t.namespace, _preload_content=False, _request_timeout=self._timeout
                ),
                subject,
            )
            return _json_object(response.data)
        group, version = _group_version(api_version)
        plural = self._plural(t, api_version, kind)
        api = k8s.CustomObjectsApi(self._client(t))
        found = self._call(
            f"GET {kind} {t.namespace}/{name}",
            lambda: api.get_namespaced_custom_object(
                group, version, t.namespace, plural, name, _request_timeout=self._timeout
            ),
            subject,
        )
        return _as_dict(found)

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
        if not json_patch:
            raise KubeError(None, "Invalid", "empty JSON Patch: nothing to change")
        subject = self._subject(kind.lower(), name, t)
        what = f"PATCH {kind} {t.namespace}/{name}"
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
                    dry_run=_dry_run(dry_run),
                    _content_type=JSON_PATCH,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                ),
                subject,
            )
            return _json_object(response.data)
        group, version = _group_version(api_version)
        plural = self._plural(t, api_version, kind)
        api = k8s.CustomObjectsApi(self._client(t))
        patched = self._call(
            what,
            lambda: api.patch_namespaced_custom_object(
                group,
                version,
                t.namespace,
                plural,
                name,
                json_patch,
                dry_run=_dry_run(dry_run),
                # CustomObjectsApi defaults to merge-patch, which would misread a list body
                _content_type=JSON_PATCH,
                _request_timeout=self._timeout,
            ),
            subject,
        )
        return _as_dict(patched)

    # ── internals ──

    def _plan(self, dep: Any, rs: Any) -> UndoPlan:
        if dep.spec.paused:
            name = dep.metadata.name
            raise KubeError(
                None,
                "Paused",
                "you cannot rollback a paused deployment; resume it first with "
                f"'kubectl rollout resume deployment/{name}' and try again",
            )
        return UndoPlan(
            deployment=dep.metadata.name,
            from_revision=revision_of(dep.metadata.annotations) or 0,
            to_revision=revision_of(rs.metadata.annotations) or 0,
            images_before=images_of(dep.spec.template),
            images_after=images_of(rs.spec.template),
            is_noop=equal_ignore_hash(rs.spec.template, dep.spec.template),
        )

    def _read_deployment(self, t: KubeTarget, name: str) -> Any:
        api = k8s.AppsV1Api(self._client(t))
        return self._call(
            f"GET deployment {t.namespace}/{name}",
            lambda: api.read_namespaced_deployment(
                name, t.namespace, _request_timeout=self._timeout
            ),
            self._subject("deployment", name, t),
        )

    def _read_service(self, t: KubeTarget, name: str) -> Any:
        api = k8s.CoreV1Api(self._client(t))
        return self._call(
            f"GET service {t.namespace}/{name}",
            lambda: api.read_namespaced_service(name, t.namespace, _request_timeout=self._timeout),
            self._subject("service", name, t),
        )

    def _patch_deployment(
        self,
        t: KubeTarget,
        name: str,
        patch: list[dict[str, Any]] | dict[str, Any],
        *,
        dry_run: bool,
        content_type: str = JSON_PATCH,
    ) -> Any:
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
            self._subject("deployment", name, t),
        )

    def _owned_replicasets(self, t: KubeTarget, dep: Any) -> list[Any]:
        """deploymentutil listReplicaSets: by the Deployment's selector, then controller uid."""
        api = k8s.AppsV1Api(self._client(t))
        selector = label_selector_string(dep.spec.selector) or None
        items: list[Any] = []
        token: str | None = None
        while True:
            page = self._call(
                f"LIST replicasets {t.namespace}",
                lambda token=token: api.list_namespaced_replica_set(
                    t.namespace,
                    label_selector=selector,
                    _continue=token,
                    _request_timeout=self._timeout,
                ),
            )
            items.extend(page.items or [])
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                break
        return [rs for rs in items if is_controlled_by(rs, dep.metadata.uid)]

    def _plural(self, t: KubeTarget, api_version: str, kind: str) -> str:
        """The resource name of a custom kind, from discovery (as kubectl's RESTMapper does)."""
        key = (t.context, api_version, kind)
        if key in self._plurals:
            return self._plurals[key]
        group, version = _group_version(api_version)
        api = k8s.CustomObjectsApi(self._client(t))
        try:
            listing = self._call(
                f"GET discovery {api_version}",
                lambda: api.get_api_resources(group, version, _request_timeout=self._timeout),
            )
            resources = listing.resources or []
        except KubeError as exc:
            if exc.status != 404:
                raise
            resources = []  # a server without discovery for the group: fall back to the convention
        plural = next(
            (r.name for r in resources if r.kind == kind and "/" not in r.name),
            kind.lower() + "s",
        )
        self._plurals[key] = plural
        return plural

    def _client(self, t: KubeTarget) -> ApiClient:
        with self._lock:
            cached = self._clients.get(t.context)
            if cached is not None:
                return cached
            try:
                built = self._build_client(t.context)
            except (ConfigException, OSError) as exc:
                where = f'context "{t.context}"' if t.context else "the default context"
                raise KubeError(
                    None, "ConfigError", f"cannot load Kubernetes credentials for {where}: {exc}"
                ) from None
            self._clients[t.context] = built
            return built

    @staticmethod
    def _subject(kind: str, name: str, t: KubeTarget) -> str:
        return f'{kind} "{name}" in namespace "{t.namespace}"'

    def _call(self, what: str, request: Callable[[], T], subject: str | None = None) -> T:
        """One API request; 429/5xx and connection errors are retried with exponential backoff."""
        attempt = 0
        while True:
            delay: float | None = None
            try:
                return request()
            except ApiException as exc:
                error = error_from_api(exc, subject)
                delay = _retry_after(exc)
            except urllib3.exceptions.HTTPError as exc:
                error = _unreachable(exc)
            except (ValidationError, OpenApiException) as exc:
                raise KubeError(None, "Invalid", f"{what}: {_first_error(exc)}") from None
            is_transient = error.status in TRANSIENT_STATUSES or error.reason == "Unreachable"
            if not is_transient or attempt >= self._retries:
                raise error from None
            attempt += 1
            wait = max(delay or 0.0, self._backoff * 2 ** (attempt - 1))
            log.warning(
                "kubernetes %s: %s (%s); retry %d/%d in %.1f s",
                what,
                error.reason,
                error.status or "no answer",
                attempt,
                self._retries,
                wait,
            )
            self._sleep(wait)

    def _with_conflict_retry(self, what: str, attempt: Callable[[], T]) -> T:
        """Re-run a whole read-modify-write when the write met a 409 Conflict."""
        tries = 0
        while True:
            try:
                return attempt()
            except KubeError as exc:
                if exc.status != 409 or exc.reason != "Conflict" or tries >= self._retries:
                    raise
                tries += 1
                log.warning(
                    "kubernetes %s: conflict; re-reading (retry %d/%d)", what, tries, self._retries
                )


def _dry_run(dry_run: bool) -> str | None:
    return "All" if dry_run else None


def _rfc3339(at: datetime) -> str:
    """time.RFC3339 as kubectl writes it; a naive datetime is taken as UTC."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    if not group or not version:
        raise KubeError(
            None, "Unsupported", f"reading or patching {api_version} objects is not supported"
        )
    return group, version


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise KubeError(
            None, "ClientError", "the Kubernetes API answered with invalid JSON"
        ) from None
    if not isinstance(data, dict):
        raise KubeError(None, "ClientError", "the Kubernetes API answered with a non-object")
    return data


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KubeError(None, "ClientError", "the Kubernetes API answered with a non-object")
    return value


def _labels(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    return _one_line(str(exc).split("\n", 1)[0])
