"""The built-in demo: a sample catalog and the signal values the simulators answer with."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from bot.catalog.load import Catalog, parse_catalog

if TYPE_CHECKING:
    from bot.sim.kube_api import KubeSimulator
    from bot.sim.prometheus_api import PrometheusSimulator


@dataclass(frozen=True)
class DemoService:
    name: str
    story: str
    error_rate: float
    latency_p95_seconds: float
    user_sessions_per_min: float
    db_up: float
    health_status: int


DEMO_SERVICES = (
    DemoService(
        "checkout", "clearly critical: 5xx storm, slow, health failing", 0.23, 6.2, 0.4, 1, 503
    ),
    DemoService("search", "degraded: errors and latency up, users leaving", 0.12, 5.8, 0.5, 1, 200),
    DemoService("payments", "wobbly: elevated errors and latency", 0.06, 1.4, 35.0, 1, 200),
    DemoService("profile", "healthy", 0.002, 0.18, 42.0, 1, 200),
)


def promql(service: str) -> dict[str, str]:
    """The queries of the contract's example catalog, for ``service``."""
    s = f'service="{service}"'
    return {
        "error_rate": f'sum(rate(http_requests_total{{{s},code=~"5.."}}[5m]))'
        f" / sum(rate(http_requests_total{{{s}}}[5m]))",
        "latency_p95_seconds": "histogram_quantile(0.95, sum by (le)"
        f" (rate(http_request_duration_seconds_bucket{{{s}}}[5m])))",
        "user_sessions_per_min": f"sum(rate(user_sessions_total{{{s}}}[5m])) * 60",
        "db_up": f"min(pg_up{{{s}}})",
    }


def query_values(services: Sequence[DemoService] = DEMO_SERVICES) -> dict[str, float]:
    """Each service's readings, by the queries of :func:`promql`."""
    values: dict[str, float] = {}
    for d in services:
        q = promql(d.name)
        values[q["error_rate"]] = d.error_rate
        values[q["latency_p95_seconds"]] = d.latency_p95_seconds
        values[q["user_sessions_per_min"]] = d.user_sessions_per_min
        values[q["db_up"]] = d.db_up
    return values


def image_of(service: str, version: int) -> str:
    return f"registry.example.com/{service}:v{version}"


def seed_cluster(cluster: KubeSimulator) -> None:
    """Each demo service's Deployment with three releases, so there is something to roll back."""
    for d in DEMO_SERVICES:
        releases = [image_of(d.name, n) for n in (1, 2, 3)]
        cluster.seed_deployment("shop", f"{d.name}-api", images=releases, replicas=3)
    # checkout's staging target (rollback.demo.yaml), where its rollback can be rehearsed
    checkout = [image_of("checkout", n) for n in (1, 2, 3)]
    cluster.seed_deployment("shop-staging", "checkout-api", images=checkout, replicas=1)


HEALTHY = DemoService("healthy", "after a rollback", 0.002, 0.15, 40.0, 1, 200)


class DemoWorld:
    """Makes the demo's metrics follow the cluster: each image has its values (a service's v3
    is its story; any other release is healthy unless ``deploy … bad`` said otherwise), so a
    service rolled back off a bad release turns healthy a moment later and a demo rollback can
    pass its verification steps."""

    def __init__(self, cluster: KubeSimulator, prometheus: PrometheusSimulator) -> None:
        self.cluster, self.prometheus = cluster, prometheus
        self.releases = {image_of(d.name, 3): d for d in DEMO_SERVICES}
        self._shown = {d.name: image_of(d.name, 3) for d in DEMO_SERVICES}  # query_values()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo-world", daemon=True)

    def start(self) -> DemoWorld:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def release(self, image: str, values: DemoService) -> None:
        """What ``image`` reads once it runs (a ``deploy`` sets its new release's values)."""
        with self._lock:
            self.releases[image] = values

    def sync(self) -> None:
        """Set each service's metrics to those of the image its Deployment runs now; only a
        change is written, so values a test sets by hand stay until the image changes."""
        with self._lock:
            for d in DEMO_SERVICES:
                dep = self.cluster.get_object("apps/v1", "deployments", "shop", f"{d.name}-api")
                spec: Any = dep.get("spec", {}) if dep else {}
                containers = spec.get("template", {}).get("spec", {}).get("containers", [])
                image = str(containers[0].get("image", "")) if containers else ""
                if image and image != self._shown.get(d.name):
                    self._shown[d.name] = image
                    self._set(d.name, self.releases.get(image, HEALTHY))

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            self.sync()

    def _set(self, name: str, values: DemoService) -> None:
        q = promql(name)
        self.prometheus.set_value(q["error_rate"], values.error_rate)
        self.prometheus.set_value(q["latency_p95_seconds"], values.latency_p95_seconds)
        self.prometheus.set_value(q["user_sessions_per_min"], values.user_sessions_per_min)
        self.prometheus.set_value(q["db_up"], values.db_up)
        self.prometheus.set_health(name, values.health_status)


STATUS_PAGE_TOKEN_ENV = "ROLLBACK_DEMO_STATUS_PAGE_TOKEN"  # rollback.demo.yaml names it


def demo_catalog(health_base_url: str, status_page_url: str | None = None) -> Catalog:
    """The demo catalog; without ``status_page_url`` it has no status page (Edit, no Publish)."""
    text = resources.files("bot.demo").joinpath("rollback.demo.yaml").read_text(encoding="utf-8")
    if status_page_url is None:  # the one line naming it goes
        text = "\n".join(line for line in text.splitlines() if "{status_page}" not in line)
    text = text.replace("{status_page}", status_page_url or "")
    return parse_catalog(
        text.replace("{health}", health_base_url.rstrip("/")), "rollback.demo.yaml"
    )
