"""The automatic guard and multi-region services: it does not watch regions yet, so
check-config refuses ``auto_rollback.enabled`` on a ``regions:`` service (with its line), and a
guard handed one anyway skips it, says why once, and reads no cluster for it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import Catalog, parse_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.rollback.triggers import GuardConfig
from tests.conftest import Harness, catalog_yaml
from tests.regions.clusters import NS, Clusters, clusters, region_yaml

GUARD = "    auto_rollback:\n      enabled: true\n      triggers:\n" + (
    "        - {metric: error_rate, threshold: 0.01, duration_seconds: 60}\n"
)


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "r.yaml")
    return caught.value.errors


def test_check_config_refuses_the_guard_on_a_regions_service_at_its_enabled_line() -> None:
    text = catalog_yaml(
        region_yaml({"eu-west-1": "eu", "us-east-1": "us"}, signals=True) + "\n" + GUARD
    )
    lines = text.splitlines()
    enabled = next(i for i, line in enumerate(lines, 1) if "enabled: true" in line)
    (error,) = errors(text)
    assert error.startswith(f"r.yaml:{enabled}: services.checkout.auto_rollback.enabled: ")
    assert "the automatic guard does not watch regions yet" in error
    assert "Set enabled: false under services.checkout.auto_rollback" in error


def test_an_inherited_guard_is_refused_at_the_services_regions_line() -> None:
    text = catalog_yaml(region_yaml({"eu-west-1": "eu"}, signals=True)).replace(
        "defaults:\n",
        "defaults:\n" + GUARD.replace("    ", "  ", 1).replace("\n      ", "\n    "),
        1,
    )
    lines = text.splitlines()
    regions = next(i for i, line in enumerate(lines, 1) if line == "    regions:")
    (error,) = errors(text)
    assert error.startswith(f"r.yaml:{regions}: services.checkout.regions: ")
    assert "inherits enabled: true from defaults.auto_rollback" in error
    off = text + "\n    auto_rollback: {enabled: false}\n"
    assert parse_catalog(off, "r.yaml").get("checkout") is not None  # the fix it names


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Clusters]:
    with clusters(tmp_path, "eu", "us") as found:
        yield found


def test_the_guard_skips_a_regions_service_and_says_why_once(
    make_harness: Any, two: Clusters, caplog: pytest.LogCaptureFixture
) -> None:
    text = catalog_yaml(region_yaml({"eu-west-1": "eu", "us-east-1": "us"}, signals=True))
    h: Harness = make_harness(text, prometheus_url=None, kube=two.client())
    deps = h.bot.deps
    service = deps.catalog.get("checkout")
    assert service is not None
    guarded = replace(service, guard=GuardConfig(is_enabled=True))  # as check-config refuses
    deps.catalog = Catalog(deps.catalog.source, {"checkout": guarded})
    before = {c: len(s.requests) for c, s in two.sims.items()}

    with caplog.at_level(logging.WARNING, logger="bot.guard.watch"):
        h.bot.guard.tick()
        kube = two.client()
        for context in ("eu", "us"):  # a release in each region, and in the default context
            kube.set_image(KubeTarget(context, NS), "checkout-api", "app", "shop/checkout:v4")
        h.bot.guard.tick()

    said = [r.getMessage() for r in caplog.records if "not watching checkout" in r.getMessage()]
    assert said == [
        "guard: not watching checkout: it runs in regions (eu-west-1, us-east-1) and the guard"
        " does not watch regions yet (set auto_rollback.enabled: false for it)"
    ]
    assert deps.repo.guarded_services() == {}
    assert deps.repo.count_guarded("watching") == 0
    for context, sim in two.sims.items():  # the guard listed no deployments anywhere
        lists = [
            p
            for v, p in sim.requests[before[context] :]
            if p.split("?")[0].endswith("/deployments")
        ]
        assert lists == [], context
