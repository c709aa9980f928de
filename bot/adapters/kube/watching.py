"""Every Deployment (or Argo Rollout) of a namespace in one LIST, and a watch on them that
resumes from a resourceVersion: how the guard notices releases without one GET per service per
round."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from bot.adapters.kube import argo
from bot.adapters.kube.api_errors import _unreachable, error_from_api
from bot.adapters.kube.kubectl import images_of, meta, revision_of
from bot.adapters.kube.rollouts import Rollouts, rollout_revision
from bot.adapters.kube.session import log
from bot.adapters.kube.values import DeploymentListing, DeploymentRevision, KubeTarget

GONE = 410  # the resourceVersion is older than the API server's watch cache: list again


def _revision(dep: k8s.V1Deployment, resource_version: str) -> DeploymentRevision:
    return DeploymentRevision(
        name=meta(dep.metadata).name or "",
        revision=revision_of(dep.metadata) or 0,
        images=images_of(dep.spec.template if dep.spec else None),
        resource_version=resource_version,
    )


def _deployment_event(event: dict[str, Any], resource_version: str) -> DeploymentRevision:
    dep = event["object"]
    return _revision(dep, meta(dep.metadata).resource_version or resource_version)


def _rollout_event(event: dict[str, Any], resource_version: str) -> DeploymentRevision:
    ro = event["raw_object"]  # a custom object: the SDK has no model, the dict is the object
    version = (ro.get("metadata") or {}).get("resourceVersion")
    return rollout_revision(ro, str(version or resource_version))


class Watching(Rollouts):
    """The list and watch methods of KubernetesClient (a Rollout watch lists Rollouts again)."""

    def deployment_revisions(self, t: KubeTarget) -> DeploymentListing:
        """Every Deployment of ``t.namespace`` (all pages), name → revision and images."""
        api = k8s.AppsV1Api(self._client(t))
        found: dict[str, DeploymentRevision] = {}
        token: str | None = None
        while True:
            request = functools.partial(
                api.list_namespaced_deployment,
                t.namespace,
                _continue=token,
                _request_timeout=self._timeout,
            )
            page = self._call(f"LIST deployments {t.namespace}", request)
            version = (page.metadata.resource_version if page.metadata else None) or ""
            for dep in page.items:
                revision = _revision(dep, version)  # a watch resumes from the list
                found[revision.name] = revision
            # the continue token is `var_continue` on the model, `_continue` as a parameter
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                return DeploymentListing(found, version)

    def watch_deployments(
        self,
        t: KubeTarget,
        resource_version: str,
        *,
        timeout_seconds: int = 60,
        stop: threading.Event | None = None,
    ) -> Iterator[DeploymentRevision]:
        """The Deployments of ``t.namespace`` added or changed after ``resource_version``, for
        up to ``timeout_seconds`` (one watch request; call again from the last event's
        resourceVersion). A resourceVersion too old (410 Gone) lists again and yields every
        Deployment with the list's resourceVersion, so nothing between is missed. Raises
        KubeError for any other failure (the caller backs off and lists)."""
        api = k8s.AppsV1Api(self._client(t))
        return self._watch(
            t,
            "deployments",
            functools.partial(api.list_namespaced_deployment, t.namespace),
            _deployment_event,
            self.deployment_revisions,
            resource_version,
            timeout_seconds,
            stop,
        )

    def watch_rollouts(
        self,
        t: KubeTarget,
        resource_version: str,
        *,
        timeout_seconds: int = 60,
        stop: threading.Event | None = None,
    ) -> Iterator[DeploymentRevision]:
        """The Argo Rollouts of ``t.namespace`` changed after ``resource_version``: as
        :meth:`watch_deployments` (the ``watch`` verb on ``rollouts.argoproj.io``)."""
        api = k8s.CustomObjectsApi(self._client(t))
        lister = functools.partial(
            api.list_namespaced_custom_object, argo.GROUP, argo.VERSION, t.namespace, argo.PLURAL
        )
        return self._watch(
            t,
            "rollouts",
            lister,
            _rollout_event,
            self.rollout_revisions,
            resource_version,
            timeout_seconds,
            stop,
        )

    def _watch(
        self,
        t: KubeTarget,
        what: str,
        lister: Callable[..., Any],
        revision: Callable[[dict[str, Any], str], DeploymentRevision],
        relist: Callable[[KubeTarget], DeploymentListing],
        resource_version: str,
        timeout_seconds: int,
        stop: threading.Event | None,
    ) -> Iterator[DeploymentRevision]:
        watcher = watch.Watch()  # type: ignore[no-untyped-call]  # the SDK is unannotated
        events = watcher.stream(  # type: ignore[no-untyped-call]
            lister,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            # the server ends the watch at timeout_seconds; the socket waits a little longer
            _request_timeout=timeout_seconds + self._timeout,
        )
        try:
            for event in events:
                if event["type"] in ("ADDED", "MODIFIED"):
                    yield revision(event, resource_version)
                if stop is not None and stop.is_set():
                    return
        except ApiException as exc:
            if exc.status != GONE:
                raise error_from_api(exc) from None
            log.info("kubernetes watch %s %s: %s, listing again", what, t.namespace, exc.reason)
            yield from relist(t).deployments.values()
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(exc) from None
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]
