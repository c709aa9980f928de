"""``/rollback assess`` of a multi-region service: every region at once, each with its own
Prometheus (when it names one) and cluster; one line per region, and the worst decision."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError
from bot.assessment.signals import SignalReader, assess_service
from bot.catalog.load import Service
from bot.execution.release import current_release, release_text
from bot.notify.blocks import escape
from bot.regions.waves import region_prometheus
from bot.rollback.assess import Assessment, Decision

SEVERITY = list(Decision)  # worst first


def assess_regions(
    reader: SignalReader, kube: KubernetesClient, service: Service
) -> tuple[Assessment, list[dict[str, Any]]]:
    """The worst region's assessment (named the service's, its reasons saying where), and
    each region's decision, scores and running release."""
    names = [r.name for r in service.regions]
    with ThreadPoolExecutor(max(1, len(names)), thread_name_prefix="assess-region") as pool:
        found = list(pool.map(lambda n: _assess_one(reader, kube, service.in_region(n)), names))
    rows = [{"region": n, **row} for n, (_, row) in zip(names, found, strict=True)]
    worst_at = min(
        range(len(found)),
        key=lambda i: (SEVERITY.index(found[i][0].decision), -found[i][0].total),
    )
    worst, region = found[worst_at][0], names[worst_at]
    reasons = (f"worst in {region}", *worst.reasons)
    return replace(worst, service=service.name, reasons=reasons), rows


def _assess_one(
    reader: SignalReader, kube: KubernetesClient, regional: Service
) -> tuple[Assessment, dict[str, Any]]:
    own = SignalReader(
        region_prometheus(reader.prometheus, reader.http, regional), reader.http, reader.pool
    )
    result = assess_service(own, regional)
    try:
        release: dict[str, Any] | None = current_release(kube, regional)
    except KubeError:
        release = None
    row = {
        "decision": result.decision.value,
        "total": result.total,
        **{str(k): v for k, v in result.scores.items()},
        "release": release,
    }
    return result, row


def region_lines(rows: list[dict[str, Any]]) -> str:
    """``• *eu-west-1*: MONITOR — critical 0, high 20, medium 10, total 30 · checkout-api at …``"""
    lines = []
    for row in rows:
        release = release_text(row["release"]) if row["release"] else "release not readable"
        lines.append(
            f"• *{row['region']}*: {row['decision']} — critical {row['critical']}, high"
            f" {row['high']}, medium {row['medium']}, total {row['total']} · _{escape(release)}_"
        )
    return "*By region*\n" + "\n".join(lines)
