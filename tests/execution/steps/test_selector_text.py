"""Selectors are shown as kubectl takes them (``app=storefront,version=blue``), never as Python
dicts: in the progress thread and in the post-incident review (issue #10, item 9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.execution.steps.kubernetes.objects import switch_selector
from bot.review.text import changes
from bot.sim.kube_api import KubeSimulator
from storage.models import RollbackStep


@pytest.fixture
def kube() -> Iterator[KubernetesClient]:
    with KubeSimulator() as sim:
        sim.seed_service("shop", "storefront", {"app": "storefront", "version": "green"})
        client = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
        yield client
        client.close()


def test_the_thread_and_the_review_show_selectors_as_labels(
    kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, rec = make_ctx(kube=kube)

    detail = switch_selector(ctx, {"service": "storefront", "selector": {"version": "blue"}})

    assert rec.notes == [
        "Service storefront selector app=storefront,version=green → app=storefront,version=blue"
    ]
    step = RollbackStep(
        rollback_id=7,
        phase="stop_traffic",
        position=2,
        name="Switch",
        kind="switch_selector",
        status="succeeded",
        detail={**detail, "params": {"service": "storefront"}},
    )
    assert changes(step, "storefront") == [
        "Service storefront selector: app=storefront,version=green → app=storefront,version=blue"
    ]
