"""What a person reads at 3 am: who did what and why, said plainly; user text never pings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from tests.conftest import Harness, catalog_yaml
from tests.scenarios.test_approval_flow import request_message, settle
from tests.scenarios.test_rollback_flows import until

NS = "shop"


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "slow-api", images=["a:1", "a:2"])
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


@pytest.fixture
def h(make_harness: Any, kube: KubernetesClient) -> Harness:
    text = catalog_yaml(
        "  slow:\n    namespace: shop\n    deployment: slow-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1, U0APPROVER2]\n"
        "    phases:\n      preparation:\n        - {kind: wait, seconds: 600, name: Soak}\n"
        "      application:\n        - {kind: rollout_undo}\n"
    )
    harness: Harness = make_harness(text, prometheus_url=None, kube=kube)
    return harness


def everything_said(h: Harness) -> str:
    return json.dumps([c.params for c in h.slack.calls if c.method.startswith("chat.")])


def test_an_abort_records_and_shows_who_and_why(h: Harness) -> None:
    h.slash("run slow --immediate bad release")
    until(lambda: h.bot.deps.repo.list_steps(1)[0].status == "running", "the wait")

    h.slash("abort 1 wrong target <@U0EVIL> <!channel>")
    h.wait_rollbacks()
    settle(h)

    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "aborted"
    assert r.error == "aborted by <@U0ONCALL1>: wrong target @U0EVIL <!channel>"
    said = everything_said(h)
    assert "aborted by <@U0ONCALL1>: wrong target @U0EVIL" in said
    assert "<@U0EVIL>" not in said and "<!channel>" not in said
    (event,) = h.bot.deps.repo.list_audit_events(kind="rollback.aborted")
    assert "aborted by <@U0ONCALL1>" in event.detail["error"]


def test_the_requester_is_told_when_a_request_is_rejected(h: Harness) -> None:
    h.slash("plan slow slow since a:2", user_id="U0ONCALL1")
    request_message(h)
    h.slash("reject 1 not during the sale <@U0EVIL>", user_id="U0APPROVER1")
    settle(h)

    (dm,) = [c for c in h.slack.calls_to("chat.postMessage") if c.params["channel"] == "U0ONCALL1"]
    assert dm.params["text"] == (
        ":no_entry: Your rollback request #1 of *slow* was rejected by <@U0APPROVER1>:"
        " not during the sale @U0EVIL. Nothing will run; plan it again if it is still needed."
    )
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.error == "not during the sale @U0EVIL"


def test_a_request_whose_dry_run_would_fail_is_not_posted_for_approval(
    make_harness: Any, kube: KubernetesClient
) -> None:
    text = catalog_yaml(
        "  web:\n    namespace: shop\n    deployment: slow-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
        "    phases:\n      stop_traffic:\n"
        "        - {kind: switch_selector, service: web, selector: {version: blue}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("plan web green is broken", user_id="U0ONCALL1")
    settle(h)

    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "cancelled"
    assert r.error is not None and "not posted for approval: its dry run says step 1" in r.error
    assert not [m for m in h.slack.messages("C0DEPLOYS") if "Rollback request #1" in m["text"]]
    (dm,) = [c for c in h.slack.calls_to("chat.postMessage") if c.params["channel"] == "U0ONCALL1"]
    assert "was not posted for approval: its dry run says step 1" in dm.params["text"]
    assert 'services "web" not found' in dm.params["text"] or "not found" in dm.params["text"]


def test_an_immediate_run_says_why_or_takes_the_assessments_decision(
    make_harness: Any, kube: KubernetesClient
) -> None:
    text = catalog_yaml(
        "  slow:\n    namespace: shop\n    deployment: slow-api\n    responders: [U0ONCALL1]\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)

    refused = h.slash("run slow --immediate").json()["text"]
    assert refused.startswith(":x: Say why: `/rollback run slow --immediate <reason>`")
    assert h.bot.deps.repo.list_rollbacks() == []

    h.slash("assess slow")
    settle(h)
    started = h.slash("run slow --immediate").json()["text"]
    assert "Rollback #1 of *slow* started" in started
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.assessment_id == 1
    assert r.reason.startswith("assessment #1: MONITOR (critical 0, total 0)")
    # the rollback changes what an assessment reads: the next ask is not answered by #1
    until(lambda: "Assessing" in h.slash("assess slow").json()["text"], "a new one", timeout=3)


def test_an_immediate_run_does_not_take_an_assessment_a_newer_failed_one_replaced(
    make_harness: Any, kube: KubernetesClient
) -> None:
    """The recent assessment is the newest one: when that failed, an older decision no longer
    says how the service is, so the person must say why (as a planned request shows no basis)."""
    text = catalog_yaml(
        "  slow:\n    namespace: shop\n    deployment: slow-api\n    responders: [U0ONCALL1]\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    h.slash("assess slow")
    settle(h)
    repo, now = h.bot.deps.repo, h.bot.deps.clock()
    failed = repo.create_assessment("slow", "U0ONCALL1", "C0DEPLOYS", now)
    repo.fail_assessment(failed, "PrometheusError: unreachable", now)

    refused = h.slash("run slow --immediate").json()["text"]
    assert refused.startswith(":x: Say why: `/rollback run slow --immediate <reason>`")
    assert repo.list_rollbacks() == []


def test_an_at_that_is_no_time_is_not_echoed_as_a_ping_or_a_link(h: Harness) -> None:
    text = h.slash("plan slow --at <!channel> slow since a:2").json()["text"]
    assert "is not a time" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    link = h.slash("plan slow --at <https://evil.example|x> slow").json()["text"]
    assert "<https://evil.example" not in link
