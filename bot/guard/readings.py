"""Many PromQL readings in few HTTP queries: the guard's I/O towards Prometheus.

One round of the guard reads every trigger of every watched release. A query each would be
thousands of HTTP round trips every interval, so the queries go in chunks, each chunk one
PromQL expression (``bot.adapters.prometheus_batch``), and the answer is split again by query.

A query Prometheus rejects (bad raw PromQL, a scalar where a vector is needed) makes its whole
chunk fail, so that chunk is read again one query at a time: a bad query blinds only itself.
When Prometheus is down or slow, every key not yet read is unknown at once: nothing retries, so
a round takes at most about one adapter timeout longer than it would with Prometheus up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.adapters.prometheus import PrometheusAPI, Sample, VectorResult, worst_value
from bot.adapters.prometheus_batch import batch_query, split

DEFAULT_CHUNK = 200
BASELINE_STEP_SECONDS = 60
NO_SERIES = "no series"

Pair = tuple[str, str]  # (key, PromQL)


@dataclass(frozen=True)
class Reading:
    """One value per key; ``value`` None means unknown and ``note`` says why."""

    value: float | None
    note: str = ""


def read_many(
    prometheus: PrometheusAPI,
    queries: Mapping[str, str],
    *,
    at: datetime | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> dict[str, Reading]:
    """Evaluate every query at ``at`` (default: now); each key's series reduced to its max."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    pairs = list(queries.items())
    readings: dict[str, Reading] = {}
    for start in range(0, len(pairs), chunk):
        down = _read_chunk(prometheus, pairs[start : start + chunk], at, readings)
        if down:
            # Prometheus itself failed: asking again this round would only add timeouts
            readings.update((key, Reading(None, down)) for key, _ in pairs[start + chunk :])
            break
    return {key: readings[key] for key in queries}


def read_baselines(
    prometheus: PrometheusAPI,
    queries: Mapping[str, str],
    *,
    until: datetime,
    minutes: float,
    chunk: int = DEFAULT_CHUNK,
) -> dict[str, Reading]:
    """Each query's average over ``[until - minutes, until]`` (sampled every minute)."""
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    window = max(1, round(minutes * 60))
    step = min(BASELINE_STEP_SECONDS, window)
    averaged = {
        key: f"avg_over_time(({promql})[{window}s:{step}s])" for key, promql in queries.items()
    }
    readings = read_many(prometheus, averaged, at=until, chunk=chunk)
    empty = Reading(None, f"no data in the {minutes:g} min baseline window")
    return {key: empty if r.note == NO_SERIES else r for key, r in readings.items()}


def _read_chunk(
    prometheus: PrometheusAPI, pairs: Sequence[Pair], at: datetime | None, out: dict[str, Reading]
) -> str:
    """Fill ``out`` for ``pairs``; return the note if Prometheus itself failed, else ""."""
    if len(pairs) == 1:
        return _one_by_one(prometheus, pairs, at, out)
    result = prometheus.vector(batch_query(pairs), time=at)
    if result.is_rejected:
        return _one_by_one(prometheus, pairs, at, out)
    if result.note:
        out.update((key, Reading(None, result.note)) for key, _ in pairs)
        return result.note
    for (key, _), samples in zip(pairs, split(result.samples, len(pairs)), strict=True):
        out[key] = _worst(samples)
    return ""


def _one_by_one(
    prometheus: PrometheusAPI, pairs: Sequence[Pair], at: datetime | None, out: dict[str, Reading]
) -> str:
    for i, (key, promql) in enumerate(pairs):
        result = prometheus.vector(promql, time=at)
        if result.note and not result.is_rejected:
            out.update((k, Reading(None, result.note)) for k, _ in pairs[i:])
            return result.note
        out[key] = _reading_of(result)
    return ""


def _reading_of(result: VectorResult) -> Reading:
    return Reading(None, result.note) if result.note else _worst(result.samples)


def _worst(samples: Sequence[Sample]) -> Reading:
    # max is "worst" for greater_than triggers, the guard's usual kind
    worst = worst_value([s.value for s in samples], "max")
    return Reading(worst.value, worst.note)
