"""Each readiness check, ✓ and ✗ (or unknown) with its reason, against the Kubernetes simulator."""

from __future__ import annotations

from typing import Any

from bot.catalog.load import Service
from bot.drills.checks import State
from bot.drills.permissions import permissions_check, plan_writes
from bot.drills.readiness import channel_check, dry_run_check, oncall_check, prometheus_check
from bot.drills.run import readiness_checks
from bot.drills.target import target_checks
from bot.sim.kube_access import AccessRule
from tests.conftest import service_yaml
from tests.drills.world import NS, ONCALL, World, checkout_yaml, virtual_service


def _service(w: World, name: str = "checkout") -> Service:
    service = w.deps.catalog.get(name)
    assert service is not None
    return service


def _target(w: World, name: str = "checkout", wanted: str | None = None) -> Any:
    service = _service(w, name)
    found = target_checks(w.deps.kube, w.deps.reader.http, service, service.plan(), wanted)
    assert len(found) == 1, found
    return found[0]


def test_undo_target_passes_for_the_previous_revision_and_for_to_n(make_world: Any) -> None:
    w: World = make_world()
    assert _target(w).state == State.OK
    chosen = _target(w, wanted="checkout:v1")
    assert chosen.state == State.OK and "→ revision 1 (checkout:v1)" in chosen.reason


def test_undo_target_fails_without_history_or_for_a_revision_not_in_it(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(), service_yaml("search", None))
    w.kube_sim.seed_deployment(NS, "search-api", images=["search:v1"])
    alone = _target(w, "search")
    assert alone.state == State.FAILED and "search-api" in alone.reason
    assert "revisionHistoryLimit" in alone.todo
    missing = _target(w, wanted="7")
    assert missing.state == State.FAILED
    assert "checkout-api has no revision 7 in its history" in missing.reason
    assert "--to N" in missing.todo


def test_undo_target_fails_when_it_is_the_running_template(make_world: Any) -> None:
    w: World = make_world()
    same = _target(w, wanted="2")
    assert same.state == State.FAILED
    assert "has the running template" in same.reason and "would change nothing" in same.reason


def _blue_green(w: World, stable_replicas: int) -> Any:
    w.kube_sim.seed_deployment(NS, "shopfront-blue", images=["s:1"], replicas=stable_replicas)
    w.kube_sim.seed_deployment(NS, "shopfront-green", images=["s:2"])
    w.kube_sim.seed_service(NS, "shopfront", {"app": "shopfront-green"})
    return _target(w, "shopfront")


BLUE_GREEN = (
    "  shopfront:\n    namespace: shop\n    deployment: shopfront-blue\n    strategy: blue-green\n"
    "    blue_green: {service: shopfront, stable: blue, candidate: shopfront-green}\n"
)


def test_blue_green_target_needs_available_pods_in_the_stable_colour(make_world: Any) -> None:
    ready = _blue_green(make_world(checkout_yaml(), BLUE_GREEN), stable_replicas=2)
    assert ready.state == State.OK and "2 available pods" in ready.reason


def test_blue_green_target_fails_on_a_stable_colour_without_pods(make_world: Any) -> None:
    empty = _blue_green(make_world(checkout_yaml(), BLUE_GREEN), stable_replicas=0)
    assert empty.state == State.FAILED
    assert "stable colour shopfront-blue has no available pods" in empty.reason
    assert "Scale shopfront-blue up" in empty.todo


CANARY = (
    "  board:\n    namespace: shop\n    deployment: board\n    strategy: canary\n"
    "    canary: {deployment: board-canary, traffic: {name: board}}\n"
)


def test_canary_target_is_its_traffic_object(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(), CANARY)
    missing = _target(w, "board")
    assert missing.state == State.FAILED and 'virtualservice "board" not found' in missing.reason
    virtual_service(w.kube_sim, "board", (100,))
    assert _target(w, "board").state == State.OK


def _http_service(url: str) -> str:
    return (
        f"  deployer:\n    deployment: deployer\n    strategy: http\n"
        f"    http_rollback: {{url: '{url}/deployment/rollback'}}\n"
    )


def test_http_target_is_a_get_of_the_base_url_never_the_post(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(), _http_service("http://user:secret@127.0.0.1:1"))
    down = _target(w, "deployer")
    assert down.state == State.FAILED and "unreachable" in down.reason
    assert "secret" not in down.reason and "/deployment/rollback" not in down.reason
    up_url = w.prometheus.url  # any HTTP server: the base URL only has to answer
    w2: World = make_world(checkout_yaml(), _http_service(up_url))
    up = _target(w2, "deployer")
    assert up.state == State.OK and "no POST sent" in up.reason


def test_permissions_pass_when_the_rules_allow_every_write(make_world: Any) -> None:
    w: World = make_world()
    w.kube_sim.set_access_rules(
        [AccessRule(("get", "list", "patch"), ("apps",), ("deployments", "replicasets"), (NS,))]
    )
    check = permissions_check(w.deps.kube, _service(w), _service(w).plan())
    assert check.state == State.OK and "patch deployments.apps checkout-api in shop" in check.reason


def test_permissions_fail_naming_the_write_the_bot_may_not_make(make_world: Any) -> None:
    w: World = make_world()
    w.kube_sim.set_access_rules(
        [
            AccessRule(("patch",), ("apps",), ("deployments",), (NS,), effect="deny"),
            AccessRule(("*",), ("*",), ("*",)),
        ]
    )
    check = permissions_check(w.deps.kube, _service(w), _service(w).plan())
    assert check.state == State.FAILED
    assert "patch deployments.apps checkout-api in shop (denied: " in check.reason
    assert "deploy/rbac.yaml" in check.todo
    # and RBAC without a matching rule: not allowed, with no reason
    w.kube_sim.set_access_rules([AccessRule(("get",), ("apps",), ("deployments",))])
    quiet = permissions_check(w.deps.kube, _service(w), _service(w).plan())
    assert quiet.state == State.FAILED and "no rule allows it" in quiet.reason


def test_every_kind_of_write_is_reviewed_once(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(), BLUE_GREEN, CANARY)
    shop, board = _service(w, "shopfront"), _service(w, "board")
    assert [str(c) for c in plan_writes(w.deps.kube, shop, shop.plan())] == [
        "patch services shopfront in shop",
        "patch deployments/scale.apps shopfront-green in shop",
    ]
    assert [str(c) for c in plan_writes(w.deps.kube, board, board.plan())] == [
        "patch virtualservices.networking.istio.io board in shop",
        "patch deployments/scale.apps board-canary in shop",
    ]


def test_dry_run_fails_with_what_the_api_server_refused(make_world: Any) -> None:
    w: World = make_world()
    service = _service(w)
    assert dry_run_check(w.deps, service, service.plan(), None).state == State.OK
    w.kube_sim.inject("PATCH", "/deployments/checkout-api$", 422)
    refused = dry_run_check(w.deps, service, service.plan(), None)
    assert refused.state == State.FAILED
    assert "Roll checkout-api back" in refused.reason and "--dry-run" in refused.todo


def test_prometheus_must_answer_every_gate_and_guard_signal(make_world: Any) -> None:
    w: World = make_world()
    service = _service(w)
    prometheus = w.deps.reader.prometheus
    assert prometheus_check(prometheus, service, service.plan()).state == State.OK
    w.prometheus.set_value(service.spec.signals["error_rate"], None)
    blind = prometheus_check(prometheus, service, service.plan())
    assert blind.state == State.FAILED and "1 of 1 signals unanswered" in blind.reason
    assert "no series" in blind.reason
    unset = prometheus_check(None, service, service.plan())
    assert unset.state == State.UNKNOWN and "PROMETHEUS_URL is not set" in unset.reason


def test_oncall_ladder_needs_levels_and_sms_paging(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(oncall=None), twilio=False)
    none = oncall_check(w.deps.settings, _service(w))
    assert none.state == State.FAILED and "no on-call ladder" in none.reason
    w2: World = make_world(checkout_yaml(oncall=ONCALL), twilio=False)
    no_sms = oncall_check(w2.deps.settings, _service(w2))
    assert no_sms.state == State.FAILED and "SMS paging is not configured" in no_sms.reason
    assert "TWILIO_ACCOUNT_SID" in no_sms.todo and "+15550100001" not in no_sms.reason


def test_channel_must_exist_with_the_bot_in_it(make_world: Any) -> None:
    w: World = make_world()
    assert channel_check(w.deps.slack, _service(w)).state == State.OK
    w.h.slack.is_strict_channels = True
    w3: World = make_world(checkout_yaml(channel="C0GONE"))
    gone = channel_check(w3.deps.slack, _service(w3))
    assert gone.state == State.FAILED and "channel_not_found" in gone.reason
    w.h.slack.add_channel("C0QUIET", "quiet", is_archived=True)
    w4: World = make_world(checkout_yaml(channel="C0QUIET"))
    archived = channel_check(w4.deps.slack, _service(w4))
    assert archived.state == State.FAILED and "archived" in archived.reason


def test_a_check_that_breaks_is_unknown_never_ready(make_world: Any) -> None:
    w: World = make_world()
    w.kube_sim.inject("*", "selfsubjectaccessreviews", 500, times=10)
    checks = {c.name: c for c in readiness_checks(w.deps, _service(w), None)}
    assert checks["Permissions"].state == State.UNKNOWN
    assert "did not answer" in checks["Permissions"].reason
    assert checks["Target"].state == State.OK
