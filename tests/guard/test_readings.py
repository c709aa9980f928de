"""Batched readings against a real Prometheus (backfilled with promtool).

The number of HTTP queries is counted at the httpx transport, the bot's network edge: the
answers still come from the real server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.adapters.prometheus import PrometheusAPI
from bot.guard.readings import Reading, batch_query, read_baselines, read_many
from tests.conftest import closed_port_url
from tests.prometheus_server import (
    RealPrometheus,
    Series,
    checkout_like_series,
    require_prometheus,
    signal_queries,
)

pytestmark = pytest.mark.prometheus

NOW = time.time()
# the release: 20 min ago, on a whole minute so the 1-minute baseline steps line up with it
RELEASE = (NOW - 20 * 60) // 60 * 60
BEFORE, AFTER = 0.39, 2.4
SERVICES = [f"svc{i}" for i in range(10)]


class CountingTransport(httpx.BaseTransport):
    """A real HTTP transport that remembers which paths were requested."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    @property
    def queries(self) -> int:
        return self.paths.count("/api/v1/query")


def _series() -> list[Series]:
    def release(t: float) -> float:
        return BEFORE if t <= RELEASE else AFTER

    series = [
        Series("release_latency_seconds", {"service": "checkout"}, "gauge", release),
        Series("release_events_total", {"service": "checkout"}, "counter", release),
    ]
    for i, name in enumerate(SERVICES):  # two pods each: the worse (higher) one counts
        series.append(Series("level", {"service": name, "pod": "a"}, "gauge", float(i)))
        series.append(Series("level", {"service": name, "pod": "b"}, "gauge", i + 0.5))
    return series + checkout_like_series(
        "cart",
        error_ratio=0.25,
        p95_seconds=6.0,
        sessions_per_min=0.2,
        db_up=0,
        end=NOW + 600,
        degraded_for_s=1500,
    )


@pytest.fixture(scope="module")
def prometheus() -> Iterator[RealPrometheus]:
    binaries = require_prometheus()
    # from 80 min ago (the baseline and its 5-minute rate windows need history before the
    # release) to 10 min ahead (future samples wait unseen, so "now" keeps its data)
    with RealPrometheus(_series(), end=NOW + 600, duration_s=90 * 60, binaries=binaries) as prom:
        yield prom


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def api(prometheus: RealPrometheus, transport: CountingTransport) -> Iterator[PrometheusAPI]:
    with httpx.Client(transport=transport) as client:
        yield PrometheusAPI(prometheus.url, client, timeout_seconds=5)


def level(name: str) -> str:
    return f'level{{service="{name}"}}'


def test_several_keys_in_one_chunk_take_one_query(
    api: PrometheusAPI, transport: CountingTransport
) -> None:
    queries = {f"{n}:level": level(n) for n in SERVICES[:5]}
    cart = signal_queries("cart")
    queries["cart:error_rate"] = cart["error_rate"]
    queries["cart:p95"] = cart["latency_p95_seconds"]

    readings = read_many(api, queries)

    assert transport.queries == 1
    assert list(readings) == list(queries)
    assert [readings[f"{n}:level"] for n in SERVICES[:5]] == [Reading(i + 0.5) for i in range(5)]
    assert readings["cart:error_rate"].value == pytest.approx(0.25, rel=0.02)
    assert readings["cart:p95"].value == pytest.approx(6.0, rel=0.02)


def test_keys_across_chunks_take_one_query_per_chunk(
    api: PrometheusAPI, transport: CountingTransport
) -> None:
    queries = {f"{n}:level": level(n) for n in SERVICES}

    readings = read_many(api, queries, chunk=3)

    assert transport.queries == 4  # 3 + 3 + 3 + 1
    assert readings == {f"{n}:level": Reading(i + 0.5) for i, n in enumerate(SERVICES)}


def test_keys_are_free_text(api: PrometheusAPI, transport: CountingTransport) -> None:
    queries = {"": level("svc1"), 'a "quoted" \\ key': level("svc2"), "ключ\n2": level("svc3")}

    assert read_many(api, queries) == {
        "": Reading(1.5),
        'a "quoted" \\ key': Reading(2.5),
        "ключ\n2": Reading(3.5),
    }
    assert transport.queries == 1


def test_a_query_without_series_is_unknown(
    api: PrometheusAPI, transport: CountingTransport
) -> None:
    queries = {"ok": level("svc4"), "gone": level("no-such-service")}

    readings = read_many(api, queries)

    assert readings == {"ok": Reading(4.5), "gone": Reading(None, "no series")}
    assert transport.queries == 1


def test_a_rejected_query_blinds_only_itself(
    api: PrometheusAPI, transport: CountingTransport
) -> None:
    first = {f"{n}:level": level(n) for n in SERVICES[:3]}
    second = {f"{n}:level": level(n) for n in SERVICES[3:7]}
    queries = {**first, "bad": "sum(rate(level[5m]", **second}  # chunks of 4: bad in the 1st

    readings = read_many(api, queries, chunk=4)

    bad = readings.pop("bad")
    assert bad.value is None
    assert bad.note.startswith("query rejected: ")
    assert "parse error" in bad.note
    assert readings == {f"{n}:level": Reading(i + 0.5) for i, n in enumerate(SERVICES[:7])}
    assert transport.queries == 1 + 4 + 1  # the first chunk, again one by one, the second


def test_a_scalar_query_still_reads(api: PrometheusAPI) -> None:
    # label_replace needs a vector, so the chunk is refused and read again one by one
    queries = {"vector": level("svc5"), "scalar": f"scalar(max({level('svc6')})) * 2"}

    assert read_many(api, queries) == {"vector": Reading(5.5), "scalar": Reading(13.0)}


def test_read_at_a_past_time(api: PrometheusAPI) -> None:
    queries = {"latency": 'release_latency_seconds{service="checkout"}'}
    before = datetime.fromtimestamp(RELEASE - 300, UTC)

    assert read_many(api, queries, at=before) == {"latency": Reading(BEFORE)}
    assert read_many(api, queries) == {"latency": Reading(AFTER)}
    # naive datetimes are UTC
    assert read_many(api, queries, at=before.replace(tzinfo=None)) == {"latency": Reading(BEFORE)}


def test_baseline_is_the_window_before_the_release(api: PrometheusAPI) -> None:
    queries = {
        "gauge": 'release_latency_seconds{service="checkout"}',
        "rate": 'sum(rate(release_events_total{service="checkout"}[5m]))',
    }
    release = datetime.fromtimestamp(RELEASE, UTC)

    baseline = read_baselines(api, queries, until=release, minutes=30)
    now = read_many(api, queries)

    assert baseline["gauge"].value == pytest.approx(BEFORE)
    assert baseline["rate"].value == pytest.approx(BEFORE, rel=0.03)
    assert now["gauge"] == Reading(AFTER)
    assert now["rate"].value == pytest.approx(AFTER, rel=0.03)


def test_baseline_without_data_is_unknown(api: PrometheusAPI, transport: CountingTransport) -> None:
    queries = {"known": level("svc7"), "none": 'release_latency_seconds{service="nope"}'}
    long_ago = datetime.fromtimestamp(NOW - 6 * 3600, UTC)  # before any backfilled sample

    assert read_baselines(api, queries, until=long_ago, minutes=30) == {
        "known": Reading(None, "no data in the 30 min baseline window"),
        "none": Reading(None, "no data in the 30 min baseline window"),
    }
    recent = read_baselines(api, queries, until=datetime.now(UTC), minutes=30)
    assert recent == {
        "known": Reading(7.5),
        "none": Reading(None, "no data in the 30 min baseline window"),
    }
    assert transport.queries == 2


def test_prometheus_down_makes_every_key_unknown_at_once(transport: CountingTransport) -> None:
    queries = {f"k{i}": level(f"svc{i}") for i in range(10)}
    with httpx.Client(transport=transport) as client:
        api = PrometheusAPI(closed_port_url(), client, timeout_seconds=5)
        started = time.monotonic()
        readings = read_many(api, queries, chunk=3)
        elapsed = time.monotonic() - started

    assert set(readings) == set(queries)
    assert {r.value for r in readings.values()} == {None}
    assert {r.note for r in readings.values()} == {"Prometheus unreachable (ConnectError)"}
    assert transport.queries == 1  # nothing retried: the other chunks were not asked
    assert elapsed < 1.0


def test_prometheus_silent_costs_one_timeout(transport: CountingTransport) -> None:
    queries = {f"k{i}": level(f"svc{i}") for i in range(10)}
    # a socket that listens but never accepts: the kernel completes the handshake, the request
    # goes out, and no answer ever comes
    with socket.socket() as silent, httpx.Client(transport=transport) as client:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        api = PrometheusAPI(f"http://127.0.0.1:{port}", client, timeout_seconds=0.3)
        started = time.monotonic()
        readings = read_many(api, queries, chunk=3)
        elapsed = time.monotonic() - started

    assert {r.note for r in readings.values()} == {"Prometheus did not answer within 0.3 s"}
    assert {r.value for r in readings.values()} == {None}
    assert transport.queries == 1
    assert elapsed < 1.5


def test_batch_query_tags_each_query_by_position() -> None:
    assert batch_query([("a", "up"), ("b", "sum(x)")]) == (
        'label_replace((up), "rb_key", "0", "", "") or '
        'label_replace((sum(x)), "rb_key", "1", "", "")'
    )


def test_chunk_and_window_must_be_positive(api: PrometheusAPI) -> None:
    with pytest.raises(ValueError, match="chunk"):
        read_many(api, {"a": "up"}, chunk=0)
    with pytest.raises(ValueError, match="minutes"):
        read_baselines(api, {"a": "up"}, until=datetime.now(UTC), minutes=0)


def test_no_queries_no_requests(api: PrometheusAPI, transport: CountingTransport) -> None:
    assert read_many(api, {}) == {}
    assert transport.queries == 0
