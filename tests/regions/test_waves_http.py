"""Multi-region rollbacks through signed HTTP: kube simulators behind one kubeconfig with a
context each. Every region's calls reach its own API server only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.values import KubeTarget
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml
from tests.regions.clusters import NS, Clusters, clusters, region_yaml, until

REGIONS = {"eu-west-1": "eu", "us-east-1": "us"}
UNDO_PATCH = ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/checkout-api")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Clusters]:
    with clusters(tmp_path, "eu", "us") as found:
        yield found


def make(make_harness: Any, found: Clusters, regions: dict[str, str], **extra: str) -> Harness:
    text = catalog_yaml(region_yaml(regions, **extra))
    h: Harness = make_harness(text, prometheus_url=None, kube=found.client())
    return h


def image(found: Clusters, context: str) -> str:
    return found.client().deployment(KubeTarget(context, NS), "checkout-api").images["app"]


def patches(found: Clusters, context: str) -> list[str]:
    return [path for method, path, _, _ in found.writes(context) if method == "PATCH"]


def progress(slack: SlackSimulator) -> dict[str, Any]:
    (message,) = [m for m in slack.messages("C0DEPLOYS") if "Rollback #" in m.get("text", "")]
    return message


def thread_text(slack: SlackSimulator) -> str:
    return json.dumps(
        [c.params.get("text") for c in slack.calls_to("chat.postMessage")], ensure_ascii=False
    )


def test_waves_roll_back_every_region_on_its_own_cluster(make_harness: Any, two: Clusters) -> None:
    h = make(make_harness, two, REGIONS)
    resp = h.slash("run checkout --immediate bad release")
    h.wait_rollbacks()

    text = resp.json()["text"]
    assert "Rollback #1 of *checkout* started" in text
    assert "2 regions, wave by wave: eu-west-1 → us-east-1" in text
    assert "Partial" not in text
    assert image(two, "eu") == "shop/checkout:v2" and image(two, "us") == "shop/checkout:v2"
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    steps = h.bot.deps.repo.list_steps(1)
    eu = [s for s in steps if s.region == "eu-west-1"]
    us = [s for s in steps if s.region == "us-east-1"]
    assert len(eu) == len(us) == len(steps) // 2
    assert {s.wave for s in eu} == {0} and {s.wave for s in us} == {1}
    # the second wave started only once the first one's last step (its verification) ended
    assert max(s.finished_at for s in eu if s.finished_at) <= min(
        s.started_at for s in us if s.started_at
    )
    # each cluster got exactly its own rollback: one undo patch, nothing from the other region
    assert patches(two, "eu") == [UNDO_PATCH[1]] and patches(two, "us") == [UNDO_PATCH[1]]
    blocks = json.dumps(progress(h.slack)["blocks"], ensure_ascii=False)
    assert "*eu-west-1* — wave 1, rolled back" in blocks
    assert "*us-east-1* — wave 2, rolled back" in blocks
    assert "of the 15 min SLA" in blocks


def test_a_failed_wave_stops_the_later_ones_and_says_where_each_region_is(
    make_harness: Any, two: Clusters
) -> None:
    two.sims["eu"].inject("PATCH", "/deployments/checkout-api$", 403)
    h = make(make_harness, two, REGIONS)
    h.slash("run checkout --immediate bad release")
    h.wait_rollbacks()

    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    assert "wave 1 failed in eu-west-1" in (rollback.error or "")
    assert "Later waves not started: us-east-1" in (rollback.error or "")
    assert image(two, "us") == "shop/checkout:v3"  # never touched
    assert two.writes("us") == []
    us = [s for s in h.bot.deps.repo.list_steps(1) if s.region == "us-east-1"]
    assert {s.status for s in us} == {"pending"} and all(s.started_at is None for s in us)
    said = thread_text(h.slack)
    assert "Where each region is now" in said
    assert "*eu-west-1* (failed): checkout-api: revision 3 (app=shop/checkout:v3)" in said
    assert "*us-east-1* (waiting): checkout-api: revision 3 (app=shop/checkout:v3)" in said
    blocks = json.dumps(progress(h.slack)["blocks"], ensure_ascii=False)
    assert "*us-east-1* — wave 2, waiting" in blocks
    until(lambda: h.bot.deps.repo.get_review(1) is not None, "the review")
    review = h.bot.deps.repo.get_review(1).markdown  # type: ignore[union-attr]
    assert "## Timeline by region" in review
    assert "| eu-west-1 | 1 | failed |" in review
    assert "| us-east-1 | 2 | waiting |" in review
    assert "### eu-west-1" in review and "### us-east-1\n_Not started._" in review
    assert "eu-west-1: application: Roll checkout-api back to revision 2 failed" in review
    assert ":x: *eu-west-1: Roll checkout-api back to revision 2* failed" in blocks


def test_region_option_rolls_back_only_those_regions(make_harness: Any, two: Clusters) -> None:
    h = make(make_harness, two, REGIONS)
    resp = h.slash("run checkout --immediate --region us-east-1 bad release in the US")
    h.wait_rollbacks()

    text = resp.json()["text"]
    assert "*Partial rollback*: only us-east-1" in text
    assert "eu-west-1 is NOT rolled back" in text
    assert image(two, "us") == "shop/checkout:v2"
    assert image(two, "eu") == "shop/checkout:v3"
    assert two.writes("eu") == []  # not one write reached the other cluster
    assert {s.region for s in h.bot.deps.repo.list_steps(1)} == {"us-east-1"}
    assert h.bot.deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]


def test_an_unknown_region_is_refused_and_nothing_is_stored(
    make_harness: Any, two: Clusters
) -> None:
    h = make(make_harness, two, REGIONS)
    text = h.slash("run checkout --immediate --region mars-1 why").json()["text"]

    assert "checkout has no region mars-1 (its regions: eu-west-1, us-east-1)" in text
    assert h.bot.deps.repo.list_rollbacks() == []
    assert two.writes("eu") == [] and two.writes("us") == []


def test_regions_of_a_wave_run_at_the_same_time(make_harness: Any, tmp_path: Path) -> None:
    regions = {"eu-west-1": "eu", "us-east-1": "us", "ap-south-1": "ap"}
    with clusters(tmp_path, "eu", "us", "ap") as three:
        for context in ("us", "ap"):
            three.sims[context].set_ready_delay(0.5)  # the rollout wait takes half a second
        h = make(make_harness, three, regions, waves="[[eu-west-1], [us-east-1, ap-south-1]]")
        resp = h.slash("run checkout --immediate bad release")
        h.wait_rollbacks()

        assert "eu-west-1 → us-east-1 + ap-south-1" in resp.json()["text"]
        steps = h.bot.deps.repo.list_steps(1)
        us = [s for s in steps if s.region == "us-east-1"]
        ap = [s for s in steps if s.region == "ap-south-1"]
        assert {s.wave for s in us + ap} == {1}
        # each started before the other finished: they overlapped
        assert min(s.started_at for s in ap if s.started_at) < max(  # type: ignore[type-var]
            s.finished_at for s in us if s.finished_at
        )
        assert min(s.started_at for s in us if s.started_at) < max(  # type: ignore[type-var]
            s.finished_at for s in ap if s.finished_at
        )
        for context in ("eu", "us", "ap"):
            assert image(three, context) == "shop/checkout:v2"
            assert patches(three, context) == [UNDO_PATCH[1]]
