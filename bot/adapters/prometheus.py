"""Prometheus HTTP API (``/api/v1/query``) via httpx: instant queries → numbers or why not.

``query`` gives one number (the worst series), ``vector`` every series with its labels (the
guard batches many queries into one and splits the answer by a label).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

Worst = Literal["max", "min"]

# Prometheus answers 400 (bad_data: a parse error) and 422 (execution: e.g. a type error) when
# the query itself is at fault; any other failure is the server's or the network's.
_QUERY_AT_FAULT = frozenset({400, 422})


@dataclass(frozen=True)
class QueryResult:
    """``value`` is None when there is nothing trustworthy to report; ``note`` then says why."""

    value: float | None
    note: str = ""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (a scalar answer is one sample without labels)."""

    labels: Mapping[str, str]
    value: float  # may be NaN: the caller decides what NaN means


@dataclass(frozen=True)
class VectorResult:
    """Every series of an answer; a non-empty ``note`` means there was no answer, and why.

    ``is_rejected``: Prometheus answered and refused this query (bad PromQL), so another query
    may still succeed; otherwise (down, slow, garbled) no query would fare better right now.
    """

    samples: tuple[Sample, ...] = ()
    note: str = ""
    is_rejected: bool = False


@dataclass(frozen=True)
class _Failure:
    note: str
    is_rejected: bool = False


class PrometheusAPI:
    """Instant queries against one Prometheus. The httpx client is shared and thread-safe."""

    def __init__(self, base_url: str, client: httpx.Client, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout_seconds = timeout_seconds

    def query(
        self, promql: str, worst: Worst = "max", *, time: datetime | None = None
    ) -> QueryResult:
        """Evaluate ``promql`` now (or at ``time``); several series are reduced to the worst."""
        answer = self._post(promql, time)
        if isinstance(answer, _Failure):
            return QueryResult(None, answer.note)
        return _value_of(answer, worst)

    def vector(self, promql: str, *, time: datetime | None = None) -> VectorResult:
        """Evaluate ``promql`` now (or at ``time``): every series with its labels."""
        answer = self._post(promql, time)
        if isinstance(answer, _Failure):
            return VectorResult(note=answer.note, is_rejected=answer.is_rejected)
        return _samples_of(answer)

    def _post(self, promql: str, time: datetime | None) -> dict[str, object] | _Failure:
        """The ``data`` of a successful answer, or why there is none."""
        form = {"query": promql}
        if time is not None:
            form["time"] = f"{_unix(time):.3f}"
        try:
            resp = self.client.post(
                f"{self.base_url}/api/v1/query", data=form, timeout=self.timeout_seconds
            )
        except httpx.TimeoutException:
            return _Failure(f"Prometheus did not answer within {self.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return _Failure(f"Prometheus unreachable ({type(exc).__name__})")
        try:
            body = resp.json()
        except ValueError:
            return _Failure(f"Prometheus answered HTTP {resp.status_code} without JSON")
        if resp.status_code != 200 or body.get("status") != "success":
            return _Failure(
                f"query rejected: {body.get('error', resp.status_code)}",
                is_rejected=resp.status_code in _QUERY_AT_FAULT,
            )
        data = body.get("data", {})
        return data if isinstance(data, dict) else {}


def _unix(at: datetime) -> float:
    # a naive datetime is UTC here, as everywhere in the bot (never the host's local time)
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


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
    return worst_value(values, worst)


def worst_value(values: Sequence[float], worst: Worst) -> QueryResult:
    """The worst of the values of a query's series, NaN left out; unknown when none is left."""
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return QueryResult(None, "no series" if not values else "query returned NaN")
    return QueryResult(max(numbers) if worst == "max" else min(numbers))


def _samples_of(data: dict[str, object]) -> VectorResult:
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector" and isinstance(result, list):
            return VectorResult(
                tuple(
                    Sample(
                        {str(k): str(v) for k, v in series["metric"].items()},
                        float(series["value"][1]),
                    )
                    for series in result
                )
            )
        if kind == "scalar" and isinstance(result, list):
            return VectorResult((Sample({}, float(result[1])),))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return VectorResult(note="malformed answer from Prometheus")
    return VectorResult(note=f"unexpected result type {kind!r}")
