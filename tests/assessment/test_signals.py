"""An assessment's signals: each PromQL signal its own request, all at the same time (the
simulator's request log shows them), so a slow, empty or rejected query makes only its own signal
unknown, with its own note. The guard's batched query (split, worst value) is tested here too."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.adapters.http import HttpClient
from bot.adapters.prometheus import PrometheusAPI, Sample, worst_value
from bot.adapters.prometheus_batch import KEY_LABEL, split
from bot.assessment.signals import SignalReader
from bot.catalog.load import Service
from bot.demo import demo_catalog, query_values
from bot.rollback.assess import Reading, Signal
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import closed_port_url


@pytest.fixture
def sim() -> Iterator[PrometheusSimulator]:
    with PrometheusSimulator(query_values(), {"checkout": 503}) as started:
        yield started


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient() as client:
        yield client


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=5) as started:
        yield started


def checkout(sim: PrometheusSimulator) -> Service:
    service = demo_catalog(sim.url).services["checkout"]
    assert set(service.signals) == {
        Signal.ERROR_RATE,
        Signal.LATENCY_P95,
        Signal.USER_SESSIONS,
        Signal.DB_UP,
    }
    return service


def read(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor, url: str = ""
) -> dict[Signal, Reading]:
    prometheus = PrometheusAPI(url or sim.url, http.shared, timeout_seconds=2)
    readings = SignalReader(prometheus, http, pool).read(checkout(sim))
    assert readings[0].signal == Signal.HEALTH  # the health check first
    return {r.signal: r for r in readings}


def test_each_signal_is_its_own_request(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    service = checkout(sim)
    values = query_values()

    readings = read(sim, http, pool)

    assert sorted(sim.queries) == sorted(service.signals.values())
    for signal, promql in service.signals.items():
        assert readings[signal] == Reading(signal, values[promql], "")
    assert readings[Signal.HEALTH] == Reading(Signal.HEALTH, 0.0, "HTTP 503")


def test_a_slow_query_blinds_only_its_own_signal(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    """During an incident one heavy query (p95 latency) may time out: the error rate and the
    database must still be read, or a firing critical trigger would go unseen."""
    service = checkout(sim)
    sim.set_query_delay(service.signals[Signal.LATENCY_P95], 2.0)
    prometheus = PrometheusAPI(sim.url, http.shared, timeout_seconds=0.3)

    readings = {r.signal: r for r in SignalReader(prometheus, http, pool).read(service)}

    assert readings[Signal.LATENCY_P95].value is None
    assert readings[Signal.LATENCY_P95].note, readings[Signal.LATENCY_P95]
    values = query_values()
    for signal in (Signal.ERROR_RATE, Signal.USER_SESSIONS, Signal.DB_UP):
        assert readings[signal] == Reading(signal, values[service.signals[signal]], "")


def test_a_signal_without_data_is_unknown_alone(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    service = checkout(sim)
    sim.set_value(service.signals[Signal.DB_UP], None)
    sim.set_value(service.signals[Signal.LATENCY_P95], math.nan)

    readings = read(sim, http, pool)

    assert readings[Signal.DB_UP] == Reading(Signal.DB_UP, None, "no series")
    assert readings[Signal.LATENCY_P95] == Reading(Signal.LATENCY_P95, None, "query returned NaN")
    values = query_values()
    for signal in (Signal.ERROR_RATE, Signal.USER_SESSIONS):
        assert readings[signal].value == values[service.signals[signal]]


def test_a_rejected_query_blinds_only_itself(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    service = checkout(sim)
    bad = service.signals[Signal.ERROR_RATE]
    sim.set_error(bad, "1:5: parse error: unexpected <by>")

    readings = read(sim, http, pool)

    assert sorted(sim.queries) == sorted(service.signals.values())
    assert readings[Signal.ERROR_RATE] == Reading(
        Signal.ERROR_RATE, None, "query rejected: 1:5: parse error: unexpected <by>"
    )
    values = query_values()
    for signal in (Signal.LATENCY_P95, Signal.USER_SESSIONS, Signal.DB_UP):
        assert readings[signal].value == values[service.signals[signal]]


def test_prometheus_down_makes_every_signal_unknown(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    readings = read(sim, http, pool, url=closed_port_url())

    for signal in checkout(sim).signals:
        assert readings[signal] == Reading(signal, None, "Prometheus unreachable (ConnectError)")
    assert readings[Signal.HEALTH].note == "HTTP 503"  # the health URL is no Prometheus query
    assert sim.query_count == 0


def test_without_prometheus_every_signal_says_so(
    sim: PrometheusSimulator, http: HttpClient, pool: ThreadPoolExecutor
) -> None:
    readings = SignalReader(None, http, pool).read(checkout(sim))

    assert [r.note for r in readings if r.signal != Signal.HEALTH] == [
        "PROMETHEUS_URL is not set"
    ] * 4
    assert sim.query_count == 0


def test_split_gives_each_query_its_series() -> None:
    samples = [
        Sample({KEY_LABEL: "1", "pod": "a"}, 3.0),
        Sample({KEY_LABEL: "0"}, 1.0),
        Sample({KEY_LABEL: "1", "pod": "b"}, 5.0),
        Sample({KEY_LABEL: "01"}, 7.0),  # not a position this batch wrote: nobody's
        Sample({}, 9.0),
    ]

    tagged = split(samples, 3)

    assert [[s.value for s in found] for found in tagged] == [[1.0], [3.0, 5.0], []]


def test_worst_value_per_direction() -> None:
    assert worst_value([3.0, math.nan, 1.0], "min").value == 1.0
    assert worst_value([3.0, math.nan, 1.0], "max").value == 3.0
    assert worst_value([math.nan], "max").note == "query returned NaN"
    assert worst_value([], "min").note == "no series"
