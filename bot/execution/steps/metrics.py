"""Prometheus gate: wait until a metric is back on the right side of a threshold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.execution.steps.base import DryRun, StepContext, StepFailed
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec

POLL_SECONDS = 5.0


def prometheus_gate(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.prometheus is None:
        raise StepFailed("cannot verify metrics: PROMETHEUS_URL is not set")
    prometheus = ctx.prometheus
    query = str(params["query"])
    below, above = params.get("below"), params.get("above")
    last: dict[str, Any] = {"value": None, "note": ""}

    def check() -> str | None:
        result = prometheus.query(query)
        last.update(value=result.value, note=result.note)
        if result.value is None:
            return None
        if below is not None and not result.value < float(below):
            return None
        if above is not None and not result.value > float(above):
            return None
        return f"{result.value:.4g}"

    bound = f"< {below}" if below is not None else f"> {above}"
    try:
        value = ctx.poll_until(check, POLL_SECONDS, f"metric gate {bound}")
    except StepFailed:
        seen = last["value"] if last["value"] is not None else f"unknown ({last['note']})"
        raise StepFailed(f"metric gate: wanted {bound}, last value {seen}") from None
    return {"query": query, "value": value}


def describe_prometheus_gate(dry: DryRun, s: StepSpec) -> str:
    p = s.params
    bound = f"< {p['below']}" if "below" in p else f"> {p.get('above')}"
    return f"waits until `{escape(str(p['query']))}` {bound}"
