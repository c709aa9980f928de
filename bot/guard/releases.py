"""Noticing new releases: each guarded service's Deployment revision (the revision annotation),
read with one LIST of Deployments per (context, namespace) every round — a bounded interval,
however many services share a namespace. A revision seen for the first time after another is a
new release; the running one when the guard first looks is not. A release produced by a rollback
is never guarded as new (no ping-pong): a rollback that is running holds the service, and the end
of a rollback records the revision it left as seen.

A restart resumes by itself: the last revision seen of each service is in the database
(``see_revision``), so a release made while the bot was down is new at the first list after the
start. :class:`ReleaseWatcher` only makes noticing quicker: it watches each namespace from the
resourceVersion of its last list or event and wakes a round early when a Deployment or an Argo
Rollout changes revision; the round's list stays the truth (a watch that fails or is
unavailable costs speed, never a release)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import DeploymentListing, KubeError, KubeTarget
from bot.adapters.kube.workload import Workload, workload
from bot.catalog.load import Service
from bot.rollback.lifecycle import IN_ENGINE, TERMINAL
from bot.rollback.safety import release_label
from storage.repository import Repository

log = logging.getLogger(__name__)

RECENT_ROLLBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class NewRelease:
    service: Service
    revision: str
    release: str  # its images, e.g. ``checkout:v1.2``


def current_revision(kube: KubernetesClient, service: Service) -> tuple[str, dict[str, str]]:
    """The revision the service's Deployment runs now, and its images. Raises KubeError."""
    t = KubeTarget(service.context, service.namespace)
    info = workload(kube, service.workload_kind).info(t, service.spec.deployment)
    return str(info.revision), dict(info.images)


def _made_by_rollback(
    repo: Repository, service: str, images: dict[str, str], now: datetime
) -> bool:
    """A rollback of the service runs, or one that ended lately left exactly these images (the
    revision an undo creates; its end records it as seen, but a round may come in between)."""
    if repo.list_rollbacks(service=service, statuses=IN_ENGINE, limit=1):
        return True
    for rollback in repo.list_rollbacks(service=service, statuses=TERMINAL, limit=3):
        if rollback.id is None or rollback.finished_at is None:
            continue
        if now - rollback.finished_at > RECENT_ROLLBACK:
            continue
        for step in repo.list_steps(rollback.id):
            if (step.detail.get("undo") or {}).get("images_after") == images:
                return True
    return False


Group = tuple[str | None, str]  # (kube context, namespace)


def by_namespace(services: list[Service]) -> dict[Group, list[Service]]:
    groups: dict[Group, list[Service]] = {}
    for service in services:
        groups.setdefault((service.context, service.namespace), []).append(service)
    return groups


def detect(
    kube: KubernetesClient,
    repo: Repository,
    services: list[Service],
    now: datetime,
    *,
    seen: Mapping[str, str | None] | None = None,
) -> list[NewRelease]:
    """The guarded services whose Deployment moved to a revision not seen before: one LIST per
    (context, namespace), not one GET per service. ``seen`` (the stored last revisions, read
    once a round) spares the database write for every service whose revision did not move."""
    found = []
    for (context, namespace), members in by_namespace(services).items():
        try:
            listings = _listings(kube, KubeTarget(context, namespace), members)
        except KubeError as exc:
            names = ", ".join(s.name for s in members)
            log.warning("guard: cannot list deployments in %s (%s): %s", namespace, names, exc)
            continue
        for service in members:
            listed = listings[service.workload_kind].deployments.get(service.spec.deployment)
            if listed is None:
                log.warning(
                    'guard: %s\'s deployment "%s" not found in namespace "%s"',
                    *(service.name, service.spec.deployment, namespace),
                )
                continue
            revision = str(listed.revision)
            if seen is not None and seen.get(service.name) == revision:
                continue  # nothing new: no write
            new = _new_release(repo, service, revision, dict(listed.images), now)
            if new is not None:
                found.append(new)
    return found


def _listings(
    kube: KubernetesClient, t: KubeTarget, members: list[Service]
) -> dict[str, DeploymentListing]:
    """One LIST per workload kind the services of a namespace run as (Deployments, Argo
    Rollouts): kind → name → revision. Raises KubeError."""
    kinds = dict.fromkeys(s.workload_kind for s in members)
    return {kind: workload(kube, kind).revisions(t) for kind in kinds}


def _new_release(
    repo: Repository, service: Service, revision: str, images: dict[str, str], now: datetime
) -> NewRelease | None:
    previous = repo.see_revision(service.name, revision, now)
    if previous is None or previous == revision:
        return None  # first look, or nothing new
    if _made_by_rollback(repo, service.name, images, now):
        log.info("guard: %s revision %s comes from a rollback: not guarded", service.name, revision)
        return None
    return NewRelease(service, revision, release_label(images))


def record_rollback_result(
    kube: KubernetesClient, repo: Repository, service: Service, rollback_id: int, now: datetime
) -> None:
    """After a rollback of ``service`` ends, the revision it left is seen: not a new release.
    Only that one: a release made in the moment between the end and this call stays new."""
    try:
        revision, images = current_revision(kube, service)
    except KubeError as exc:
        log.warning("guard: cannot read %s's deployment after its rollback: %s", service.name, exc)
        return
    undos = [s.detail["undo"] for s in repo.list_steps(rollback_id) if s.detail.get("undo")]
    if undos and all(undo.get("images_after") != images for undo in undos):
        log.info(
            "guard: %s moved on since its rollback: revision %s stays new", service.name, revision
        )
        return
    repo.see_revision(service.name, revision, now)


class ReleaseWatcher:
    """A watch on the workloads (Deployments, Argo Rollouts) of each guarded (context,
    namespace), a thread per kind, that calls ``wake`` when one changes revision: the next
    round then comes at once instead of at its tick. Each watch resumes from the last
    resourceVersion it saw; when the API server refuses or the connection fails it waits
    ``retry_seconds`` and lists again."""

    def __init__(
        self,
        kube: KubernetesClient,
        wake: Callable[[], object],
        *,
        timeout_seconds: int = 60,
        retry_seconds: float = 5.0,
    ) -> None:
        self.kube, self.wake = kube, wake
        self.timeout_seconds, self.retry_seconds = timeout_seconds, retry_seconds
        self.stopping = threading.Event()
        self.listening = threading.Event()  # every watch has listed once: watches are on
        self._threads: list[threading.Thread] = []
        self._listed = 0
        self._lock = threading.Lock()

    def start(self, services: list[Service]) -> None:
        watches: dict[tuple[Group, str], set[str]] = {}  # (context, namespace), kind → names
        for group, members in by_namespace(services).items():
            for s in members:
                watches.setdefault((group, s.workload_kind), set()).add(s.spec.deployment)
        for ((context, namespace), kind), guarded in watches.items():
            thread = threading.Thread(
                target=self._run,
                args=(workload(self.kube, kind), KubeTarget(context, namespace), guarded),
                kwargs={"watches": len(watches)},
                name=f"guard-watch-{namespace}-{kind.lower()}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        if not watches:
            self.listening.set()

    def stop(self, wait_seconds: float = 0.0) -> None:
        """The watches end when their request does (``timeout_seconds`` at most: an API server
        sends nothing while nothing changes); wait up to ``wait_seconds`` for them."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(wait_seconds)
        self._threads = []

    def _run(self, kind: Workload, target: KubeTarget, guarded: set[str], *, watches: int) -> None:
        revisions: dict[str, int] = {}
        version: str | None = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    version = self._list(kind, target, revisions, watches)
                version = self._watch(kind, target, guarded, revisions, version)
            except KubeError as exc:
                if self.stopping.is_set():
                    return  # the client closed under a watch at shutdown
                log.warning("guard: watching %ss in %s: %s", kind.noun, target.namespace, exc)
                version = None  # list again after the pause: nothing missed in between
                self.stopping.wait(self.retry_seconds)

    def _list(
        self, kind: Workload, target: KubeTarget, revisions: dict[str, int], watches: int
    ) -> str:
        listing = kind.revisions(target)
        revisions.update({name: d.revision for name, d in listing.deployments.items()})
        with self._lock:
            self._listed += 1
            if self._listed >= watches:
                self.listening.set()
        return listing.resource_version

    def _watch(
        self,
        kind: Workload,
        target: KubeTarget,
        guarded: set[str],
        revisions: dict[str, int],
        version: str,
    ) -> str:
        """One watch request; the resourceVersion to resume from."""
        events = kind.watch(
            target, version, timeout_seconds=self.timeout_seconds, stop=self.stopping
        )
        for event in events:
            version = event.resource_version or version
            before = revisions.get(event.name)
            revisions[event.name] = event.revision
            is_new = before is not None and before != event.revision
            if event.name in guarded and is_new and not self.stopping.is_set():
                log.info(
                    "guard: %s %s/%s moved to revision %d",
                    *(kind.noun, target.namespace, event.name, event.revision),
                )
                self.wake()
        return version
