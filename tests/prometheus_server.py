"""A real Prometheus for the integration tests, filled with backfilled synthetic series.

- ``write_openmetrics`` renders ``Series`` as an OpenMetrics text file that
  ``promtool tsdb create-blocks-from openmetrics`` (Prometheus 2.42) accepts;
- ``RealPrometheus`` backfills that into a temporary TSDB, runs ``/usr/bin/prometheus`` on a free
  127.0.0.1 port and removes everything on exit;
- ``checkout_like_series`` builds the series behind the four PromQL signals of a service
  (``signal_queries`` gives the exact query strings);
- ``require_prometheus`` skips (or, with ``ROLLBACK_BOT_REQUIRE_SERVICES=1``, fails) the calling
  test when the binaries are missing.

Backfill quirks (checked against promtool 2.42):
- the file must end with ``# EOF`` and timestamps are in *seconds* (milliseconds are silently
  read as seconds, i.e. land ~50000 years in the future);
- samples of a series must be in ascending time order: out-of-order samples are dropped without
  an error;
- OpenMetrics counters are declared by family name (``# TYPE http_requests counter``) with
  samples named ``<family>_total``; counter-like series without the suffix (histogram
  ``_bucket``/``_count``/``_sum`` series given as plain series) are written as type ``unknown``,
  which is valid OpenMetrics and queries the same (the TSDB stores no types);
- ``--storage.tsdb.allow-overlapping-blocks`` is deprecated and a no-op in 2.42: overlapping blocks
  are always accepted, so no extra flag is needed.

Instant queries at time T only see samples in (T - 5m, T]: data generated with ``end=now``
answers ``rate(...[5m])`` for about 5 minutes (exactly for ~16 s, then up to 2.5 % low). A
long-lived fixture should pass ``end=time.time() + horizon``: samples "in the future" are stored
and simply ignored until their time comes.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from tests.loopback_daemon import LoopbackDaemon

__all__ = [
    "HISTOGRAM_BUCKETS",
    "PROMETHEUS_BIN",
    "PROMTOOL_BIN",
    "PrometheusBinaries",
    "RealPrometheus",
    "Series",
    "checkout_like_series",
    "require_prometheus",
    "signal_queries",
    "write_openmetrics",
]

PROMETHEUS_BIN = "/usr/bin/prometheus"
PROMTOOL_BIN = "/usr/bin/promtool"
REQUIRE_SERVICES_ENV = "ROLLBACK_BOT_REQUIRE_SERVICES"

Kind = Literal["counter", "gauge"]
ValueAt = float | Callable[[float], float]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# OpenMetrics generation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One time series to backfill.

    ``value`` is a constant or a function of the unix time ``t`` (seconds):
    - gauge: the sample value at ``t``;
    - counter: the per-second *rate* at ``t``; the written counter starts at ``initial`` and grows
      by ``rate(t) * step`` at every step, so ``rate(name[5m])`` evaluates to the given rate.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: Kind = "gauge"
    value: ValueAt = 0.0
    initial: float = 0.0

    def at(self, t: float) -> float:
        return float(self.value(t)) if callable(self.value) else float(self.value)


def _family(series: Series) -> tuple[str, str]:
    """(OpenMetrics family name, OpenMetrics type) of a series."""
    if series.kind == "gauge":
        return series.name, "gauge"
    if series.name.endswith("_total") and len(series.name) > len("_total"):
        return series.name.removesuffix("_total"), "counter"
    return series.name, "unknown"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _validate(series: Sequence[Series]) -> dict[str, list[Series]]:
    families: dict[str, list[Series]] = {}
    types: dict[str, str] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for s in series:
        if not _METRIC_NAME.match(s.name):
            raise ValueError(f"invalid metric name {s.name!r}")
        for label in s.labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} on {s.name}")
        key = (s.name, tuple(sorted(s.labels.items())))
        if key in seen:
            raise ValueError(f"duplicate series {s.name}{_label_text(s.labels)}")
        seen.add(key)
        family, om_type = _family(s)
        if types.setdefault(family, om_type) != om_type:
            raise ValueError(f"metric family {family!r} used as both {types[family]} and {om_type}")
        families.setdefault(family, []).append(s)
    return families


def sample_times(*, end: float, duration_s: int = 1800, step_s: int = 15) -> list[float]:
    """The sample timestamps (ms precision, ascending): ``end - duration_s`` … ``end``."""
    if step_s <= 0 or duration_s < 0:
        raise ValueError("step_s must be > 0 and duration_s >= 0")
    end_ms = round(end * 1000)
    return [(end_ms - i * step_s * 1000) / 1000 for i in range(duration_s // step_s, -1, -1)]


def openmetrics_lines(
    series: Sequence[Series], *, end: float, duration_s: int = 1800, step_s: int = 15
) -> Iterable[str]:
    """The lines (without newline) of the OpenMetrics exposition of ``series``."""
    times = sample_times(end=end, duration_s=duration_s, step_s=step_s)
    for family, members in _validate(series).items():
        yield f"# TYPE {family} {_family(members[0])[1]}"
        # OpenMetrics: all points of one series together, in ascending time order.
        for s in members:
            prefix = s.name + _label_text(s.labels)
            counter = s.initial
            for i, t in enumerate(times):
                if s.kind == "counter":
                    if i:
                        rate = s.at(t)
                        if not rate >= 0:
                            raise ValueError(f"counter {prefix} has rate {rate} at {t}")
                        counter += rate * step_s
                    value = counter
                else:
                    value = s.at(t)
                yield f"{prefix} {_format_value(value)} {t:.3f}"
    yield "# EOF"


def write_openmetrics(
    path: str | os.PathLike[str],
    series: Sequence[Series],
    *,
    end: float,
    duration_s: int = 1800,
    step_s: int = 15,
) -> Path:
    """Write ``series`` sampled every ``step_s`` over ``[end - duration_s, end]`` as OpenMetrics."""
    target = Path(path)
    with target.open("w", encoding="utf-8") as f:
        for line in openmetrics_lines(series, end=end, duration_s=duration_s, step_s=step_s):
            f.write(line)
            f.write("\n")
    return target


# ---------------------------------------------------------------------------------------------
# Scenario builder
# ---------------------------------------------------------------------------------------------

#: Finite ``le`` bounds of the latency histogram (Prometheus client defaults, extended to 2 min).
HISTOGRAM_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


def signal_queries(service: str) -> dict[str, str]:
    """The PromQL of the four signals for ``service``, exactly as the app issues them."""
    s = service.replace("\\", "\\\\").replace('"', '\\"')
    return {
        "error_rate": (
            f'sum(rate(http_requests_total{{service="{s}",code=~"5.."}}[5m]))'
            f' / sum(rate(http_requests_total{{service="{s}"}}[5m]))'
        ),
        "latency_p95_seconds": (
            "histogram_quantile(0.95, sum by (le) "
            f'(rate(http_request_duration_seconds_bucket{{service="{s}"}}[5m])))'
        ),
        "user_sessions_per_min": f'sum(rate(user_sessions_total{{service="{s}"}}[5m])) * 60',
        "db_up": f'min(pg_up{{service="{s}"}})',
    }


def latency_bucket_fractions(p95_seconds: float) -> list[float]:
    """Cumulative share of requests at or below each ``HISTOGRAM_BUCKETS`` bound (+Inf excluded).

    Shaped so that ``histogram_quantile(0.95, …)`` — linear interpolation inside the bucket that
    holds the 95th percentile — yields exactly ``p95_seconds``: the bucket ``(a, b]`` containing it
    gets 4 % of the requests, split around 0.95 in proportion to where ``p95_seconds`` lies in it.
    Below, each bucket holds half as many as the one above; above, 70 % of the rest per bucket.
    """
    if not HISTOGRAM_BUCKETS[0] <= p95_seconds <= HISTOGRAM_BUCKETS[-1]:
        # below the first bound histogram_quantile interpolates from 0 with no bucket to shape
        raise ValueError(
            f"p95_seconds must be in [{HISTOGRAM_BUCKETS[0]}, {HISTOGRAM_BUCKETS[-1]}]"
        )
    k = next(i for i, le in enumerate(HISTOGRAM_BUCKETS) if le >= p95_seconds)
    lower = HISTOGRAM_BUCKETS[k - 1] if k else 0.0
    upper = HISTOGRAM_BUCKETS[k]
    t = (p95_seconds - lower) / (upper - lower)
    width = 0.04
    at_lower, at_upper = 0.95 - t * width, 0.95 + (1 - t) * width
    fractions = [0.0] * len(HISTOGRAM_BUCKETS)
    fractions[k] = at_upper
    if k:
        fractions[k - 1] = at_lower
        for i in range(k - 2, -1, -1):
            fractions[i] = fractions[i + 1] / 2
    for i in range(k + 1, len(HISTOGRAM_BUCKETS)):
        fractions[i] = 1 - (1 - fractions[i - 1]) * 0.3
    return fractions


def checkout_like_series(
    service: str,
    *,
    error_ratio: float,
    p95_seconds: float,
    sessions_per_min: float,
    db_up: int,
    end: float,
    requests_per_s: float = 50.0,
    degraded_for_s: float = 900.0,
) -> list[Series]:
    """The series behind ``signal_queries(service)``, as a web service would export them.

    During the last ``degraded_for_s`` seconds before ``end`` (and after it) the service shows the
    requested state; before that it ran normally (0.1 % errors, p95 0.2 s, 40 sessions/min, DB up),
    as if a bad release went out ``degraded_for_s`` ago. Keep ``degraded_for_s`` >= 300 so that
    the 5-minute rate windows at ``end`` only see the requested state.

    Series: counters ``http_requests_total{service,code="200"|"500"}`` split by ``error_ratio``,
    ``http_request_duration_seconds_bucket{service,le}`` (+ ``_count``/``_sum``), counter
    ``user_sessions_total{service}`` and gauge ``pg_up{service}``.
    """
    if not 0 <= error_ratio <= 1:
        raise ValueError("error_ratio must be in [0, 1]")
    if sessions_per_min < 0 or requests_per_s <= 0:
        raise ValueError("sessions_per_min must be >= 0 and requests_per_s > 0")
    since = end - degraded_for_s

    def phase(before: float, after: float) -> Callable[[float], float]:
        return lambda t: after if t > since else before

    labels = {"service": service}
    fractions_now = latency_bucket_fractions(p95_seconds)
    fractions_before = latency_bucket_fractions(0.2)

    series = [
        Series(
            "http_requests_total",
            {**labels, "code": "200"},
            "counter",
            phase(requests_per_s * 0.999, requests_per_s * (1 - error_ratio)),
        ),
        Series(
            "http_requests_total",
            {**labels, "code": "500"},
            "counter",
            phase(requests_per_s * 0.001, requests_per_s * error_ratio),
        ),
    ]
    for le, before, now in zip(HISTOGRAM_BUCKETS, fractions_before, fractions_now, strict=True):
        series.append(
            Series(
                "http_request_duration_seconds_bucket",
                {**labels, "le": _format_value(le)},
                "counter",
                phase(requests_per_s * before, requests_per_s * now),
            )
        )
    series += [
        Series(
            "http_request_duration_seconds_bucket",
            {**labels, "le": "+Inf"},
            "counter",
            requests_per_s,
        ),
        Series("http_request_duration_seconds_count", labels, "counter", requests_per_s),
        Series(
            "http_request_duration_seconds_sum",
            labels,
            "counter",
            phase(
                requests_per_s * _mean_latency(fractions_before),
                requests_per_s * _mean_latency(fractions_now),
            ),
        ),
        Series("user_sessions_total", labels, "counter", phase(40 / 60, sessions_per_min / 60)),
        Series("pg_up", labels, "gauge", phase(1.0, float(db_up))),
    ]
    return series


def _mean_latency(fractions: Sequence[float]) -> float:
    """Rough mean latency of a bucket distribution (bucket midpoints, +Inf as twice the last)."""
    bounds = [0.0, *HISTOGRAM_BUCKETS, 2 * HISTOGRAM_BUCKETS[-1]]
    cumulative = [0.0, *fractions, 1.0]
    return sum(
        (cumulative[i + 1] - cumulative[i]) * (bounds[i] + bounds[i + 1]) / 2
        for i in range(len(cumulative) - 1)
    )


# ---------------------------------------------------------------------------------------------
# Binaries and the server
# ---------------------------------------------------------------------------------------------


class PrometheusBinaries(NamedTuple):
    prometheus: str
    promtool: str


def require_prometheus() -> PrometheusBinaries:
    """The prometheus and promtool binaries, or skip the test (fail if services are required)."""
    missing = [path for path in (PROMETHEUS_BIN, PROMTOOL_BIN) if not os.access(path, os.X_OK)]
    if missing:
        reason = (
            f"Prometheus integration test needs {' and '.join(missing)} "
            "(Debian/Ubuntu: apt-get install prometheus)"
        )
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_SERVICES_ENV}=1 forbids skipping")
        pytest.skip(reason)
    return PrometheusBinaries(PROMETHEUS_BIN, PROMTOOL_BIN)


_MINIMAL_CONFIG = """\
global:
  scrape_interval: 1m
  evaluation_interval: 1m
scrape_configs: []
"""


class RealPrometheus(LoopbackDaemon):
    """``with RealPrometheus(series) as prom: httpx.get(prom.url + "/api/v1/query", …)``.

    Backfills ``series`` sampled over ``[end - duration_s, end]`` (``end`` defaults to now) into a
    fresh temporary TSDB with promtool, then runs Prometheus on it with an empty scrape config (or
    ``config_text``) on a free 127.0.0.1 port. On exit the process is terminated and the
    directory removed.
    """

    name = "prometheus"

    def __init__(
        self,
        series: Sequence[Series] = (),
        *,
        end: float | None = None,
        duration_s: int = 1800,
        step_s: int = 15,
        startup_timeout_s: float = 30.0,
        binaries: PrometheusBinaries | None = None,
        config_text: str | None = None,
    ) -> None:
        super().__init__(startup_timeout_s)
        self.series = list(series)
        self.config_text = config_text  # a prometheus.yml (scrape configs, rule files) to run
        self.end = end
        self.duration_s = duration_s
        self.step_s = step_s
        self.binaries = binaries or PrometheusBinaries(PROMETHEUS_BIN, PROMTOOL_BIN)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def prepare(self, directory: Path) -> Path:
        self.data_dir.mkdir()
        if self.series:
            self._backfill()
        config = directory / "prometheus.yml"
        config.write_text(self.config_text or _MINIMAL_CONFIG, encoding="utf-8")
        return config

    def command(self, config: Path, port: int) -> list[str]:
        return [
            self.binaries.prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            "--log.level=info",
        ]

    def _backfill(self) -> None:
        source = write_openmetrics(
            self._dir / "backfill.om",
            self.series,
            end=time.time() if self.end is None else self.end,
            duration_s=self.duration_s,
            step_s=self.step_s,
        )
        done = subprocess.run(
            [
                self.binaries.promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stderr + done.stdout).strip().splitlines()[-30:]
            raise RuntimeError(
                f"promtool backfill failed (exit {done.returncode}):\n" + "\n".join(output)
            )
