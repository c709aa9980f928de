"""The state a rollback leaves a service in, in words: which pods run which release.

A Deployment's ``availableReplicas`` counts the pods of every ReplicaSet, so "revision 4, 3/3
available" may well be three pods of the old release. The abort summary and the failure notice
say instead how many pods of each revision are available, from the owned ReplicaSets.
"""

from __future__ import annotations

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, ReleaseState
from bot.adapters.kube.workload import workload
from bot.catalog.load import Service


def state_text(state: ReleaseState) -> str:
    """E.g. ``slow: revision 4 (app=slow:v2) 0/3 available · revision 3 (app=slow:v3) 3/3
    available — the rollout has not finished``."""
    parts = []
    for r in state.releases:
        images = ", ".join(f"{c}={i}" for c, i in r.images.items())
        wanted = state.replicas if r.is_current else r.replicas
        parts.append(f"revision {r.revision} ({images}) {r.available}/{wanted} available")
    if not any(r.is_current for r in state.releases):
        parts.insert(0, f"revision {state.revision}: no pods yet")
    if state.rollout.is_failed:
        end = f"the rollout failed: {state.rollout.message}"
    elif state.rollout.is_complete:
        end = "rolled out" if state.replicas else "scaled to 0"
    else:
        end = "the rollout has not finished"
    return f"{state.deployment}: {' · '.join(parts)} — {end}"


def describe_service_state(kube: KubernetesClient, service: Service) -> str:
    """The state of the service's Deployment (or Rollout) now, or why it could not be read."""
    try:
        state = workload(kube, service.workload_kind).release_state(
            KubeTarget(service.context, service.namespace), service.spec.deployment
        )
    except KubeError as exc:
        return f"could not read the state of {service.spec.deployment}: {exc}"
    return state_text(state)
