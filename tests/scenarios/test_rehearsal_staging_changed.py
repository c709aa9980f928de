"""A rehearsal over signed HTTP whose staging changes between the plan and the run: someone
switches the staging Service while the rehearsal waits at its manual gate. The pinned switch
refuses, nothing is written after that person's change, and production receives no request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml
from tests.scenarios.test_manual_gate_continue import gate_button, until
from tests.scenarios.test_rehearsal_strategies import STAGING, seed, untouched

CATALOG = catalog_yaml(
    "  web:\n    context: prod\n    namespace: shop\n    deployment: web-blue\n"
    "    responders: [U0ONCALL1]\n    approvers: [U0ONCALL1]\n"
    "    staging: {context: staging, namespace: shop-staging}\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: manual_gate, prompt: 'Blue warmed up?'}\n"
    "        - {kind: wait_rollout, deployment: web-blue, min_available: 1}\n"
    "      stop_traffic:\n"
    "        - {kind: switch_selector, service: web, selector: {version: blue}}\n"
    "      cleanup:\n"
    "        - {kind: scale, deployment: web-green, replicas: 0}\n"
)


@pytest.fixture
def prod_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        seed(sim, "shop")
        yield sim


@pytest.fixture
def staging_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        seed(sim, "shop-staging")
        yield sim


@pytest.fixture
def kube(prod_sim: KubeSimulator, staging_sim: KubeSimulator) -> KubernetesClient:
    clusters = {"prod": prod_sim, "staging": staging_sim}
    return KubernetesClient(
        api_client_for=lambda context: clusters[str(context)].api_client(), sleep=lambda s: None
    )


def test_a_service_switched_between_plan_and_run_stops_the_rehearsal_untouched(
    make_harness: Any,
    slack: SlackSimulator,
    kube: KubernetesClient,
    prod_sim: KubeSimulator,
    staging_sim: KubeSimulator,
) -> None:
    slack.add_user("U0ONCALL1", "oncall")
    is_untouched = untouched(prod_sim)
    h: Harness = make_harness(CATALOG, prometheus_url=None, kube=kube)
    answer = h.slash("drill web --rehearse").json()["text"]
    assert "Rehearsal #1 of *web* started in staging" in answer
    message, button = until(lambda: gate_button(slack), "the gate's Continue button")

    # someone switches staging's Service to blue by hand while the rehearsal waits
    kube.switch_selector(STAGING, "web", {"app": "web", "version": "blue"})
    changed = len(staging_sim.writes)

    h.requester.click(message, button, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    h.wait_rollbacks()
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "failed", rehearsal
    switch = next(s for s in h.bot.deps.repo.list_steps(1) if s.kind == "switch_selector")
    assert switch.status == "failed"
    assert switch.error is not None and switch.error.startswith(
        "Service web's selector is version=blue in staging, not version=green as it was when the"
        " rehearsal was planned (someone changed staging meanwhile); nothing was changed."
    )
    # after that person's change the bot wrote nothing: their blue stays, green keeps its pods
    assert staging_sim.writes[changed:] == []
    assert kube.service_selector(STAGING, "web") == {"app": "web", "version": "blue"}
    assert kube.deployment(STAGING, "web-green").replicas == 3
    assert is_untouched()
