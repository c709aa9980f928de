"""The Kubernetes client keeps as many connections as the bot has threads that call it.

The SDK's default is ``cpu_count * 5`` per host (10 on two cores): under 50 concurrent rollbacks
every surplus connection was thrown away with a "Connection pool is full, discarding
connection" warning. The size is read back from the real client objects — the urllib3 pool that
served a real request to the Kubernetes simulator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import BOT_TOKEN, catalog_yaml, service_yaml

NS = "shop"


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "checkout-api", images=["shop/checkout:1", "shop/checkout:2"])
        yield sim


def pool_sizes_in_use(kube: KubernetesClient) -> set[int]:
    """maxsize of every urllib3 pool the client's ApiClients opened."""
    sizes = set()
    for api_client in kube._clients.values():
        manager = api_client.rest_client.pool_manager
        for key in manager.pools.keys():  # noqa: SIM118 (RecentlyUsedContainer refuses iteration)
            sizes.add(int(manager.pools[key].pool.maxsize))  # type: ignore[union-attr]
    return sizes


@pytest.mark.parametrize("workers", [4, 40])
def test_the_kubernetes_pool_follows_the_worker_count(
    slack: SlackSimulator, kube_sim: KubeSimulator, tmp_path: Path, workers: int
) -> None:
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    settings = Settings(
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=SecretStr("pool-secret"),
        slack_api_url=slack.api_url,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        rollback_bot_workers=workers,
    )
    catalog = parse_catalog(catalog_yaml(service_yaml("checkout", None)), "test.yaml")
    bot = build_app(settings, catalog=catalog, kube=kube)
    try:
        check_pool_size(bot, kube, workers)
    finally:
        bot.close()


def check_pool_size(bot: BotApp, kube: KubernetesClient, workers: int) -> None:
    deps = bot.deps
    expected = deps.engine.max_parallel + 2 * deps.work.max_workers + deps.due.parallel
    assert deps.work.max_workers == workers and expected > 10  # above the SDK's 2-core default

    info = kube.deployment(KubeTarget(context=None, namespace=NS), "checkout-api")
    assert info.revision == 2
    assert kube.connection_pool_size() == expected
    assert pool_sizes_in_use(kube) == {expected}


def test_clients_built_before_sizing_are_resized(
    kube_sim: KubeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    target = KubeTarget(context=None, namespace=NS)
    try:
        kube.deployment(target, "checkout-api")  # an ApiClient with the SDK's default pool
        kube.size_connection_pools(24)
        kube.deployment(target, "checkout-api")
        assert kube.connection_pool_size() == 24
        assert pool_sizes_in_use(kube) == {24}

        # 24 threads at once keep their connections: nothing is discarded
        caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
        api_client = next(iter(kube._clients.values()))
        pool = api_client.rest_client.pool_manager.connection_from_url(kube_sim.url)
        taken = [pool._get_conn() for _ in range(24)]
        for conn in taken:
            pool._put_conn(conn)
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    finally:
        kube.close()
