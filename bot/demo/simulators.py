"""The demo's world for ``rollback-bot console --demo``: a simulated cluster, Prometheus and
phones, the demo catalog, and the settings that point the app at them."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Catalog
from bot.demo import DEMO_SERVICES, DemoWorld, demo_catalog, query_values, seed_cluster
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.twilio_api import TwilioSimulator


@dataclass(frozen=True)
class Demo:
    catalog: Catalog
    kube: KubernetesClient
    cluster: KubeSimulator
    phones: TwilioSimulator
    settings: dict[str, Any]  # overrides of the app's settings: the simulators' URLs


def start_demo(stack: ExitStack) -> Demo:
    """Start the simulators (stopped when ``stack`` closes) and the world that moves them."""
    cluster = stack.enter_context(KubeSimulator(ready_delay_seconds=2.0))
    seed_cluster(cluster)
    kube = KubernetesClient(api_client_for=lambda _context: cluster.api_client())
    health = {d.name: d.health_status for d in DEMO_SERVICES}
    prometheus = stack.enter_context(PrometheusSimulator(query_values(), health))
    catalog = demo_catalog(prometheus.url)
    stack.callback(DemoWorld(cluster, prometheus).start().stop)
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
    return Demo(catalog, kube, cluster, phones, settings)
