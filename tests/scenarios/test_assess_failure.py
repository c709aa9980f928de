"""An assessment that fails is answered once, with what failed: not a second time with the
generic internal-error message of the work pool; the failure is still logged and counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml


def test_a_failed_assessment_is_answered_once(
    make_harness: Any,
    prometheus: PrometheusSimulator,
    slack: SlackSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout")))
    h: Harness = make_harness(text, prometheus_url=prometheus.url)
    # The probe pool is gone (as while the process stops): reading the signals raises.
    h.bot.deps.reader.pool.shutdown(wait=True)
    caplog.set_level(logging.ERROR, logger="bot.runtime.work")

    resp = h.slash("assess checkout")
    assert resp.status_code == 200
    assert "Assessing *checkout*" in resp.json()["text"]
    h.wait_idle()

    (answer,) = [str(c.params["text"]) for c in slack.calls_to("response_url")]
    assert answer.startswith(":x: Assessment #1 of *checkout* failed (RuntimeError).")
    assert "Nothing was changed" in answer
    assert "internal error" not in answer
    assert slack.calls_to("chat.postMessage") == []  # no assessment message either
    assessment = h.bot.deps.repo.get_assessment(1)
    assert assessment is not None and assessment.status == "failed"
    assert assessment.error is not None and assessment.error.startswith("RuntimeError: ")
    assert h.bot.deps.work.failures == 1  # still counted (metrics, the console's exit status)
    (logged,) = [r for r in caplog.records if "assessment of checkout failed" in r.getMessage()]
    assert logged.exc_info is not None  # with the traceback of what failed
