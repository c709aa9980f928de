"""The Argo Rollouts controller's part, played by the test on a real API server (as the admin):
no controller image can run here, so the test makes the objects it would make.

What it writes follows the controller (rollout/replicaset.go, sync.go): a ReplicaSet per pod
template, ``<rollout>-<hash>``, controlled by the Rollout (ownerReference controller=true), with
``rollouts-pod-template-hash`` on its labels, selector and template, and
``rollout.argoproj.io/revision`` (max+1; a rollback reuses the old ReplicaSet under a new
number); the same revision annotation on the Rollout; the status by a merge patch of the status
subresource (``observedGeneration`` as a string, ``currentPodHash``, ``stableRS``, phase).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient

from tests.argo.reference import deep_value_derive, remove_hash

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
REVISION = "rollout.argoproj.io/revision"
HASH = "rollouts-pod-template-hash"
MERGE = "application/merge-patch+json"


def _revision(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))


class RolloutController:
    """One namespace's Rollouts, reconciled when the test says so."""

    def __init__(self, admin: ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = k8s.CustomObjectsApi(admin)
        self.apps = k8s.AppsV1Api(admin)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name
        )
        return found

    def replicasets(self, name: str) -> list[dict[str, Any]]:
        uid = self.get(name)["metadata"]["uid"]
        listed = self.apps.list_namespaced_replica_set(self.ns, _preload_content=False)
        return [
            rs
            for rs in json.loads(listed.data)["items"]
            if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
        ]

    def create(self, name: str, images: list[str]) -> None:
        """A Rollout released through ``images``, each one promoted."""
        labels = {"app": name}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Rollout",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": images[0]}]},
                },
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            },
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        self.reconcile(name, promote=True)
        for image in images[1:]:
            self.set_image(name, image)
            self.reconcile(name, promote=True)

    def set_image(self, name: str, image: str) -> None:
        """A release as a CD tool makes it: the Rollout's template changes."""
        path = "/spec/template/spec/containers/0/image"
        self.custom.patch_namespaced_custom_object(
            *(GROUP, VERSION, self.ns, PLURAL, name),
            [{"op": "replace", "path": path, "value": image}],
            _content_type="application/json-patch+json",
        )

    def reconcile(self, name: str, *, promote: bool) -> dict[str, Any]:
        """The ReplicaSet of the current template (made or reused), and the status: Healthy
        when ``promote``, else a canary paused at its ``pause: {}`` step (or Degraded once
        aborted)."""
        ro = self.get(name)
        owned = self.replicasets(name)
        template = remove_hash(ro["spec"]["template"])
        current = next(
            (
                rs
                for rs in owned
                if deep_value_derive(template, remove_hash(rs["spec"]["template"]))
            ),
            None,
        )
        newest = max((_revision(rs) for rs in owned), default=0)
        if current is None:
            current = self._create_replicaset(ro, template, newest + 1)
        elif _revision(current) < newest:
            current = self._annotate_rs(current, newest + 1)
        pod_hash = current["metadata"]["labels"][HASH]
        self.custom.patch_namespaced_custom_object(
            *(GROUP, VERSION, self.ns, PLURAL, name),
            {"metadata": {"annotations": {REVISION: str(_revision(current))}}},
            _content_type=MERGE,
        )
        status = ro.get("status") or {}
        stable = pod_hash if promote or not status.get("stableRS") else status["stableRS"]
        if status.get("currentPodHash") != pod_hash:
            status = {k: v for k, v in status.items() if k not in ("abort", "pauseConditions")}
        # the generation this pass saw: a spec change meanwhile stays unobserved, as with Argo
        observed = str(ro["metadata"]["generation"])
        return self._write_status(name, status, pod_hash, stable, _revision(current), observed)

    @contextlib.contextmanager
    def running(self, name: str) -> Iterator[None]:
        """Reconcile ``name`` in a thread whenever its spec or abort flag changes, as the
        controller's informer would: an update waits at its pause, a rollback to the stable
        ReplicaSet is promoted at once, an abort turns Degraded."""
        stop = threading.Event()
        errors: list[Exception] = []

        def loop() -> None:
            while not stop.wait(0.05):
                try:
                    status = self.get(name).get("status") or {}
                    generation = str(self.get(name)["metadata"]["generation"])
                    is_new_abort = status.get("abort") and status.get("phase") != "Degraded"
                    if status.get("observedGeneration") != generation or is_new_abort:
                        self.reconcile(name, promote=False)
                except Exception as exc:  # reported by the test, not lost in the thread
                    errors.append(exc)
                    return

        thread = threading.Thread(target=loop, name=f"argo-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
        assert not errors, f"the test's Argo controller failed: {errors[0]!r}"

    def _write_status(
        self,
        name: str,
        status: dict[str, Any],
        pod_hash: str,
        stable: str,
        revision: int,
        observed: str,
    ) -> dict[str, Any]:
        new: dict[str, Any] = {
            "observedGeneration": observed,
            "currentPodHash": pod_hash,
            "stableRS": stable,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "abort": status.get("abort"),
            "pauseConditions": None,
            "controllerPause": None,
            "message": None,
        }
        if stable == pod_hash:
            new["phase"] = "Healthy"
        elif status.get("abort"):
            message = f"RolloutAborted: Rollout aborted update to revision {revision}"
            new |= {"phase": "Degraded", "message": message}
        else:
            pause = {"reason": "CanaryPauseStep", "startTime": "2026-12-04T20:00:00Z"}
            new |= {"phase": "Paused", "message": "CanaryPauseStep", "controllerPause": True}
            new["pauseConditions"] = [pause]
        written: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
            *(GROUP, VERSION, self.ns, PLURAL, name), {"status": new}, _content_type=MERGE
        )
        return written

    def _create_replicaset(
        self, ro: dict[str, Any], template: dict[str, Any], revision: int
    ) -> dict[str, Any]:
        canonical = json.dumps(template, sort_keys=True).encode()
        pod_hash = hashlib.sha256(canonical).hexdigest()[:10]
        labels = {**(template.get("metadata", {}).get("labels") or {}), HASH: pod_hash}
        name = ro["metadata"]["name"]
        body = {
            "metadata": {
                "name": f"{name}-{pod_hash}",
                "labels": labels,
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Rollout",
                        "name": name,
                        "uid": ro["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,  # history only: the tests need no pods
                "selector": {
                    "matchLabels": {**ro["spec"]["selector"]["matchLabels"], HASH: pod_hash}
                },
                "template": {
                    **template,
                    "metadata": {**template.get("metadata", {}), "labels": labels},
                },
            },
        }
        created = self.apps.create_namespaced_replica_set(self.ns, body, _preload_content=False)
        found: dict[str, Any] = json.loads(created.data)
        return found

    def _annotate_rs(self, rs: dict[str, Any], revision: int) -> dict[str, Any]:
        patched = self.apps.patch_namespaced_replica_set(
            rs["metadata"]["name"],
            self.ns,
            {"metadata": {"annotations": {REVISION: str(revision)}}},
            _preload_content=False,
        )
        found: dict[str, Any] = json.loads(patched.data)
        return found
