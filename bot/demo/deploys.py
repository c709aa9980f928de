"""``deploy <service> bad|good`` in ``console --demo``: a new release rolled out in the simulated
cluster (a new image, so a new Deployment revision) whose simulated metrics are bad or healthy,
so a newcomer watches the automatic guard notice it, count the breach and roll it back.

In the demo world each image has its metrics (:class:`bot.demo.DemoWorld`): the new image gets
the bad or healthy values, and the release it replaces counts as healthy — that is the release
a rollback goes back to, so the rollback's verification passes once the metrics recover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.catalog.load import Catalog
from bot.demo import HEALTHY, DemoService, DemoWorld
from storage.guard_models import GuardStatus
from storage.repository import Repository

USAGE = "usage: deploy SERVICE bad|good (e.g. `deploy checkout bad`)"
# a release that answers, but fails requests and is slow: beyond the demo catalog's triggers
BAD_RELEASE = DemoService("bad release", "5xx and slow", 0.18, 2.9, 30.0, 1, 200)
CONTAINER = "app"  # the demo Deployments' one container (bot.demo.seed_cluster)


@dataclass(frozen=True)
class Deployed:
    service: str
    revision: str
    image: str
    is_bad: bool
    is_guarded: bool


def next_image(image: str, revision: int) -> str:
    """``…/checkout:v4`` after ``…/checkout:v3``; any other tag gets ``v<revision + 1>``."""
    if m := re.fullmatch(r"(.*:v)(\d+)", image):
        return f"{m.group(1)}{int(m.group(2)) + 1}"
    return f"{image.rsplit(':', 1)[0]}:v{revision + 1}"


class DemoDeploys:
    """The demo's release tool: rolls images out through the same Kubernetes client as the bot."""

    def __init__(self, catalog: Catalog, kube: KubernetesClient, world: DemoWorld) -> None:
        self.catalog, self.kube, self.world = catalog, kube, world

    def deploy(self, args: str) -> Deployed | str:
        """Roll the release out; what was deployed, or why not (a line for the console)."""
        words = args.split()
        if len(words) != 2 or words[1] not in ("bad", "good"):
            return USAGE
        name, quality = words
        service = self.catalog.get(name)
        if service is None:
            return f"unknown service {name!r}; services: {', '.join(self.catalog.names)}"
        target = KubeTarget(service.context, service.namespace)
        try:
            info = self.kube.deployment(target, service.spec.deployment)
            before = info.images.get(CONTAINER, "")
            image = next_image(before, info.revision)
            is_bad = quality == "bad"
            self.world.release(before, HEALTHY)  # what a rollback goes back to
            self.world.release(image, BAD_RELEASE if is_bad else HEALTHY)
            self.kube.set_image(target, service.spec.deployment, CONTAINER, image)
            revision = self.kube.deployment(target, service.spec.deployment).revision
        except KubeError as exc:
            return f"could not deploy {name}: {exc}"
        self.world.sync()  # the new release's metrics from now on, not half a second later
        is_guarded = service.guard.is_enabled
        return Deployed(name, str(revision), image, is_bad, is_guarded)

    @staticmethod
    def describe(d: Deployed) -> str:
        short = d.image.rsplit("/", 1)[-1]
        if d.is_bad:
            what = (
                f"a bad release: error rate {BAD_RELEASE.error_rate:g}, p95"
                f" {BAD_RELEASE.latency_p95_seconds:g} s"
            )
        else:
            what = "a healthy release"
        then = (
            "The guard notices it within seconds and watches it; a breach must hold"
            " for its duration before it rolls back."
            if d.is_guarded
            else f"The guard is off for {d.service} (auto_rollback.enabled is false)."
        )
        return f"🚀 Deployed {d.service} {short} (revision {d.revision}), {what}. {then}"

    @staticmethod
    def is_settled(repo: Repository, d: Deployed) -> bool:
        """A script goes on once the guard has announced the release, and for a bad one once it
        fired (the rollback it started is then waited for like any other)."""
        if not d.is_guarded:
            return True
        for release in repo.list_guarded(service=d.service, limit=20):
            if release.revision == d.revision:
                return not d.is_bad or release.status != GuardStatus.WATCHING
        return False
