"""Argo Rollouts (argoproj.io/v1alpha1 ``Rollout``): what ``kubectl argo rollouts`` undo, abort
and status do, as methods of KubernetesClient. The rules themselves are in ``argo``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client as k8s

from bot.adapters.kube import argo
from bot.adapters.kube.kubectl import is_controlled_by, label_selector_string, meta
from bot.adapters.kube.session import FIELD_MANAGER, JSON_PATCH, MERGE_PATCH, ApiSession, _dry_run
from bot.adapters.kube.values import (
    DeploymentInfo,
    DeploymentListing,
    DeploymentRevision,
    KubeError,
    KubeTarget,
    ReleasePods,
    ReleaseState,
    Revision,
    RolloutStatus,
    UndoPlan,
)


def _revisions(replicasets: list[k8s.V1ReplicaSet]) -> list[Revision]:
    revisions = [
        Revision(
            number=number,
            images=argo.rs_images(rs),
            replicaset=meta(rs.metadata).name or "",
            created=meta(rs.metadata).creation_timestamp,
            change_cause=None,
            template=argo.rs_fingerprint(rs),
        )
        for rs in replicasets
        if (number := argo.rs_revision(rs)) is not None
    ]
    return sorted(revisions, key=lambda r: (r.number, r.replicaset))


def _plan(
    rollout: Mapping[str, Any], replicasets: list[k8s.V1ReplicaSet], rs: k8s.V1ReplicaSet
) -> UndoPlan:
    return UndoPlan(
        deployment=argo.name_of(rollout),
        from_revision=_revision(rollout),
        to_revision=argo.rs_revision(rs) or 0,
        images_before=argo.rollout_images(rollout),
        images_after=argo.rs_images(rs),
        is_noop=argo.equal_ignore_hash(rollout, rs),
        from_template=argo.release_fingerprint(rollout, replicasets),
        to_template=argo.rs_fingerprint(rs),
        is_observed=argo.is_spec_observed(rollout, replicasets),
    )


def _refuse_workload_ref(rollout: Mapping[str, Any]) -> None:
    """A Rollout whose pods come from another object's template (spec.workloadRef) has no
    template of its own: ``undo``'s patch would give it one, which Argo Rollouts refuses as an
    invalid spec (the Rollout stops progressing). Its release lives in the referenced object."""
    ref = argo.spec_of(rollout).get("workloadRef")
    if not isinstance(ref, dict):
        return
    kind, target = ref.get("kind") or "Deployment", ref.get("name") or "?"
    name = argo.name_of(rollout)
    raise KubeError(
        None,
        "Invalid",
        f'rollout "{name}" takes its pod template from {kind} "{target}" (spec.workloadRef);'
        f" rolling it back means restoring the previous template in {kind} {target}, which"
        " rollback-bot does not do: restore it there (Argo Rollouts then rolls it out), or give"
        " the Rollout its own spec.template",
    )


def _revision(rollout: Mapping[str, Any]) -> int:
    return argo.revision_of((rollout.get("metadata") or {}).get("annotations")) or 0


def rollout_revision(rollout: Mapping[str, Any], resource_version: str) -> DeploymentRevision:
    """A Rollout's revision annotation and images, as a list or a watch event saw it."""
    return DeploymentRevision(
        argo.name_of(rollout), _revision(rollout), argo.rollout_images(rollout), resource_version
    )


def _count(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    return value if isinstance(value, int) else 0


class Rollouts(ApiSession):
    """The Rollout methods of KubernetesClient (names start with ``rollout``)."""

    def read_rollout(self, t: KubeTarget, name: str) -> dict[str, Any]:
        """The Rollout as the API serves it (read once on a reading_once() view)."""
        return self._read_once(("rollout", t, name), lambda: self._get_rollout(t, name))

    def _get_rollout(self, t: KubeTarget, name: str) -> dict[str, Any]:
        api = k8s.CustomObjectsApi(self._client(t))
        found = self._call(
            f"GET rollout {t.namespace}/{name}",
            lambda: api.get_namespaced_custom_object(
                *(argo.GROUP, argo.VERSION, t.namespace, argo.PLURAL, name),
                _request_timeout=self._timeout,
            ),
            f'rollout "{name}" not found in namespace "{t.namespace}"',
        )
        if not isinstance(found, dict):
            raise KubeError(None, "ClientError", f"GET rollout {name}: not an object")
        return found

    def rollout_info(self, t: KubeTarget, name: str) -> DeploymentInfo:
        ro = self.read_rollout(t, name)
        spec, status = argo.spec_of(ro), argo.status_of(ro)
        observed = str(status.get("observedGeneration") or "")
        return DeploymentInfo(
            name=argo.name_of(ro) or name,
            revision=_revision(ro),
            images=argo.rollout_images(ro),
            replicas=spec["replicas"] if isinstance(spec.get("replicas"), int) else 1,
            updated_replicas=_count(status, "updatedReplicas"),
            ready_replicas=_count(status, "readyReplicas"),
            available_replicas=_count(status, "availableReplicas"),
            is_paused=bool(spec.get("paused")),
            generation=int((ro.get("metadata") or {}).get("generation") or 0),
            observed_generation=int(observed) if observed.isdigit() else 0,
            selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        )

    def rollout_history(self, t: KubeTarget, name: str) -> list[Revision]:
        """One entry per ReplicaSet the Rollout controls, ascending by revision."""
        ro = self.read_rollout(t, name)
        return _revisions(self._rollout_replicasets(t, ro))

    def rollout_preview_undo(
        self, t: KubeTarget, name: str, pick: Callable[[list[Revision], int], int | None]
    ) -> tuple[UndoPlan, list[Revision], int]:
        """What ``kubectl argo rollouts undo`` would do for the revision ``pick`` chooses."""
        ro, replicasets = self._undoable(t, name)
        revisions, current = _revisions(replicasets), _revision(ro)
        chosen = argo.select_revision(ro, replicasets, pick(revisions, current) or 0)
        return _plan(ro, replicasets, chosen), revisions, current

    def rollout_undo(
        self,
        t: KubeTarget,
        name: str,
        to_revision: int | None,
        *,
        dry_run: bool = False,
        before_patch: Callable[[UndoPlan], None] | None = None,
    ) -> UndoPlan:
        """``kubectl argo rollouts undo [--to-revision N]`` (RunUndoRollout)."""
        wanted = to_revision or 0
        api = k8s.CustomObjectsApi(self._client(t))

        def attempt() -> UndoPlan:
            ro, replicasets = self._undoable(t, name)
            rs = argo.select_revision(ro, replicasets, wanted)
            plan = _plan(ro, replicasets, rs)
            if before_patch is not None:
                before_patch(plan)
            if plan.is_noop:  # "skipped rollback (current template already matches …)"
                return plan
            try:
                self._call(
                    f"PATCH rollout {t.namespace}/{name}",
                    lambda: api.patch_namespaced_custom_object(
                        *(argo.GROUP, argo.VERSION, t.namespace, argo.PLURAL, name),
                        argo.undo_patch(rs),
                        dry_run=_dry_run(dry_run),
                        field_manager=FIELD_MANAGER,
                        _content_type=JSON_PATCH,  # CustomObjectsApi would send a merge patch
                        _request_timeout=self._timeout,
                    ),
                    f'rollout "{name}" not found in namespace "{t.namespace}"',
                )
            except KubeError as exc:
                # the plugin's words (with the revision asked for, 0 for "the previous one");
                # status and reason stay, so a 409 is still retried
                message = f"failed restoring revision {wanted}: {exc}"
                raise KubeError(exc.status, exc.reason, message) from None
            return plan

        return self._with_conflict_retry(f"rollouts undo {t.namespace}/{name}", attempt)

    def abort_rollout(self, t: KubeTarget, name: str, *, dry_run: bool = False) -> None:
        """``kubectl argo rollouts abort`` (AbortRollout): ``{"status":{"abort":true}}`` as a
        merge patch on the status subresource, on the Rollout itself when the CRD has none."""
        api = k8s.CustomObjectsApi(self._client(t))
        what = f"rollout {t.namespace}/{name}"
        options: dict[str, Any] = {
            "dry_run": _dry_run(dry_run),
            "field_manager": FIELD_MANAGER,
            "_content_type": MERGE_PATCH,
            "_request_timeout": self._timeout,
        }
        args = (argo.GROUP, argo.VERSION, t.namespace, argo.PLURAL, name, argo.ABORT_PATCH)
        try:
            self._call(
                f"PATCH {what}/status",
                lambda: api.patch_namespaced_custom_object_status(*args, **options),
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
            self._call(
                f"PATCH {what}",
                lambda: api.patch_namespaced_custom_object(*args, **options),
                f'rollout "{name}" not found in namespace "{t.namespace}"',
            )

    def rollout_phase(self, t: KubeTarget, name: str) -> RolloutStatus:
        """status.phase and message as ``kubectl argo rollouts status`` reads them."""
        return argo.rollout_status_of(self.read_rollout(t, name))

    def rollout_release_state(self, t: KubeTarget, name: str) -> ReleaseState:
        """How many pods run which revision, from the ReplicaSets the Rollout controls."""
        ro = self.read_rollout(t, name)
        replicasets = self._rollout_replicasets(t, ro)
        current = argo.current_replicaset(ro, replicasets)
        releases = []
        for rs in replicasets:
            is_current = current is not None and meta(rs.metadata).uid == meta(current.metadata).uid
            replicas = (rs.status.replicas or 0) if rs.status else 0
            if not is_current and replicas == 0:
                continue
            available = (rs.status.available_replicas or 0) if rs.status else 0
            number, images = argo.rs_revision(rs) or 0, argo.rs_images(rs)
            releases.append(ReleasePods(number, images, replicas, available, is_current))
        releases.sort(key=lambda r: (not r.is_current, -r.revision))
        wanted = argo.spec_of(ro).get("replicas")
        return ReleaseState(
            deployment=argo.name_of(ro) or name,
            revision=_revision(ro),
            replicas=wanted if isinstance(wanted, int) else 1,
            releases=releases,
            rollout=argo.rollout_status_of(ro),
        )

    def rollout_revisions(self, t: KubeTarget) -> DeploymentListing:
        """Every Rollout of ``t.namespace`` (all pages): name → revision and images."""
        api = k8s.CustomObjectsApi(self._client(t))
        found: dict[str, DeploymentRevision] = {}
        token: str | None = None
        while True:
            request = functools.partial(
                api.list_namespaced_custom_object,
                *(argo.GROUP, argo.VERSION, t.namespace, argo.PLURAL),
                _continue=token,
                _request_timeout=self._timeout,
            )
            page = self._call(f"LIST rollouts {t.namespace}", request)
            listed = page if isinstance(page, dict) else {}
            metadata = listed.get("metadata") or {}
            version = str(metadata.get("resourceVersion") or "")
            for ro in listed.get("items") or []:
                found[argo.name_of(ro)] = rollout_revision(ro, version)
            token = metadata.get("continue") or None
            if not token:
                return DeploymentListing(found, version)

    # ── internals ──

    def _undoable(self, t: KubeTarget, name: str) -> tuple[dict[str, Any], list[k8s.V1ReplicaSet]]:
        """The Rollout and its ReplicaSets, for an undo (or its preview); refused first when the
        Rollout has no template of its own."""
        ro = self.read_rollout(t, name)
        _refuse_workload_ref(ro)
        return ro, self._rollout_replicasets(t, ro)

    def _rollout_replicasets(
        self, t: KubeTarget, rollout: Mapping[str, Any]
    ) -> list[k8s.V1ReplicaSet]:
        """undo.go listReplicaSets: by the Rollout's selector, then its controller uid."""
        raw = argo.spec_of(rollout).get("selector") or {}
        try:
            selector = k8s.V1LabelSelector.model_validate(raw)
        except ValueError:
            message = f'rollout "{argo.name_of(rollout)}" has an invalid spec.selector'
            raise KubeError(None, "Invalid", message) from None
        uid = (rollout.get("metadata") or {}).get("uid")
        selected = label_selector_string(selector)
        return self._read_once(
            ("replicasets", t, uid), lambda: self._controlled_replicasets(t, selected, uid)
        )

    def _controlled_replicasets(
        self, t: KubeTarget, selector: str, owner_uid: str | None
    ) -> list[k8s.V1ReplicaSet]:
        """ReplicaSets matching ``selector`` (all pages) whose controller has ``owner_uid``."""
        api = k8s.AppsV1Api(self._client(t))
        items: list[k8s.V1ReplicaSet] = []
        token: str | None = None
        while True:
            request = functools.partial(
                api.list_namespaced_replica_set,
                t.namespace,
                label_selector=selector or None,
                _continue=token,
                _request_timeout=self._timeout,
            )
            page = self._call(f"LIST replicasets {t.namespace}", request)
            items.extend(page.items)
            # the continue token is `var_continue` on the model, `_continue` as a parameter
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                return [rs for rs in items if is_controlled_by(rs, owner_uid)]
