"""The one stand-in of the real-cluster tests: a kubelet (and scheduler) for one fake Node.

It binds every pending pod to its Node and reports it Running with ready containers, so the real
controllers see Ready and Available pods. A pod stays Running but never Ready when it carries the
label ``kubelet.test/never-ready`` or runs an image in :attr:`FakeKubelet.never_ready_images` (a
release that never converges). A Job's pod ends Succeeded or Failed when its template says so
(label ``kubelet.test/job-outcome: succeed|fail``) or when a test calls :meth:`finish_job`;
otherwise it keeps running. Pods being deleted are removed at once (no containers to stop).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

NODE = "fake-node"
NEVER_READY_LABEL = "kubelet.test/never-ready"
JOB_OUTCOME_LABEL = "kubelet.test/job-outcome"
MERGE_PATCH = "application/merge-patch+json"
HEARTBEAT_SECONDS = 5.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(ready: bool) -> list[dict[str, Any]]:
    now = _now()
    flag = "True" if ready else "False"
    return [
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ]


def _container_statuses(pod: dict[str, Any], state: str) -> list[dict[str, Any]]:
    now = _now()
    statuses = []
    for c in pod["spec"]["containers"]:
        if state in ("succeeded", "failed"):
            code = 0 if state == "succeeded" else 1
            reason = "Completed" if code == 0 else "Error"
            current: dict[str, Any] = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
        else:
            current = {"running": {"startedAt": now}}
        statuses.append(
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": f"fake://{c['image']}",
                "containerID": f"fake://{pod['metadata']['uid']}/{c['name']}",
                "ready": state == "ready",
                "restartCount": 0,
                "started": state in ("ready", "never-ready"),
                "state": current,
            }
        )
    return statuses


class FakeKubelet:
    """Runs in a thread of the test process, with the official client, as an admin."""

    def __init__(self, api_client: ApiClient, interval: float = 0.1) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.interval = interval
        self.never_ready_images: set[str] = set()
        self.errors: list[str] = []
        self._outcomes: dict[tuple[str, str], str] = {}  # (namespace, job) -> succeeded|failed
        self._done: dict[str, str] = {}  # pod uid -> the state last reported
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)
        self._last_heartbeat = 0.0

    # ── for tests ──

    def finish_job(self, namespace: str, job: str, *, succeed: bool = True) -> None:
        """Make the pods of ``job`` exit 0 (or 1)."""
        with self._lock:
            self._outcomes[(namespace, job)] = "succeeded" if succeed else "failed"

    # ── lifecycle ──

    def start(self) -> FakeKubelet:
        self._register_node()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._heartbeat()

    def _heartbeat(self) -> None:
        now = _now()
        status = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }
        self.core.patch_node_status(NODE, {"status": status}, _content_type=MERGE_PATCH)

    # ── the loop ──

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_heartbeat > HEARTBEAT_SECONDS:
                    self._heartbeat()
                    self._last_heartbeat = time.monotonic()
                self._sync()
            except ApiException as exc:  # keep going; the fixture reports what went wrong
                self._error(f"HTTP {exc.status} {exc.reason}: {str(exc.body)[:300]}")
            except Exception as exc:
                self._error(f"{type(exc).__name__}: {exc}"[:300])
            self._stop.wait(self.interval)

    def _error(self, text: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(text)

    def _sync(self) -> None:
        raw = self.core.list_pod_for_all_namespaces(_preload_content=False)
        pods = json.loads(raw.data)["items"]
        alive = set()
        for pod in pods:
            alive.add(pod["metadata"]["uid"])
            try:
                self._sync_pod(pod)
            except ApiException as exc:
                # gone, changed since the list, or in a namespace being deleted
                if exc.status in (404, 409, 422) or "being terminated" in str(exc.body):
                    continue
                raise
        for uid in list(self._done):
            if uid not in alive:
                del self._done[uid]

    def _wanted(self, pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        owners = meta.get("ownerReferences") or []
        job = next((o["name"] for o in owners if o.get("kind") == "Job"), None)
        if job is not None:
            with self._lock:
                requested = self._outcomes.get((meta["namespace"], job))
            outcome = requested or {"succeed": "succeeded", "fail": "failed"}.get(
                labels.get(JOB_OUTCOME_LABEL, "")
            )
            return outcome or "ready"
        images = {c["image"] for c in pod["spec"]["containers"]}
        if NEVER_READY_LABEL in labels or images & self.never_ready_images:
            return "never-ready"
        return "ready"

    def _sync_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        if meta.get("deletionTimestamp"):
            self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=0, _preload_content=False
            )
            return
        if not pod["spec"].get("nodeName"):
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
            }
            # the raw answer: the SDK's model of Binding refuses what the server sends back
            self.core.create_namespaced_pod_binding(
                name, namespace, binding, _preload_content=False
            )
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        wanted = self._wanted(pod)
        if self._done.get(uid) == wanted:
            return
        phase = {"succeeded": "Succeeded", "failed": "Failed"}.get(wanted, "Running")
        status = {
            "phase": phase,
            "conditions": _conditions(wanted == "ready"),
            "containerStatuses": _container_statuses(pod, wanted),
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.get("status", {}).get("startTime") or _now(),
        }
        self.core.patch_namespaced_pod_status(
            name, namespace, {"status": status}, _content_type=MERGE_PATCH, _preload_content=False
        )
        self._done[uid] = wanted
