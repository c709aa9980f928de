"""Noticing new releases: each guarded service's Deployment revision, polled every round (a
bounded interval). A revision seen for the first time after another is a new release; the
running one when the guard first looks is not. A release produced by a rollback is never
guarded as new (no ping-pong): a rollback that is running holds the service, and the end of a
rollback records the revision it left as seen."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.catalog.load import Service
from bot.rollback.lifecycle import IN_ENGINE
from bot.rollback.safety import release_label
from storage.repository import Repository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRelease:
    service: Service
    revision: str
    release: str  # its images, e.g. ``checkout:v1.2``


def current_revision(kube: KubernetesClient, service: Service) -> tuple[str, str]:
    """The revision the service's Deployment runs now, and its images. Raises KubeError."""
    info = kube.deployment(KubeTarget(service.context, service.namespace), service.spec.deployment)
    return str(info.revision), release_label(info.images)


def detect(
    kube: KubernetesClient, repo: Repository, services: list[Service], now: datetime
) -> list[NewRelease]:
    """The guarded services whose Deployment moved to a revision not seen before."""
    found = []
    for service in services:
        try:
            revision, release = current_revision(kube, service)
        except KubeError as exc:
            log.warning("guard: cannot read %s's deployment: %s", service.name, exc)
            continue
        previous = repo.see_revision(service.name, revision, now)
        if previous is None or previous == revision:
            continue  # first look, or nothing new
        if repo.list_rollbacks(service=service.name, statuses=IN_ENGINE, limit=1):
            log.info(
                "guard: %s revision %s comes from a rollback: not guarded", service.name, revision
            )
            continue
        found.append(NewRelease(service, revision, release))
    return found


def record_rollback_result(
    kube: KubernetesClient, repo: Repository, service: Service, now: datetime
) -> None:
    """After a rollback of ``service`` ends, the revision it left is seen: not a new release."""
    try:
        revision, _ = current_revision(kube, service)
    except KubeError as exc:
        log.warning("guard: cannot read %s's deployment after its rollback: %s", service.name, exc)
        return
    repo.see_revision(service.name, revision, now)
