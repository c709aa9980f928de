from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import prometheus_server
from tests.prometheus_server import (
    RealPrometheus,
    Series,
    checkout_like_series,
    latency_bucket_fractions,
    require_prometheus,
    signal_queries,
    write_openmetrics,
)

pytestmark = pytest.mark.prometheus

CRITICAL = {"error_ratio": 0.25, "p95_seconds": 6.0, "sessions_per_min": 0.2, "db_up": 0}
HEALTHY = {"error_ratio": 0.001, "p95_seconds": 0.2, "sessions_per_min": 40.0, "db_up": 1}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[RealPrometheus]:
    binaries = require_prometheus()
    end = time.time()
    series = checkout_like_series(
        "checkout",
        error_ratio=0.25,
        p95_seconds=6.0,
        sessions_per_min=0.2,
        db_up=0,
        end=end,
    ) + checkout_like_series(
        "catalog",
        error_ratio=0.001,
        p95_seconds=0.2,
        sessions_per_min=40.0,
        db_up=1,
        end=end,
    )
    with RealPrometheus(series, end=end, binaries=binaries) as prom:
        yield prom


@pytest.fixture(scope="module")
def client(prometheus: RealPrometheus) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=prometheus.url, timeout=10.0) as c:
        yield c


def instant_query(client: httpx.Client, promql: str) -> list[float]:
    response = client.post("/api/v1/query", data={"query": promql})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    return [float(sample["value"][1]) for sample in body["data"]["result"]]


@pytest.mark.parametrize(
    ("service", "expected"),
    [("checkout", CRITICAL), ("catalog", HEALTHY)],
    ids=["critical", "healthy"],
)
def test_signals_evaluate_to_the_scenario(
    client: httpx.Client, service: str, expected: dict[str, float]
) -> None:
    queries = signal_queries(service)

    error_rate = instant_query(client, queries["error_rate"])
    p95 = instant_query(client, queries["latency_p95_seconds"])
    sessions = instant_query(client, queries["user_sessions_per_min"])
    db_up = instant_query(client, queries["db_up"])

    assert error_rate == [pytest.approx(expected["error_ratio"], rel=0.01)]
    assert p95 == [pytest.approx(expected["p95_seconds"], rel=0.05)]
    # rate() extrapolation may under-count by up to 2.5 % once "now" is > 16 s past the data.
    assert sessions == [pytest.approx(expected["sessions_per_min"], rel=0.05)]
    assert db_up == [expected["db_up"]]


def test_unknown_service_has_no_series(client: httpx.Client) -> None:
    for promql in signal_queries("nonexistent").values():
        assert instant_query(client, promql) == []


def test_get_query_and_exact_query_text(client: httpx.Client) -> None:
    promql = (
        'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m]))'
        ' / sum(rate(http_requests_total{service="checkout"}[5m]))'
    )
    assert signal_queries("checkout")["error_rate"] == promql

    response = client.get("/api/v1/query", params={"query": promql})

    assert response.status_code == 200
    [sample] = response.json()["data"]["result"]
    assert sample["metric"] == {}
    assert float(sample["value"][1]) == pytest.approx(0.25, rel=0.01)


def test_prometheus_rejects_bad_promql_like_the_simulator(client: httpx.Client) -> None:
    response = client.post("/api/v1/query", data={"query": "sum(rate(foo[5m])"})

    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"


def test_stop_removes_the_data_dir() -> None:
    binaries = require_prometheus()
    prom = RealPrometheus([Series("pg_up", {"service": "x"}, "gauge", 1.0)], binaries=binaries)
    with prom:
        data_dir = prom.data_dir
        assert any(data_dir.iterdir())  # the backfilled block
        assert instant_query_url(prom.url, 'pg_up{service="x"}') == [1.0]
    assert not data_dir.exists()


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_startup_failure_reports_the_log_tail(tmp_path: Path) -> None:
    binaries = require_prometheus()
    fake = _script(tmp_path / "prometheus", 'echo "level=error msg=boom" >&2; exit 3')
    prom = RealPrometheus(binaries=binaries._replace(prometheus=fake))

    with pytest.raises(RuntimeError, match=r"(?s)status 3.*msg=boom"):
        prom.start()
    with pytest.raises(RuntimeError):
        _ = prom.url  # cleaned up


def test_backfill_failure_reports_promtool_output(tmp_path: Path) -> None:
    binaries = require_prometheus()
    fake = _script(tmp_path / "promtool", 'echo "next: data does not end with # EOF" >&2; exit 1')
    prom = RealPrometheus([Series("pg_up")], binaries=binaries._replace(promtool=fake))

    with pytest.raises(
        RuntimeError, match=r"(?s)promtool backfill failed.*does not end with # EOF"
    ):
        prom.start()


def instant_query_url(url: str, promql: str) -> list[float]:
    with httpx.Client(base_url=url, timeout=10.0) as c:
        return instant_query(c, promql)


# -- pure helpers (no Prometheus process) ------------------------------------------------------


def test_openmetrics_file_layout(tmp_path: Path) -> None:
    path = write_openmetrics(
        tmp_path / "x.om",
        [
            Series("http_requests_total", {"code": "200", "service": 'a"b'}, "counter", 2.0),
            Series("http_request_duration_seconds_bucket", {"le": "+Inf"}, "counter", 1.0),
            Series("pg_up", {}, "gauge", lambda t: 0.0 if t > 1000 else 1.0),
        ],
        end=1030.0,
        duration_s=30,
        step_s=15,
    )

    assert path.read_text().splitlines() == [
        "# TYPE http_requests counter",
        'http_requests_total{code="200",service="a\\"b"} 0.0 1000.000',
        'http_requests_total{code="200",service="a\\"b"} 30.0 1015.000',
        'http_requests_total{code="200",service="a\\"b"} 60.0 1030.000',
        "# TYPE http_request_duration_seconds_bucket unknown",
        'http_request_duration_seconds_bucket{le="+Inf"} 0.0 1000.000',
        'http_request_duration_seconds_bucket{le="+Inf"} 15.0 1015.000',
        'http_request_duration_seconds_bucket{le="+Inf"} 30.0 1030.000',
        "# TYPE pg_up gauge",
        "pg_up 1.0 1000.000",
        "pg_up 0.0 1015.000",
        "pg_up 0.0 1030.000",
        "# EOF",
    ]


def test_openmetrics_rejects_duplicates_and_type_clashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        write_openmetrics(
            tmp_path / "a.om", [Series("pg_up"), Series("pg_up")], end=0.0, duration_s=0
        )
    with pytest.raises(ValueError, match="both"):
        write_openmetrics(
            tmp_path / "b.om",
            [Series("foo_total", kind="counter"), Series("foo", kind="gauge")],
            end=0.0,
        )


@pytest.mark.parametrize("p95", [0.005, 0.007, 0.2, 0.25, 1.7, 6.0, 10.0, 45.0, 120.0])
def test_bucket_fractions_interpolate_to_p95(p95: float) -> None:
    fractions = latency_bucket_fractions(p95)
    bounds = [0.0, *prometheus_server.HISTOGRAM_BUCKETS]
    cumulative = [0.0, *fractions]

    assert cumulative == sorted(cumulative)
    assert fractions[-1] < 1
    # histogram_quantile: first bucket whose cumulative share reaches 0.95, linear inside it.
    i = next(i for i, f in enumerate(cumulative) if f >= 0.95)
    lo, hi = bounds[i - 1], bounds[i]
    share = (0.95 - cumulative[i - 1]) / (cumulative[i] - cumulative[i - 1])
    assert lo + (hi - lo) * share == pytest.approx(p95, rel=1e-9)


@pytest.mark.parametrize("p95", [0.0, 0.001, 121.0])
def test_bucket_fractions_reject_p95_outside_the_buckets(p95: float) -> None:
    with pytest.raises(ValueError, match="p95_seconds"):
        latency_bucket_fractions(p95)


def test_require_prometheus_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_server, "PROMETHEUS_BIN", "/nonexistent/prometheus")

    monkeypatch.delenv(prometheus_server.REQUIRE_SERVICES_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/prometheus"):
        require_prometheus()

    monkeypatch.setenv(prometheus_server.REQUIRE_SERVICES_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        require_prometheus()
