"""The demo's world for ``rollback-bot console --demo``: a simulated cluster, Prometheus,
phones and status page, the demo catalog, and the settings that point the app at them."""

from __future__ import annotations

import os
import secrets
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Catalog
from bot.demo import (
    DEMO_SERVICES,
    STATUS_PAGE_TOKEN_ENV,
    DemoWorld,
    demo_catalog,
    query_values,
    seed_cluster,
)
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.status_page_api import StatusPageSimulator
from bot.sim.twilio_api import TwilioSimulator


@dataclass(frozen=True)
class Demo:
    catalog: Catalog
    kube: KubernetesClient
    cluster: KubeSimulator
    phones: TwilioSimulator
    world: DemoWorld  # the metrics each image reads (`deploy … bad` adds a bad one)
    status_page: StatusPageSimulator  # where Publish posts customer updates (loopback)
    settings: dict[str, Any]  # overrides of the app's settings: the simulators' URLs


def start_demo(stack: ExitStack) -> Demo:
    """Start the simulators (stopped when ``stack`` closes) and the world that moves them."""
    cluster = stack.enter_context(KubeSimulator(ready_delay_seconds=2.0))
    seed_cluster(cluster)
    kube = KubernetesClient(api_client_for=lambda _context: cluster.api_client())
    health = {d.name: d.health_status for d in DEMO_SERVICES}
    prometheus = stack.enter_context(PrometheusSimulator(query_values(), health))
    page = stack.enter_context(StatusPageSimulator(secrets.token_urlsafe(24)))
    _set_env(stack, STATUS_PAGE_TOKEN_ENV, page.token)
    catalog = demo_catalog(prometheus.url, page.hook_url)
    world = DemoWorld(cluster, prometheus).start()
    stack.callback(world.stop)
    phones = stack.enter_context(TwilioSimulator(is_sending_callbacks=False))
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rollback-demo-")))
    settings = {
        "twilio_account_sid": phones.account_sid,
        "twilio_auth_token": SecretStr(phones.auth_token),
        "twilio_from_number": "+15550009999",
        "twilio_api_url": phones.url,
        "prometheus_url": prometheus.url,
        "database_url": f"sqlite:///{tmp / 'demo.db'}",
    }
    return Demo(catalog, kube, cluster, phones, world, page, settings)


def _set_env(stack: ExitStack, name: str, value: str) -> None:
    """The status page token's variable (the bot reads it from the environment, as it would a
    real one), put back as it was when the demo ends."""
    before = os.environ.get(name)
    os.environ[name] = value
    stack.callback(
        lambda: os.environ.pop(name, None) if before is None else os.environ.update({name: before})
    )
