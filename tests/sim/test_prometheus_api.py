from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bot.adapters.prometheus_batch import KEY_LABEL, batch_query
from bot.sim.prometheus_api import PrometheusSimulator, format_sample_value

ERROR_RATE = (
    'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m]))'
    ' / sum(rate(http_requests_total{service="checkout"}[5m]))'
)
DB_UP = 'min(pg_up{service="checkout"})'


@pytest.fixture
def sim() -> Iterator[PrometheusSimulator]:
    with PrometheusSimulator(values={ERROR_RATE: 0.25}, health={"payments": 503}) as started:
        yield started


@pytest.fixture
def client(sim: PrometheusSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=5.0) as c:
        yield c


def test_query_answered_in_prometheus_format(
    sim: PrometheusSimulator, client: httpx.Client
) -> None:
    before = time.time()
    response = client.get("/api/v1/query", params={"query": ERROR_RATE})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    [sample] = body["data"]["result"]
    assert sample["metric"] == {}
    timestamp, value = sample["value"]
    assert isinstance(timestamp, float)
    assert before - 1 <= timestamp <= time.time() + 1
    assert value == "0.25"
    assert sim.query_count == 1
    assert sim.queries == [ERROR_RATE]


def test_unconfigured_query_has_no_series(sim: PrometheusSimulator, client: httpx.Client) -> None:
    response = client.get("/api/v1/query", params={"query": DB_UP})

    assert response.status_code == 200
    assert response.json() == {"status": "success", "data": {"resultType": "vector", "result": []}}


def test_set_value_none_removes_the_series(sim: PrometheusSimulator, client: httpx.Client) -> None:
    sim.set_value(ERROR_RATE, None)

    body = client.get("/api/v1/query", params={"query": ERROR_RATE}).json()

    assert body["data"]["result"] == []


def test_nan_value(sim: PrometheusSimulator, client: httpx.Client) -> None:
    sim.set_value(DB_UP, float("nan"))

    body = client.get("/api/v1/query", params={"query": DB_UP}).json()

    assert body["data"]["result"][0]["value"][1] == "NaN"


def test_configured_error_is_bad_data(sim: PrometheusSimulator, client: httpx.Client) -> None:
    sim.set_error(ERROR_RATE, "1:5: parse error: unexpected <by>")

    response = client.get("/api/v1/query", params={"query": ERROR_RATE})

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "errorType": "bad_data",
        "error": "1:5: parse error: unexpected <by>",
    }
    assert sim.query_count == 1

    sim.set_value(ERROR_RATE, 0.5)  # a value replaces the error
    assert client.get("/api/v1/query", params={"query": ERROR_RATE}).status_code == 200


def test_missing_query_parameter_is_bad_data(client: httpx.Client) -> None:
    response = client.get("/api/v1/query")

    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"


def test_post_form_query_and_explicit_time(sim: PrometheusSimulator, client: httpx.Client) -> None:
    sim.set_value(DB_UP, 1)

    response = client.post("/api/v1/query", data={"query": DB_UP, "time": "1700000000.5"})

    assert response.status_code == 200
    [sample] = response.json()["data"]["result"]
    assert sample["value"] == [1700000000.5, "1"]
    assert sim.queries == [DB_UP]


def test_health_status(sim: PrometheusSimulator, client: httpx.Client) -> None:
    sim.set_health("orders", 500)

    default = client.get("/health/checkout")
    configured = client.get("/health/payments")
    changed = client.get("/health/orders")

    assert default.status_code == 200
    assert default.json() == {"service": "checkout", "status": "ok"}
    assert configured.status_code == 503
    assert configured.json() == {"service": "payments", "status": "unhealthy"}
    assert changed.status_code == 500
    assert sim.health_url("orders") == f"{sim.url}/health/orders"
    assert sim.query_count == 0


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/api/v1/labels").status_code == 404


def test_delay_is_honoured_concurrently(sim: PrometheusSimulator) -> None:
    """Two delayed requests overlap: together they take one delay, far from two (the wide
    margin keeps a loaded machine from failing it; the figures live in benchmarks/)."""
    sim.set_delay(1.0)

    def fetch(path: str) -> int:
        with httpx.Client(base_url=sim.url, timeout=5.0) as c:
            return c.get(path, params={"query": ERROR_RATE}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(fetch, ["/api/v1/query", "/health/checkout"]))
    elapsed = time.monotonic() - started

    assert statuses == [200, 200]
    assert 1.0 <= elapsed < 1.8  # sequential would be 2.0


def test_stop_is_idempotent_and_url_needs_start() -> None:
    sim = PrometheusSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    sim.start()
    sim.stop()
    sim.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.25, "0.25"),
        (1.0, "1"),
        (100.0, "100"),
        (1e-05, "0.00001"),
        (-0.0, "-0"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_value_formatting_matches_prometheus(value: float, expected: str) -> None:
    assert format_sample_value(value) == expected


def test_batched_query_answers_each_part_tagged(
    sim: PrometheusSimulator, client: httpx.Client
) -> None:
    sim.set_value(DB_UP, 1)
    unset = 'sum(rate(http_requests_total{service="nosuch"}[5m]))'
    batch = batch_query([("a", ERROR_RATE), ("b", unset), ("c", DB_UP)])

    response = client.post("/api/v1/query", data={"query": batch, "time": "1700000000"})

    assert response.status_code == 200
    result = response.json()["data"]["result"]
    assert [(s["metric"], s["value"][1]) for s in result] == [
        ({KEY_LABEL: "0"}, "0.25"),
        ({KEY_LABEL: "2"}, "1"),
    ]
    assert sim.queries == [batch]  # one request, recorded as sent


def test_batched_query_with_a_bad_part_is_rejected(
    sim: PrometheusSimulator, client: httpx.Client
) -> None:
    sim.set_error(DB_UP, "1:5: parse error: unexpected <by>")

    response = client.post(
        "/api/v1/query", data={"query": batch_query([("a", ERROR_RATE), ("b", DB_UP)])}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "1:5: parse error: unexpected <by>"
