"""KubernetesClient: Deployments (history, undo, set image, scale, restart) and the rest."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from bot.adapters.kube.access import AccessReviews
from bot.adapters.kube.kubectl import (
    CHANGE_CAUSE,
    RESTARTED_AT,
    _plan,
    equal_ignore_hash,
    images_of,
    label_selector_string,
    meta,
    revision_of,
    rollout_status_of,
    select_revision,
    template_fingerprint,
    undo_patch,
)
from bot.adapters.kube.reads import ReadOnce
from bot.adapters.kube.resources import Resources
from bot.adapters.kube.rollouts import Rollouts
from bot.adapters.kube.session import (
    JSON_PATCH,
    MERGE_PATCH,
    _not_found,
)
from bot.adapters.kube.values import (
    PIN_CHANGED,
    DeploymentInfo,
    KubeError,
    KubeTarget,
    ReleasePods,
    ReleaseState,
    Revision,
    RolloutStatus,
    UndoPlan,
)
from bot.adapters.kube.watching import Watching


def _revisions(replicasets: list[k8s.V1ReplicaSet]) -> list[Revision]:
    revisions = [
        Revision(
            number=number,
            images=images_of(rs.spec.template),
            replicaset=meta(rs.metadata).name or "",
            created=meta(rs.metadata).creation_timestamp,
            change_cause=(meta(rs.metadata).annotations or {}).get(CHANGE_CAUSE),
            template=template_fingerprint(rs.spec.template),
        )
        for rs in replicasets
        if (number := revision_of(rs.metadata)) is not None
    ]
    return sorted(revisions, key=lambda r: (r.number, r.replicaset))


# ── the client ────────────────────────────────────────────────────────────────────────────────


def _rfc3339(at: datetime) -> str:
    """time.RFC3339 as kubectl writes it; a naive datetime is taken as UTC."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def _scale_replicas(scale: k8s.V1Scale) -> int:
    return (scale.spec.replicas or 0) if scale.spec else 0


def image_pin_changed(name: str, container: str, expect: str, now: str | None) -> KubeError:
    """A pinned image write the API server refused because the image (or the container) changed
    after the client read it."""
    if now is None:
        message = f"deployment {name} has no container {container} any more (it ran {expect})"
    else:
        message = f"the image of deployment {name} container {container} changed from {expect}"
        message += f" to {now}"
    return KubeError(422, PIN_CHANGED, message)


class KubernetesClient(Resources, Watching, AccessReviews, Rollouts):
    """Deployments, Argo Rollouts, Services, Jobs and snapshots across kube contexts, with
    bounded retries.

    409 Conflict on a read-modify-write re-reads and retries; 429/5xx and connection errors
    back off exponentially through the injected ``sleep``; any other 4xx fails at once.
    """

    def reading_once(self) -> KubernetesClient:
        """A view of this client (the same connections) that makes each read at most once:
        for the checks of one drill, which read one moment of the cluster together."""
        view = copy.copy(self)
        view._reads = ReadOnce()
        return view

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
        return _revisions(self._owned_replicasets(t, dep))

    def plan_undo(self, t: KubeTarget, name: str, to_revision: int | None) -> UndoPlan:
        """What ``kubectl rollout undo`` would do; changes nothing."""
        dep = self._read_deployment(t, name)
        return _plan(dep, select_revision(dep, self._owned_replicasets(t, dep), to_revision))

    def preview_undo(
        self, t: KubeTarget, name: str, pick: Callable[[list[Revision], int], int | None]
    ) -> tuple[UndoPlan, list[Revision], int]:
        """:meth:`plan_undo` for the revision ``pick(history, current revision)`` chooses, with
        that history and the current revision: one read of the Deployment and its ReplicaSets."""
        dep = self._read_deployment(t, name)
        replicasets = self._owned_replicasets(t, dep)
        revisions, current = _revisions(replicasets), revision_of(dep.metadata) or 0
        wanted = pick(revisions, current)
        return _plan(dep, select_revision(dep, replicasets, wanted)), revisions, current

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

    def release_state(self, t: KubeTarget, name: str) -> ReleaseState:
        """How many pods run which revision, from the owned ReplicaSets (kubectl get rs)."""
        dep = self._read_deployment(t, name)
        revision = revision_of(dep.metadata) or 0
        releases = []
        for rs in self._owned_replicasets(t, dep):
            status = rs.status
            number = revision_of(rs.metadata) or 0
            is_current = equal_ignore_hash(rs.spec.template, dep.spec.template)
            replicas = (status.replicas or 0) if status else 0
            if not is_current and replicas == 0:
                continue  # an old release with no pods left: history, not state
            available = (status.available_replicas or 0) if status else 0
            releases.append(
                ReleasePods(number, images_of(rs.spec.template), replicas, available, is_current)
            )
        releases.sort(key=lambda r: (not r.is_current, -r.revision))
        return ReleaseState(
            deployment=meta(dep.metadata).name or name,
            revision=revision,
            replicas=dep.spec.replicas if dep.spec.replicas is not None else 1,
            releases=releases,
            rollout=rollout_status_of(dep),
        )

    def set_image(
        self,
        t: KubeTarget,
        name: str,
        container: str,
        image: str,
        *,
        dry_run: bool = False,
        expect: str | None = None,
    ) -> tuple[str, str]:
        """kubectl set image for one container; (image before, image after). ``expect``: the
        image the caller pinned — written only over that one (a JSON Patch ``test``)."""

        def attempt() -> tuple[str, str]:
            dep = self._read_deployment(t, name)
            pod = dep.spec.template.spec
            containers = pod.containers if pod else []
            index = next((i for i, c in enumerate(containers) if c.name == container), None)
            if index is None:
                message = f'unable to find container named "{container}" in deployment "{name}"'
                raise KubeError(None, "ContainerNotFound", message)
            before = containers[index].image or ""
            what = f"the image of deployment {name} container {container}"
            if expect is not None and before != expect:  # re-checked after a 409 too
                raise KubeError(None, PIN_CHANGED, f"{what} is {before}, not {expect}")
            if before == image:
                return before, image  # nothing to change: no request, no new revision
            path = f"/spec/template/spec/containers/{index}"
            # the `test` pins the index to the name just read, should containers be reordered
            patch = [
                {"op": "test", "path": f"{path}/name", "value": container},
                *([{"op": "test", "path": f"{path}/image", "value": expect}] if expect else []),
                {"op": "replace", "path": f"{path}/image", "value": image},
            ]
            try:
                after = self._patch_deployment(t, name, patch, dry_run=dry_run)
            except KubeError as exc:
                if expect is None or exc.status != 422:
                    raise
                now = images_of(self._read_deployment(t, name).spec.template).get(container)
                if now == expect:  # the pin holds: the server refused the write itself
                    raise
                raise image_pin_changed(name, container, expect, now) from exc
            return before, images_of(after.spec.template).get(container, image)

        return self._with_conflict_retry(f"set image deployment {t.namespace}/{name}", attempt)

    def scale(
        self,
        t: KubeTarget,
        name: str,
        replicas: int,
        *,
        dry_run: bool = False,
        expect: int | None = None,
    ) -> tuple[int, int]:
        """kubectl scale through the scale subresource; (replicas before, replicas after).
        ``expect``: the count the caller pinned — written only over that one (the Scale's
        resourceVersion is sent: a change in between is a 409, and the retry checks again)."""
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
            body: dict[str, Any] = {"spec": {"replicas": replicas}}
            if expect is not None:
                if (now := _scale_replicas(current)) != expect:
                    message = f"the replica count of deployment {name} is {now}, not {expect}"
                    raise KubeError(None, PIN_CHANGED, message)
                version = current.metadata.resource_version if current.metadata else None
                if not version:  # null in a merge patch would make the write unconditional
                    message = (
                        f"{what}: the API server sent no resourceVersion, so the pinned"
                        " write cannot be made conditional; nothing was changed. Check what"
                        f" answers for the API server of {t.context or 'the current context'}"
                        " (a proxy that drops metadata?), then start again; or scale it by"
                        f" hand (`kubectl scale deployment/{name} -n {t.namespace}"
                        f" --replicas={replicas}`)"
                    )
                    raise KubeError(None, "Invalid", message)
                body["metadata"] = {"resourceVersion": version}
            after = self._patch(
                api.patch_namespaced_deployment_scale,
                t,
                "deployment",
                name,
                body,
                dry_run=dry_run,
                content_type=MERGE_PATCH,  # what kubectl scale sends
                subject=what,
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

    # ── internals ──

    def _read_deployment(self, t: KubeTarget, name: str) -> k8s.V1Deployment:
        if self._reads is not None:
            # a read-once view GETs the raw object once (what a snapshot keeps; the models
            # would drop fields newer than the SDK) and builds the typed model from it
            return self._read_once(
                ("deployment", t, name),
                lambda: self._model(t, self.read_object(t, "apps/v1", "Deployment", name)),
            )
        api = k8s.AppsV1Api(self._client(t))
        return self._read_once(
            ("deployment", t, name),
            lambda: self._call(
                f"GET deployment {t.namespace}/{name}",
                lambda: api.read_namespaced_deployment(
                    name, t.namespace, _request_timeout=self._timeout
                ),
                _not_found("deployment", name, t),
            ),
        )

    def _model(self, t: KubeTarget, raw: dict[str, Any]) -> k8s.V1Deployment:
        """The typed Deployment of a raw one, by the SDK's own deserializer (as a GET makes it)."""
        model: k8s.V1Deployment = self._client(t).deserialize(
            json.dumps(raw), "V1Deployment", "application/json"
        )
        return model

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
        return self._patch(
            api.patch_namespaced_deployment,
            t,
            "deployment",
            name,
            patch,
            dry_run=dry_run,
            content_type=content_type,
        )

    def _owned_replicasets(self, t: KubeTarget, dep: k8s.V1Deployment) -> list[k8s.V1ReplicaSet]:
        """deploymentutil listReplicaSets: by the Deployment's selector, then controller uid."""
        uid = meta(dep.metadata).uid
        selector = label_selector_string(dep.spec.selector)
        return self._read_once(
            ("replicasets", t, uid), lambda: self._controlled_replicasets(t, selector, uid)
        )
