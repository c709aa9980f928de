"""The release an assessment is about: read when it is made, compared when its button acts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.adapters.kube.workload import workload
from bot.catalog.load import Service
from bot.rollback.safety import release_label


def current_release(kube: KubernetesClient, service: Service) -> dict[str, Any]:
    """What runs now (deployment, revision, images), stored with an assessment: its buttons are
    about that release only (a multi-region service's: its first region's, the first wave's).
    Raises KubeError when the cluster cannot be read."""
    if service.regions and service.region is None:
        service = service.in_region(
            service.waves[0][0] if service.waves else service.regions[0].name
        )
    t = KubeTarget(service.context, service.namespace)
    info = workload(kube, service.workload_kind).info(t, service.spec.deployment)
    return {"deployment": info.name, "revision": info.revision, "images": dict(info.images)}


def release_text(release: Mapping[str, Any]) -> str:
    """``checkout-api at revision 3 (checkout:v3)``."""
    images = release_label(release.get("images") or {})
    return f"{release.get('deployment')} at revision {release.get('revision')} ({images})"


def stale_assessment(
    kube: KubernetesClient, service: Service, assessed: Mapping[str, Any] | None
) -> str | None:
    """Why an assessment's button must not act any more (the deployment moved on since, or
    the bot cannot tell), or None when it still describes what runs."""
    if not assessed:
        return None  # made without a readable cluster: the checks of the start still apply
    try:
        now = current_release(kube, service)
    except KubeError as exc:
        return (
            f"cannot tell whether {service.name} changed since this assessment ({exc});"
            " assess again"
        )
    if now["revision"] == assessed.get("revision"):
        return None
    return (
        f"this assessment is about revision {assessed.get('revision')}; {service.name} is now at"
        f" revision {now['revision']} — assess again"
    )
