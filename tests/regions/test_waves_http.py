"""Multi-region rollbacks through signed HTTP: two kube simulators, one kubeconfig, two contexts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.values import KubeTarget
from tests.conftest import Harness, catalog_yaml
from tests.regions.clusters import NS, Clusters, clusters, region_yaml

REGIONS = {"eu-west-1": "eu", "us-east-1": "us"}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Clusters]:
    with clusters(tmp_path, "eu", "us") as found:
        yield found


def make(make_harness: Any, two: Clusters, **extra: str) -> Harness:
    text = catalog_yaml(region_yaml(REGIONS, **extra))
    h: Harness = make_harness(text, prometheus_url=None, kube=two.client())
    return h


def image(two: Clusters, context: str) -> str:
    kube = two.client()
    return kube.deployment(KubeTarget(context, NS), "checkout-api").images["app"]


def test_waves_roll_back_every_region_on_its_own_cluster(make_harness: Any, two: Clusters) -> None:
    h = make(make_harness, two)
    resp = h.slash("run checkout --immediate bad release")
    h.wait_rollbacks()

    text = resp.json()["text"]
    assert "Rollback #1 of *checkout* started" in text
    assert "eu-west-1 → us-east-1" in text
    assert image(two, "eu") == "shop/checkout:v2"
    assert image(two, "us") == "shop/checkout:v2"
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    steps = h.bot.deps.repo.list_steps(1)
    assert {s.region for s in steps} == {"eu-west-1", "us-east-1"}
    eu = [s for s in steps if s.region == "eu-west-1"]
    us = [s for s in steps if s.region == "us-east-1"]
    assert {s.wave for s in eu} == {0} and {s.wave for s in us} == {1}
    # the second wave started only after the first one's last step ended
    assert max(s.finished_at for s in eu if s.finished_at) <= min(
        s.started_at for s in us if s.started_at
    )
