"""Rehearsals of blue-green, canary and http rollbacks over signed HTTP: the service's own
rollback runs in staging (a second Kubernetes simulator, context ``staging``) and is rolled
forward to exactly where staging started, while production's simulator and production's
deployment API receive not one request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml
from tests.scenarios.test_approval_flow import settle
from tests.scenarios.test_manual_gate_continue import gate_button, until
from tests.scenarios.test_rehearsal import report

STAGING = KubeTarget("staging", "shop-staging")
VS_API = "networking.istio.io/v1beta1"


def seed(sim: KubeSimulator, ns: str) -> None:
    """web: blue stable, green live (the candidate); board: 25 % on its canary."""
    blue, green = {"app": "web", "version": "blue"}, {"app": "web", "version": "green"}
    sim.seed_deployment(ns, "web-blue", images=["web:1"], labels=blue)
    sim.seed_deployment(ns, "web-green", images=["web:2"], labels=green)
    sim.seed_service(ns, "web", green)
    sim.seed_deployment(ns, "board", images=["b:1"])
    sim.seed_deployment(ns, "board-canary", images=["b:2"], replicas=1)
    route = [
        {"destination": {"host": "board", "subset": "stable"}, "weight": 75},
        {"destination": {"host": "board", "subset": "canary"}, "weight": 25},
    ]
    with sim.api_client() as api:
        CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io",
            "v1beta1",
            ns,
            "virtualservices",
            {
                "apiVersion": VS_API,
                "kind": "VirtualService",
                "metadata": {"name": "board"},
                "spec": {"http": [{"route": route}]},
            },
        )


@pytest.fixture
def prod_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        seed(sim, "shop")
        yield sim


@pytest.fixture
def staging_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        seed(sim, "shop-staging")
        yield sim


@pytest.fixture
def kube(prod_sim: KubeSimulator, staging_sim: KubeSimulator) -> KubernetesClient:
    clusters = {"prod": prod_sim, "staging": staging_sim}
    return KubernetesClient(
        api_client_for=lambda context: clusters[str(context)].api_client(), sleep=lambda s: None
    )


class _DeployAPI(BaseHTTPRequestHandler):
    """A deployment API on loopback: it records every request and answers 200."""

    calls: ClassVar[list[str]] = []

    def _answer(self) -> None:
        type(self).calls.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def deploy_api() -> Iterator[str]:
    _DeployAPI.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeployAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def catalog(prometheus: PrometheusSimulator, api: str) -> str:
    staging = "context: staging, namespace: shop-staging"
    health = f"health_url: '{prometheus.health_url('staging')}'"
    prod_api = api.replace("127.0.0.1", "localhost")
    return catalog_yaml(
        "  web:\n    context: prod\n    namespace: shop\n    deployment: web-blue\n"
        "    strategy: blue-green\n    responders: [U0ONCALL1]\n"
        f"    health_url: '{prometheus.health_url('web-prod')}'\n"
        "    blue_green: {service: web, stable: blue, candidate: web-green}\n"
        f"    staging: {{{staging}, {health}}}",
        "  board:\n    context: prod\n    namespace: shop\n    deployment: board\n"
        "    strategy: canary\n    responders: [U0ONCALL1]\n"
        "    signals: {error_rate: 'sum(rate(board_errors[5m]))'}\n"
        "    canary: {deployment: board-canary, step_percent: 25, traffic: {name: board}}\n"
        f"    staging: {{{staging}, {health}}}",
        "  mvp:\n    context: prod\n    namespace: shop\n    deployment: mvp-api\n"
        "    strategy: http\n    responders: [U0ONCALL1]\n"
        # production's API on another host name (same server: a call to it would be seen)
        f"    http_rollback: {{url: '{prod_api}/prod/rollback',"
        f" status_url: '{prod_api}/prod/status'}}\n"
        f"    staging:\n      {staging.replace(', ', chr(10) + '      ')}\n"
        f"      http: {{url: '{api}/staging/rollback', status_url: '{api}/staging/status',"
        f" forward_url: '{api}/staging/forward', forward_method: PUT}}",
        "  cart:\n    context: prod\n    namespace: shop\n    deployment: cart-api\n"
        "    responders: [U0ONCALL1]\n"
        f"    staging: {{{staging}, deployment: cart-staging, {health}}}\n"
        "    phases:\n"
        "      application:\n"
        "        - {kind: set_image, deployment: cart-api, container: app, image: 'cart:v1'}\n"
        "        - {kind: restart}\n"
        "        - {kind: wait_rollout}\n"
        "      verification:\n"
        f"        - {{kind: http_check, url: '{prometheus.health_url('cart-prod')}'}}",
    )


@pytest.fixture
def h(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator, deploy_api: str
) -> Harness:
    harness: Harness = make_harness(
        catalog(prometheus, deploy_api), prometheus_url=prometheus.url, kube=kube
    )
    return harness


def weights(kube: KubernetesClient, target: KubeTarget) -> list[int]:
    vs = kube.read_object(target, VS_API, "VirtualService", "board")
    return [r["weight"] for r in vs["spec"]["http"][0]["route"]]


def untouched(sim: KubeSimulator) -> Any:
    """A check that production's simulator received no request after the seeding."""
    seeded = len(sim.requests)
    return lambda: sim.requests[seeded:] == []


def steps_of(h: Harness, rollback_id: int) -> list[tuple[str, str, str]]:
    """(phase, kind, status); a roll-forward step (marked in its params) as phase ``forward``."""
    return [
        ("forward" if s.detail["params"].get("roll_forward") else s.phase, s.kind, s.status)
        for s in h.bot.deps.repo.list_steps(rollback_id)
    ]


def wait_running(h: Harness, phase: str, kind: str) -> None:
    """Until rehearsal #1's step of that phase and kind runs."""
    deadline = time.monotonic() + 10
    while (phase, kind, "running") not in steps_of(h, 1):
        assert time.monotonic() < deadline, steps_of(h, 1)
        time.sleep(0.05)


def test_a_blue_green_rehearsal_switches_to_stable_and_back_to_the_candidate(
    h: Harness, kube: KubernetesClient, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    is_untouched, seeded = untouched(prod_sim), len(staging_sim.writes)
    answer = h.slash("drill web --rehearse").json()["text"]
    assert "Rehearsal #1 of *web* started in staging" in answer
    assert "the blue-green rollback (Service web version=green → version=blue;" in answer
    assert "web-green 3 → 0 replicas) and forward again" in answer
    settle(h)
    text = report(h)["text"]
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded", rollback
    # staging is back where it started: the Service selects green, green has its 3 replicas
    assert kube.service_selector(STAGING, "web") == {"app": "web", "version": "green"}
    assert kube.deployment(STAGING, "web-green").replicas == 3
    # in this order: switch to blue, green to 0; green back to 3, ready, then the switch back
    writes = [
        (m, p.split("/namespaces/shop-staging/")[1]) for m, p, _, _ in staging_sim.writes[seeded:]
    ]
    assert writes == [
        ("PATCH", "services/web"),
        ("PATCH", "deployments/web-green/scale"),
        ("PATCH", "deployments/web-green/scale"),
        ("PATCH", "services/web"),
    ]
    assert [k for phase, k, _ in steps_of(h, 1) if phase == "forward"] == [
        "scale",
        "wait_rollout",
        "switch_selector",
        "http_check",
    ]
    assert is_untouched()  # production: not one request
    assert "Rollback (blue-green), verified:" in text and "within the 15 min SLA" in text
    assert "Roll-forward, verified:" in text
    assert "Service web selects app=web,version=green" in text
    assert "web-green has 3 replicas" in text and "not* back" not in text
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is True


def test_a_canary_rehearsal_takes_the_weight_off_and_puts_it_back(
    h: Harness, kube: KubernetesClient, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    is_untouched = untouched(prod_sim)
    answer = h.slash("drill board --rehearse").json()["text"]
    assert "VirtualService/board canary 25 % → 0 %" in answer
    settle(h)
    text = report(h)["text"]
    assert h.bot.deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]
    assert weights(kube, STAGING) == [75, 25]
    assert kube.deployment(STAGING, "board-canary").replicas == 1
    assert is_untouched()
    assert "VirtualService board sends 25 % to the canary, 75 % to stable" in text
    # production's error-rate query never gated the staging shift
    shift = h.bot.deps.repo.list_steps(1)[1]
    assert shift.kind == "shift_traffic" and shift.detail["params"]["gate_query"] is None


def test_refused_when_staging_already_runs_the_stable_colour(
    h: Harness, kube: KubernetesClient, staging_sim: KubeSimulator
) -> None:
    kube.switch_selector(STAGING, "web", {"app": "web", "version": "blue"})
    before = len(staging_sim.writes)
    answer = h.slash("drill web --rehearse").json()["text"]
    assert "No rehearsal of *web* was started" in answer
    assert "Deploy a candidate colour to staging first" in answer
    assert h.bot.deps.repo.list_rollbacks() == [] and len(staging_sim.writes) == before
    (refused,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.refused")
    assert "already selects version=blue" in refused.detail["why"]


def test_an_http_rehearsal_calls_the_staging_api_in_order_and_never_production(
    h: Harness, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    prod_untouched, staging_untouched = untouched(prod_sim), untouched(staging_sim)
    answer = h.slash("drill mvp --rehearse").json()["text"]
    assert "Rehearsal #1 of *mvp* started in staging" in answer
    assert "the http rollback through the staging deployment API and forward again" in answer
    settle(h)
    report(h)
    assert h.bot.deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]
    assert _DeployAPI.calls == [
        "POST /staging/rollback",
        "GET /staging/status",
        "PUT /staging/forward",
        "GET /staging/status",
    ]
    assert prod_untouched() and staging_untouched()  # no Kubernetes request at all


def test_a_roll_forward_that_did_not_finish_reports_the_commands_that_put_staging_back(
    h: Harness, kube: KubernetesClient, staging_sim: KubeSimulator
) -> None:
    staging_sim.set_never_ready("shop-staging", "web-green")  # green's pods do not come back
    h.slash("drill web --rehearse")
    wait_running(h, "forward", "wait_rollout")
    h.slash("abort 1 green is not coming back")  # traffic never went back to green
    settle(h)
    text = report(h)["text"]
    assert h.bot.deps.repo.get_rollback(1).status == "aborted"  # type: ignore[union-attr]
    assert kube.service_selector(STAGING, "web") == {"app": "web", "version": "blue"}
    assert "Roll-forward: did not finish" in text
    assert "Staging is *not* back where the rehearsal started" in text
    patch = "kubectl --context staging -n shop-staging patch service web -p"
    assert f'`{patch} \'{{"spec":{{"selector":{{"version":"green"}}}}}}\'`' in text
    assert "scale deployment/web-green" not in text  # green has its 3 replicas again
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is False


def test_custom_phases_are_rehearsed_in_staging_and_rolled_forward(
    h: Harness, kube: KubernetesClient, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    staging_sim.seed_deployment("shop-staging", "cart-staging", images=["cart:v1", "cart:v2"])
    is_untouched = untouched(prod_sim)
    answer = h.slash("drill cart --rehearse").json()["text"]
    assert "cart-staging app cart:v2 → cart:v1" in answer
    assert "its own phases (cart-staging app cart:v2 → cart:v1)" in answer
    assert "Restart: a restart changes no release, nothing to roll forward." in answer
    settle(h)
    text = report(h)["text"]
    assert h.bot.deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]
    assert kube.deployment(STAGING, "cart-staging").images == {"app": "cart:v2"}
    assert [(p, k) for p, k, _ in steps_of(h, 1)] == [
        ("application", "set_image"),
        ("application", "restart"),
        ("application", "wait_rollout"),
        ("verification", "http_check"),  # staging's health URL, not production's
        ("forward", "set_image"),
        ("forward", "wait_rollout"),
        ("forward", "http_check"),
    ]
    urls = [s.detail["params"].get("url") for s in h.bot.deps.repo.list_steps(1)]
    twin = h.bot.deps.catalog.target_of("cart@staging")
    assert twin is not None and [u for u in urls if u] == [twin.spec.health_url] * 2
    assert is_untouched()
    assert "cart-staging app runs cart:v2" in text


def test_a_rehearsal_stopped_before_its_roll_forward_lists_every_command_in_order(
    h: Harness, kube: KubernetesClient, prometheus: PrometheusSimulator
) -> None:
    prometheus.set_health("staging", 503)  # staging's health check keeps failing
    h.slash("drill web --rehearse")
    wait_running(h, "verification", "http_check")
    h.slash("abort 1 staging is unhealthy")
    settle(h)
    text = report(h)["text"]
    assert "Roll-forward: did not run." in text
    kubectl = "kubectl --context staging -n shop-staging"
    commands = (
        f"`{kubectl} scale deployment/web-green --replicas=3` then"
        f" `{kubectl} rollout status deployment/web-green` then"
        f' `{kubectl} patch service web -p \'{{"spec":{{"selector":{{"version":"green"}}}}}}\'`'
    )
    assert commands in text
    assert "Service web selects app=web,version=blue" in text and "web-green has 0 replicas" in text
    assert kube.deployment(STAGING, "web-green").replicas == 0  # the report only says how


# Staging changed between the plan and the run: someone switches the staging Service while
# the rehearsal waits at its manual gate. The pinned switch refuses, nothing is written after
# that person's change, and production receives no request.
GATED_SWITCH = catalog_yaml(
    "  web:\n    context: prod\n    namespace: shop\n    deployment: web-blue\n"
    "    responders: [U0ONCALL1]\n    approvers: [U0ONCALL1]\n"
    "    staging: {context: staging, namespace: shop-staging}\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: manual_gate, prompt: 'Blue warmed up?'}\n"
    "        - {kind: wait_rollout, deployment: web-blue, min_available: 1}\n"
    "      stop_traffic:\n"
    "        - {kind: switch_selector, service: web, selector: {version: blue}}\n"
    "      cleanup:\n"
    "        - {kind: scale, deployment: web-green, replicas: 0}\n"
)


def test_a_service_switched_between_plan_and_run_stops_the_rehearsal_untouched(
    make_harness: Any,
    slack: SlackSimulator,
    kube: KubernetesClient,
    prod_sim: KubeSimulator,
    staging_sim: KubeSimulator,
) -> None:
    slack.add_user("U0ONCALL1", "oncall")
    is_untouched = untouched(prod_sim)
    h: Harness = make_harness(GATED_SWITCH, prometheus_url=None, kube=kube)
    answer = h.slash("drill web --rehearse").json()["text"]
    assert "Rehearsal #1 of *web* started in staging" in answer
    message, button = until(lambda: gate_button(slack), "the gate's Continue button")

    # someone switches staging's Service to blue by hand while the rehearsal waits
    kube.switch_selector(STAGING, "web", {"app": "web", "version": "blue"})
    changed = len(staging_sim.writes)

    h.requester.click(message, button, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    h.wait_rollbacks()
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "failed", rehearsal
    switch = next(s for s in h.bot.deps.repo.list_steps(1) if s.kind == "switch_selector")
    assert switch.status == "failed"
    assert switch.error is not None and switch.error.startswith(
        "Service web's selector is version=blue in staging, not version=green as it was when the"
        " rehearsal was planned (someone changed staging meanwhile); nothing was changed."
    )
    # after that person's change the bot wrote nothing: their blue stays, green keeps its pods
    assert staging_sim.writes[changed:] == []
    assert kube.service_selector(STAGING, "web") == {"app": "web", "version": "blue"}
    assert kube.deployment(STAGING, "web-green").replicas == 3
    assert is_untouched()
