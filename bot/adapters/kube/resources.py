"""Services, Jobs and any object by apiVersion/kind: KubernetesClient beyond Deployments."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient
from pydantic import ValidationError

from bot.adapters.kube.api_errors import _first_error
from bot.adapters.kube.kubectl import job_state_of
from bot.adapters.kube.session import (
    FIELD_MANAGER,
    JSON_PATCH,
    ApiSession,
    T,
    _dry_run,
    _not_found,
    log,
)
from bot.adapters.kube.values import PIN_CHANGED, JobState, KubeError, KubeTarget

# the typed APIs for snapshot kinds; anything else goes through CustomObjectsApi
_BUILTIN_KINDS: dict[tuple[str, str], tuple[Callable[[ApiClient], Any], str]] = {
    ("apps/v1", "Deployment"): (k8s.AppsV1Api, "deployment"),
    ("apps/v1", "ReplicaSet"): (k8s.AppsV1Api, "replica_set"),
    ("v1", "Service"): (k8s.CoreV1Api, "service"),
    ("batch/v1", "Job"): (k8s.BatchV1Api, "job"),
    ("networking.k8s.io/v1", "Ingress"): (k8s.NetworkingV1Api, "ingress"),
}


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


def _selector_of(service: k8s.V1Service) -> dict[str, str]:
    return dict(service.spec.selector or {}) if service.spec else {}


class Resources(ApiSession):
    """The Service, Job and generic object methods of KubernetesClient."""

    # ── services ──

    def service_selector(self, t: KubeTarget, service: str) -> dict[str, str]:
        return _selector_of(self._read_service(t, service))

    def switch_selector(
        self,
        t: KubeTarget,
        service: str,
        selector: dict[str, str],
        *,
        dry_run: bool = False,
        expect: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Replace the whole selector (a merge would keep stale keys); (before, after).

        The JSON Patch ``test`` on the selector just read (``expect``: the one the caller read
        and pinned) makes a concurrent change fail instead of being overwritten.
        """
        api = k8s.CoreV1Api(self._client(t))

        def attempt() -> tuple[dict[str, str], dict[str, str]]:
            before = _selector_of(self._read_service(t, service))
            if not before:
                message = f'service "{service}" has no selector (endpoints managed by hand)'
                raise KubeError(None, "NoSelector", message)
            if expect is not None and before != expect:  # re-checked after a 409 too
                message = (
                    f"the selector of Service {service} is {_labels(before)}, not {_labels(expect)}"
                )
                raise KubeError(None, PIN_CHANGED, message)
            patch = [
                {"op": "test", "path": "/spec/selector", "value": before},
                {"op": "replace", "path": "/spec/selector", "value": selector},
            ]
            try:
                after = self._patch(
                    api.patch_namespaced_service, t, "service", service, patch, dry_run=dry_run
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
        labels: dict[str, str],
        dry_run: bool = False,
    ) -> None:
        """Create a Job carrying ``labels``, which must identify this caller uniquely.

        A Job of that name that already exists counts as created (the step may run again after
        a crash) only if it carries every one of ``labels``; any other (another rollback's, a
        person's) is refused, never adopted as if it had run for us.
        """
        if not labels:
            raise KubeError(None, "Invalid", f'job "{name}": no identity labels to recognise it')
        metadata = {"name": name, "labels": labels}
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
                    t.namespace,
                    body,
                    dry_run=_dry_run(dry_run),
                    field_manager=FIELD_MANAGER,
                    _request_timeout=self._timeout,
                ),
            )
        except KubeError as exc:
            if exc.reason != "AlreadyExists":
                raise
            existing = self._call(
                f"GET job {t.namespace}/{name}",
                lambda: api.read_namespaced_job(name, t.namespace, _request_timeout=self._timeout),
                _not_found("job", name, t),
            )
            found = existing.metadata or k8s.V1ObjectMeta()
            theirs = found.labels or {}
            if any(theirs.get(key) != value for key, value in labels.items()):
                created = found.creation_timestamp
                since = f", created {created:%Y-%m-%d %H:%M} UTC" if created else ""
                raise KubeError(
                    409,
                    "AlreadyExists",
                    f'job "{name}" already exists in {t.namespace} and was not created by this'
                    f" step (its labels: {_labels(theirs)}{since}): it may be another"
                    " rollback's or another bot installation's, so its result says nothing"
                    " about this one. Delete it (kubectl -n"
                    f" {t.namespace} delete job {name}) or give the step another job_name",
                ) from None
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
        key = ("object", t, api_version, kind, name)
        return self._read_once(key, lambda: self._fetch_object(t, api_version, kind, name))

    def _fetch_object(
        self, t: KubeTarget, api_version: str, kind: str, name: str
    ) -> dict[str, Any]:
        what, not_found = f"GET {kind} {t.namespace}/{name}", _not_found(kind.lower(), name, t)
        read = self._builtin_method(t, api_version, kind, "read")
        if read is not None:
            # the raw answer: the models would drop fields newer than the SDK
            response = self._call(
                what,
                lambda: read(
                    name, t.namespace, _preload_content=False, _request_timeout=self._timeout
                ),
                not_found,
            )
            return _json_object(response.data)
        api, group, version, plural = self._custom_objects(t, api_version, kind)
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
        patch = self._builtin_method(t, api_version, kind, "patch")
        if patch is not None:
            response = self._patch(
                patch, t, kind, name, json_patch, dry_run=dry_run, _preload_content=False
            )
            return _json_object(response.data)
        api, group, version, plural = self._custom_objects(t, api_version, kind)
        patched = self._call(
            what,
            lambda: api.patch_namespaced_custom_object(
                *(group, version, t.namespace, plural, name, json_patch),
                dry_run=_dry_run(dry_run),
                field_manager=FIELD_MANAGER,
                # CustomObjectsApi defaults to merge-patch, which would misread a list body
                _content_type=JSON_PATCH,
                _request_timeout=self._timeout,
            ),
            not_found,
        )
        return _json_object(patched)

    def resource_of(self, t: KubeTarget, api_version: str, kind: str) -> tuple[str, str]:
        """(API group, resource plural) of a kind, as RBAC names it (from discovery for CRDs)."""
        builtin = _BUILTIN_KINDS.get((api_version, kind))
        if builtin is not None:
            group = api_version.rpartition("/")[0]
            return group, "ingresses" if kind == "Ingress" else f"{builtin[1].replace('_', '')}s"
        return _group_version(api_version)[0], self._plural(t, api_version, kind)

    # ── internals ──

    def _patch(
        self,
        send: Callable[..., T],
        t: KubeTarget,
        kind: str,
        name: str,
        body: Any,
        *,
        dry_run: bool,
        content_type: str = JSON_PATCH,
        subject: str | None = None,
        **raw: Any,
    ) -> T:
        """PATCH a namespaced object with a typed API's ``patch_namespaced_*`` method, as this
        bot's field manager (server-side dry run when asked). ``subject`` names the object in
        errors when "<kind> <namespace>/<name>" would not (a subresource)."""
        return self._call(
            f"PATCH {subject or f'{kind} {t.namespace}/{name}'}",
            lambda: send(
                name,
                t.namespace,
                body,
                dry_run=_dry_run(dry_run),
                field_manager=FIELD_MANAGER,
                _content_type=content_type,
                _request_timeout=self._timeout,
                **raw,
            ),
            _not_found(kind.lower(), name, t),
        )

    def _builtin_method(
        self, t: KubeTarget, api_version: str, kind: str, verb: str
    ) -> Callable[..., Any] | None:
        """The typed API's ``<verb>_namespaced_<kind>`` of a snapshot kind; None for the rest."""
        builtin = _BUILTIN_KINDS.get((api_version, kind))
        if builtin is None:
            return None
        api_class, resource = builtin
        method: Callable[..., Any] = getattr(
            api_class(self._client(t)), f"{verb}_namespaced_{resource}"
        )
        return method

    def _custom_objects(
        self, t: KubeTarget, api_version: str, kind: str
    ) -> tuple[k8s.CustomObjectsApi, str, str, str]:
        """CustomObjectsApi and the group, version and plural its calls name the kind by."""
        group, version = _group_version(api_version)
        plural = self._plural(t, api_version, kind)
        return k8s.CustomObjectsApi(self._client(t)), group, version, plural

    def _read_service(self, t: KubeTarget, name: str) -> k8s.V1Service:
        api = k8s.CoreV1Api(self._client(t))
        return self._read_once(
            ("service", t, name),
            lambda: self._call(
                f"GET service {t.namespace}/{name}",
                lambda: api.read_namespaced_service(
                    name, t.namespace, _request_timeout=self._timeout
                ),
                _not_found("service", name, t),
            ),
        )

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
