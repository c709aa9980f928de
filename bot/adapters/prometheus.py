"""Prometheus HTTP API (``/api/v1/query``) via httpx: one instant query → a number or why not."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import httpx

Worst = Literal["max", "min"]


@dataclass(frozen=True)
class QueryResult:
    """``value`` is None when there is nothing trustworthy to report; ``note`` then says why."""

    value: float | None
    note: str = ""


class PrometheusAPI:
    """Instant queries against one Prometheus. The httpx client is shared and thread-safe."""

    def __init__(self, base_url: str, client: httpx.Client, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout_seconds = timeout_seconds

    def query(self, promql: str, worst: Worst = "max") -> QueryResult:
        """Evaluate ``promql`` now; several series are reduced to the worst one (max or min)."""
        try:
            resp = self.client.post(
                f"{self.base_url}/api/v1/query",
                data={"query": promql},
                timeout=self.timeout_seconds,
            )
        except httpx.TimeoutException:
            return QueryResult(None, f"Prometheus did not answer within {self.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return QueryResult(None, f"Prometheus unreachable ({type(exc).__name__})")
        try:
            body = resp.json()
        except ValueError:
            return QueryResult(None, f"Prometheus answered HTTP {resp.status_code} without JSON")
        if resp.status_code != 200 or body.get("status") != "success":
            return QueryResult(None, f"query rejected: {body.get('error', resp.status_code)}")
        return _value_of(body.get("data", {}), worst)


def _value_of(data: dict[str, object], worst: Worst) -> QueryResult:
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector" and isinstance(result, list):
            samples = [str(series["value"][1]) for series in result]
        elif kind == "scalar" and isinstance(result, list):
            samples = [str(result[1])]
        else:
            return QueryResult(None, f"unexpected result type {kind!r}")
        values = [float(v) for v in samples]
    except (KeyError, IndexError, TypeError, ValueError):
        return QueryResult(None, "malformed answer from Prometheus")
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return QueryResult(None, "no series" if not samples else "query returned NaN")
    return QueryResult(max(values) if worst == "max" else min(values))
