"""Two (or three) kube simulators behind one kubeconfig with a context each, as a multi-region
bot sees them: every region's calls must reach its own API server only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.adapters.kube.client import KubernetesClient
from bot.demo import promql
from bot.sim.kube_api import KubeSimulator
from bot.sim.kubeconfig import kubeconfig_text

NS = "shop"
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


@dataclass
class Clusters:
    sims: dict[str, KubeSimulator]  # context name → its simulator
    kubeconfig: Path

    def client(self) -> KubernetesClient:
        return KubernetesClient(kubeconfig=str(self.kubeconfig), sleep=lambda s: None)

    def writes(self, context: str) -> list[tuple[str, str, str | None, str]]:
        return self.sims[context].writes


@contextmanager
def clusters(tmp_path: Path, *contexts: str, seed: bool = True) -> Iterator[Clusters]:
    with ExitStack() as stack:
        sims = {c: stack.enter_context(KubeSimulator()) for c in contexts}
        if seed:
            for sim in sims.values():
                sim.seed_deployment(NS, "checkout-api", images=IMAGES)
        path = tmp_path / "kubeconfig"
        path.write_text(kubeconfig_text({c: s.url for c, s in sims.items()}), encoding="utf-8")
        yield Clusters(sims, path)


def region_yaml(
    regions: dict[str, str], waves: str | None = None, *, signals: bool = False, **extra: str
) -> str:
    """A checkout service in the given regions (name → context); ``regions`` values may carry
    more of the region's keys after the context (``"eu, sla_minutes: 5"``)."""
    lines = ["  checkout:", "    namespace: shop", "    deployment: checkout-api"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    if signals:
        lines.append("    signals:")
        lines += [f"      {k}: '{q}'" for k, q in promql("checkout").items()]
    lines.append("    regions:")
    lines += [f"      - {{name: {n}, context: {c}, namespace: {NS}}}" for n, c in regions.items()]
    if waves:
        lines.append(f"    waves: {waves}")
    lines += ["    approvers: [U0APPROVER1, U0APPROVER2]", "    responders: [U0ONCALL1]"]
    return "\n".join(lines)


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
