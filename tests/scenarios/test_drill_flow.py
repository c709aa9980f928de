"""`/rollback drill checkout` over signed HTTP: the immediate answer, the readiness report in the
service channel, the stored and audited drill — and not one change in the cluster."""

from __future__ import annotations

import json
from typing import Any

from tests.drills.world import World, kube, kube_sim, make_world

__all__ = ["kube", "kube_sim", "make_world"]  # the drill world's fixtures, used here too


def test_a_drill_of_a_ready_service_reports_every_check_passed(make_world: Any) -> None:
    w: World = make_world()
    version = w.kube_sim.resource_version
    since = len(w.kube_sim.requests)

    report = w.drill("checkout")

    assert report["channel"] == "C0DEPLOYS"
    text = report["text"]
    assert "Readiness drill #1 of *checkout*: ready" in text, text
    for line in (
        "✓ Target",
        "✓ Permissions",
        "✓ Dry run",
        "✓ Prometheus",
        "✓ On-call ladder",
        "✓ Channel",
        "✓ Estimate",
    ):
        assert line in text, text
    assert "checkout-api: revision 2 (checkout:v2) → revision 1 (checkout:v1)" in text
    assert "1 write allowed: patch deployments.apps checkout-api in shop" in text
    assert "Primary (+1555•••0001, +0 min)" in text and "+15550100001" not in text
    assert "estimated 16 min of a 30 min SLA" in text
    # nothing changed: every write was a dry run, and the cluster's resourceVersion stands still
    writes = [(m, p) for m, p in w.kube_sim.requests[since:] if m != "GET"]
    reviews = [p for m, p in writes if "selfsubjectaccessreviews" in p]
    assert len(reviews) == 1  # one distinct write: patch deployments checkout-api
    # one moment of the cluster: one LIST of ReplicaSets, the Deployment read once (raw, what
    # the snapshot keeps; the typed model is built from it), whatever the checks that need them
    reads = [p.partition("?")[0] for m, p in w.kube_sim.requests[since:] if m == "GET"]
    assert reads.count("/apis/apps/v1/namespaces/shop/replicasets") == 1
    assert reads.count("/apis/apps/v1/namespaces/shop/deployments/checkout-api") == 1
    assert len(reads) == 2
    assert all("dryRun=All" in p for m, p in writes if "selfsubjectaccessreviews" not in p)
    assert any("dryRun=All" in p for _, p in writes)
    assert w.kube_sim.resource_version == version
    drill = w.deps.repo.last_drill("checkout")
    assert drill is not None and drill.status == "passed"
    assert drill.message_ts == w.h.posted()[-1].response["ts"]
    assert len(drill.checks) == 7 and drill.duration_seconds is not None
    events = w.deps.repo.list_audit_events(service="checkout")
    assert any(e.kind == "drill.finished" for e in events)
    assert "nothing was changed" in json.dumps(report["blocks"])
