"""Noticing new releases: each guarded service's Deployment revision, polled every round (a
bounded interval). A revision seen for the first time after another is a new release; the
running one when the guard first looks is not. A release produced by a rollback is never
guarded as new (no ping-pong): a rollback that is running holds the service, and the end of a
rollback records the revision it left as seen."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
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
    info = kube.deployment(KubeTarget(service.context, service.namespace), service.spec.deployment)
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


def detect(
    kube: KubernetesClient, repo: Repository, services: list[Service], now: datetime
) -> list[NewRelease]:
    """The guarded services whose Deployment moved to a revision not seen before."""
    found = []
    for service in services:
        try:
            revision, images = current_revision(kube, service)
        except KubeError as exc:
            log.warning("guard: cannot read %s's deployment: %s", service.name, exc)
            continue
        previous = repo.see_revision(service.name, revision, now)
        if previous is None or previous == revision:
            continue  # first look, or nothing new
        if _made_by_rollback(repo, service.name, images, now):
            log.info(
                "guard: %s revision %s comes from a rollback: not guarded", service.name, revision
            )
            continue
        found.append(NewRelease(service, revision, release_label(images)))
    return found


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
