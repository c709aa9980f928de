"""A multi-region rollback that is also a `--phases` subset, through signed HTTP: every region
runs the same phases (each checked on its own cluster), the skipped ones are stored as such per
region, a region counts as rolled back once its selected phases ran, and `--region` narrows it
further. Also: a rehearsal of a multi-region service never reaches the production regions, and
a readiness drill checks the target and the permissions in every region."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import parse_catalog
from bot.regions.status import ROLLED_BACK, by_region, region_finished, region_status
from bot.rollback.command import parse_command
from bot.rollback.phases import NOT_SELECTED
from tests.conftest import Harness, catalog_yaml
from tests.regions.clusters import IMAGES, NS, Clusters, clusters, region_yaml, until

REGIONS = {"eu-west-1": "eu", "us-east-1": "us"}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Clusters]:
    with clusters(tmp_path, "eu", "us") as found:
        yield found


def make(make_harness: Any, found: Clusters, **extra: str) -> Harness:
    text = catalog_yaml(region_yaml(REGIONS, **extra))
    h: Harness = make_harness(text, prometheus_url=None, kube=found.client())
    return h


def image(found: Clusters, context: str) -> str:
    return found.client().deployment(KubeTarget(context, NS), "checkout-api").images["app"]


def changes(found: Clusters, context: str) -> list[tuple[str, str, str | None, str]]:
    return [w for w in found.writes(context) if w[0] != "GET"]


def test_every_region_runs_only_the_selected_phases(make_harness: Any, two: Clusters) -> None:
    h = make(make_harness, two)
    text = h.slash("run checkout --immediate --phases application bad release").json()["text"]
    h.wait_rollbacks()

    assert "phases application (skipped: preparation)" in text
    assert "2 regions, wave by wave: eu-west-1 → us-east-1" in text
    assert image(two, "eu") == "shop/checkout:v2" and image(two, "us") == "shop/checkout:v2"
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    assert rollback.phases == ["application"]
    regions = by_region(h.bot.deps.repo.list_steps(1))
    assert list(regions) == ["eu-west-1", "us-east-1"]
    for own in regions.values():
        skipped = [s for s in own if s.phase == "preparation"]
        assert skipped and all(s.status == "skipped" for s in skipped)
        assert all(s.error == NOT_SELECTED and s.started_at is None for s in skipped)
        assert all(s.status == "succeeded" for s in own if s.phase == "application")
        # the skipped steps never run, yet the region is done (and its SLA clock stopped)
        assert region_status(own) == ROLLED_BACK and region_finished(own) is not None
    (progress,) = [
        m for m in h.slack.messages("C0DEPLOYS") if "Rollback #1" in str(m.get("text", ""))
    ]
    blocks = json.dumps(progress["blocks"], ensure_ascii=False)
    assert "*eu-west-1* — wave 1, rolled back" in blocks
    assert "*us-east-1* — wave 2, rolled back" in blocks
    assert "stopped part-way" not in blocks
    assert "Preparation — skipped" in blocks
    assert "2/2 steps done" not in progress["text"]  # counts are about its own steps
    assert "4/4 steps done" in progress["text"]


def test_a_subset_breaking_the_rules_is_refused_once_for_all_regions(
    make_harness: Any, two: Clusters
) -> None:
    h = make(make_harness, two, health_url="http://127.0.0.1:9/healthz")
    text = h.slash("run checkout --immediate --phases application why").json()["text"]

    assert "leaves out verification" in text
    assert "eu-west-1:" not in text  # the rule is about the plan, not a region
    assert h.bot.deps.repo.list_rollbacks() == []
    assert changes(two, "eu") == [] and changes(two, "us") == []


def test_a_planned_rollback_of_some_regions_and_some_phases(
    make_harness: Any, two: Clusters
) -> None:
    h = make(make_harness, two)
    answer = h.slash(
        "plan checkout --region us-east-1 --phases application bad release in the US"
    ).json()["text"]

    assert "Rollback request #1 of *checkout* is waiting" in answer
    assert "Phases: application (skipped: preparation)." in answer
    assert "*Partial rollback*: only us-east-1" in answer
    until(
        lambda: any("Rollback request #1" in str(c.params.get("text")) for c in h.posted()),
        "the request message",
    )
    (request,) = [
        json.dumps(c.params, ensure_ascii=False)
        for c in h.posted()
        if "Rollback request #1" in str(c.params.get("text"))
    ]
    assert "*Phases* application (skipped: preparation)" in request
    assert "*Regions* *Partial rollback*: only us-east-1" in request

    h.slash("approve 1", user_id="U0APPROVER1")
    until(
        lambda: h.bot.deps.repo.get_rollback(1).status == "succeeded",  # type: ignore[union-attr]
        "the approved rollback",
    )
    h.wait_rollbacks()

    assert image(two, "us") == "shop/checkout:v2" and image(two, "eu") == "shop/checkout:v3"
    assert changes(two, "eu") == []
    steps = h.bot.deps.repo.list_steps(1)
    assert {s.region for s in steps} == {"us-east-1"}
    assert [s.status for s in steps if s.phase == "preparation"] == ["skipped"]


def test_the_grammar_takes_regions_and_phases_together() -> None:
    cmd = parse_command(
        "run checkout --immediate --phases application, verification --region eu-west-1, us-east-1"
        " it broke"
    )
    assert cmd.phases == ("application", "verification")
    assert cmd.regions == ("eu-west-1", "us-east-1")
    assert cmd.reason == "it broke"
    plan = parse_command("plan checkout --region us-east-1 --phases application why")
    assert plan.regions == ("us-east-1",) and plan.phases == ("application",)


def test_a_rehearsal_of_a_multi_region_service_acts_on_staging_only() -> None:
    text = catalog_yaml(region_yaml(REGIONS, staging="{context: stg, namespace: shop-staging}"))
    catalog = parse_catalog(text)
    twin = catalog.target_of("checkout@staging")

    assert twin is not None
    assert (twin.context, twin.namespace) == ("stg", "shop-staging")
    assert twin.regions == () and twin.waves == () and twin.region is None
    assert twin.spec.regions is None
    assert {s.region for s in twin.plan(None).steps} == {None}


def test_a_drill_checks_the_target_and_permissions_in_every_region(
    make_harness: Any, tmp_path: Path
) -> None:
    with clusters(tmp_path, "eu", "us", seed=False) as two:
        two.sims["eu"].seed_deployment(NS, "checkout-api", images=IMAGES)
        two.sims["us"].seed_deployment(NS, "checkout-api", images=IMAGES[:1])  # nothing to undo
        h = make(make_harness, two)
        assert "Readiness drill" in h.slash("drill checkout").json()["text"]
        h.wait_idle()
        _assert_drilled_in_each_region(h, two)


def _assert_drilled_in_each_region(h: Harness, two: Clusters) -> None:
    drill = h.bot.deps.repo.last_drill("checkout")
    assert drill is not None and drill.status == "failed"
    states = {c["name"]: c["state"] for c in drill.checks}
    assert states["Target (eu-west-1)"] == "ok"
    assert states["Target (us-east-1)"] == "failed"  # its own cluster's history was read
    assert states["Permissions (eu-west-1)"] == states["Permissions (us-east-1)"] == "ok"
    assert "Target" not in states and "Permissions" not in states
    for context in ("eu", "us"):  # each region's cluster was asked, and nothing was changed
        sent = [p for m, p in two.sims[context].requests if m != "GET"]
        reviews = [p for p in sent if "selfsubjectaccessreviews" in p]
        assert reviews
        assert all("dryRun=All" in p for p in sent if p not in reviews), sent
