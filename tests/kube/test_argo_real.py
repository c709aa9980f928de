"""Argo Rollouts on the real control plane: Argo Rollouts' published Rollout CRD installed
(tests/kube/argo-rollouts-crd.yaml), the test playing the Argo controller's part
(tests/kube/argo_controller.py), the bot's undo and abort sent as its own ServiceAccount.

Undo and abort are compared with the plugin's algorithm (tests/argo/reference.py) run, also as
the bot's ServiceAccount, on an identical Rollout in a second namespace; a contract case runs the
same status-subresource requests against the simulator and the API server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.objects import rollout_undo
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.argo.reference import PluginError, abort_rollout, run_undo_rollout
from tests.argo.test_rollout_steps import rollout_step_context
from tests.conftest import Harness, catalog_yaml, set_service_values
from tests.kube.argo_controller import GROUP, PLURAL, VERSION, RolloutController
from tests.kube.conftest import Cluster

pytestmark = [pytest.mark.kube, pytest.mark.usefixtures("argo_rollouts_crd")]

NAME = "checkout-api"
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
MERGE = "application/merge-patch+json"


@pytest.fixture
def bot_api(cluster: Cluster) -> Iterator[ApiClient]:
    """The plugin's client: the bot's ServiceAccount kubeconfig, the Role and nothing more."""
    api = new_client_from_config(config_file=str(cluster.bot_kubeconfig))
    yield api
    api.close()


@pytest.fixture
def pair(cluster: Cluster, make_namespace: Callable[[], str]) -> dict[str, RolloutController]:
    """The same Rollout with the same three releases, in two namespaces."""
    made = {"ours": make_namespace(), "theirs": make_namespace()}
    controllers = {who: RolloutController(cluster.admin, ns) for who, ns in made.items()}
    for controller in controllers.values():
        controller.create(NAME, IMAGES)
    return controllers


def outcome(controller: RolloutController) -> dict[str, Any]:
    ro = controller.get(NAME)
    return {
        "spec": ro["spec"],
        "revision": ro["metadata"]["annotations"]["rollout.argoproj.io/revision"],
        "phase": (ro.get("status") or {}).get("phase"),
        "abort": (ro.get("status") or {}).get("abort"),
        "replicasets": sorted(
            (
                rs["metadata"]["annotations"]["rollout.argoproj.io/revision"],
                rs["spec"]["template"]["spec"]["containers"][0]["image"],
                rs["metadata"]["labels"]["rollouts-pod-template-hash"],
            )
            for rs in controller.replicasets(NAME)
        ),
    }


def test_undo_matches_the_plugin_as_the_bots_service_account(
    pair: dict[str, RolloutController], bot_kube: KubernetesClient, bot_api: ApiClient
) -> None:
    ours, theirs = pair["ours"], pair["theirs"]
    plan = bot_kube.rollout_undo(KubeTarget(None, ours.ns), NAME, None)
    assert run_undo_rollout(bot_api, theirs.ns, NAME, 0) == f"rollout '{NAME}' undo\n"
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    for controller in (ours, theirs):
        controller.reconcile(NAME, promote=True)
    assert outcome(ours) == outcome(theirs)
    assert outcome(ours)["revision"] == "4"
    assert outcome(ours)["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES[1]

    bot_kube.rollout_undo(KubeTarget(None, ours.ns), NAME, 1)
    run_undo_rollout(bot_api, theirs.ns, NAME, 1)
    for controller in (ours, theirs):
        controller.reconcile(NAME, promote=True)
    assert outcome(ours) == outcome(theirs)
    assert outcome(ours)["revision"] == "5"

    skipped = bot_kube.rollout_undo(KubeTarget(None, ours.ns), NAME, 5)
    assert skipped.is_noop
    assert run_undo_rollout(bot_api, theirs.ns, NAME, 5).startswith("skipped rollback")

    with pytest.raises(KubeError) as mine:
        bot_kube.rollout_undo(KubeTarget(None, ours.ns), NAME, 9)
    with pytest.raises(PluginError) as plugin:
        run_undo_rollout(bot_api, theirs.ns, NAME, 9)
    assert str(mine.value) == str(plugin.value) == "unable to find specified revision 9 in history"
    assert outcome(ours) == outcome(theirs)


def test_abort_during_a_canary_matches_the_plugin(
    pair: dict[str, RolloutController], bot_kube: KubernetesClient, bot_api: ApiClient
) -> None:
    for controller in pair.values():
        controller.set_image(NAME, "shop/checkout:v4")
        controller.reconcile(NAME, promote=False)  # the canary waits at its pause step
    ours, theirs = pair["ours"], pair["theirs"]
    target = KubeTarget(None, ours.ns)
    assert bot_kube.rollout_phase(target, NAME).is_paused

    bot_kube.abort_rollout(target, NAME)
    assert abort_rollout(bot_api, theirs.ns, NAME) == f"rollout '{NAME}' aborted\n"
    assert ours.get(NAME)["status"]["abort"] is True
    for controller in (ours, theirs):
        controller.reconcile(NAME, promote=False)  # the controller sees the abort: Degraded
    assert outcome(ours) == outcome(theirs)
    status = bot_kube.rollout_phase(target, NAME)
    assert status.is_failed
    assert "RolloutAborted: Rollout aborted update to revision 4" in status.message

    # the undo then goes back to the stable release, and the controller clears the abort
    plan = bot_kube.rollout_undo(target, NAME, None)
    assert (plan.to_revision, plan.images_after) == (3, {"app": IMAGES[2]})
    ours.reconcile(NAME, promote=True)
    assert bot_kube.rollout_phase(target, NAME).is_complete
    assert "abort" not in ours.get(NAME)["status"] or not ours.get(NAME)["status"]["abort"]


def test_a_dry_run_undo_and_abort_change_nothing(
    pair: dict[str, RolloutController], bot_kube: KubernetesClient
) -> None:
    ours = pair["ours"]
    before = ours.get(NAME)
    bot_kube.rollout_undo(KubeTarget(None, ours.ns), NAME, None, dry_run=True)
    bot_kube.abort_rollout(KubeTarget(None, ours.ns), NAME, dry_run=True)
    after = ours.get(NAME)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- contract: the simulator's status subresource is the API server's ----------------------------


def _status_requests(custom: CustomObjectsApi, namespace: str) -> list[Any]:
    """The same requests, and what each answers (a status code for a refusal)."""
    args = (GROUP, VERSION, namespace, PLURAL)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": "contract"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "contract"}},
            "template": {
                "metadata": {"labels": {"app": "contract"}},
                "spec": {"containers": [{"name": "app", "image": "c:1"}]},
            },
            "strategy": {"canary": {}},
        },
        "status": {"abort": True},
    }
    seen: list[Any] = []

    def answer(call: Callable[[], Any]) -> None:
        try:
            obj = call()
            seen.append(
                (
                    "status" in obj and "abort" in obj["status"],
                    obj["spec"].get("replicas"),
                    obj["metadata"]["generation"],
                    "unknownField" in obj["spec"],
                )
            )
        except ApiException as exc:
            seen.append((exc.status, json.loads(exc.body).get("reason")))

    answer(lambda: custom.create_namespaced_custom_object(*args, body))
    answer(
        lambda: custom.patch_namespaced_custom_object(
            *args, "contract", {"status": {"abort": True}}
        )
    )
    answer(
        lambda: custom.patch_namespaced_custom_object_status(
            *args,
            "contract",
            {"status": {"abort": True}, "spec": {"replicas": 5}},
            _content_type=MERGE,
        )
    )
    answer(
        lambda: custom.patch_namespaced_custom_object(*args, "contract", {"spec": {"replicas": 2}})
    )
    answer(
        lambda: custom.patch_namespaced_custom_object(
            *args, "contract", {"spec": {"unknownField": 1}}
        )
    )
    answer(
        lambda: custom.patch_namespaced_custom_object_status(
            *args, "contract", {"status": {"abort": "yes"}}, _content_type=MERGE
        )
    )
    answer(
        lambda: custom.patch_namespaced_custom_object(
            *args, "contract", {"spec": {"replicas": "two"}}
        )
    )
    return seen


def test_the_simulator_keeps_status_apart_like_the_api_server(
    cluster: Cluster, namespace: str
) -> None:
    real = _status_requests(CustomObjectsApi(cluster.admin), namespace)
    with KubeSimulator() as sim, sim.api_client() as api:
        sim.seed_namespace(namespace)
        simulated = _status_requests(CustomObjectsApi(api), namespace)
    assert real == [
        (False, 1, 1, False),  # create: the status sent is dropped
        (False, 1, 1, False),  # the main resource cannot write the status
        (True, 1, 1, False),  # /status writes the status only
        (True, 2, 2, False),  # a spec change moves the generation
        (True, 2, 2, False),  # an unknown field is pruned
        (422, "Invalid"),  # a wrong type in the status
        (422, "Invalid"),  # a wrong type in the spec
    ]
    assert simulated == real


def test_an_immediate_rollback_of_a_rollout_through_the_engine(
    cluster: Cluster,
    make_namespace: Callable[[], str],
    make_harness: Any,
    bot_kube: KubernetesClient,
    prometheus: PrometheusSimulator,
) -> None:
    """Signed slash command, engine and steps, as the bot's ServiceAccount: the canary of v4
    waits at its pause; the rollback aborts it, undoes to v3 and waits for Healthy."""
    ns = make_namespace()
    controller = RolloutController(cluster.admin, ns)
    controller.create(NAME, IMAGES)
    controller.set_image(NAME, "shop/checkout:v4")
    controller.reconcile(NAME, promote=False)
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)
    text = catalog_yaml(
        f"  checkout:\n    namespace: {ns}\n    deployment: {NAME}\n"
        "    workload: {kind: Rollout}\n    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=bot_kube)

    with controller.running(NAME):
        resp = h.slash("run checkout --immediate v4 canary 5xx")
        h.wait_rollbacks()

    assert "Rollback #1 of *checkout* started" in resp.json()["text"]
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded", rollback and rollback.error
    steps = h.bot.deps.repo.list_steps(1)
    assert [s.kind for s in steps] == ["snapshot", "rollout_abort", "rollout_undo", "wait_rollout"]
    assert steps[1].detail["aborted"] is True
    ro = controller.get(NAME)
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES[2]
    assert ro["status"]["phase"] == "Healthy"
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "5"


def test_a_rehearsal_undo_refuses_a_change_the_controller_has_not_picked_up(
    pair: dict[str, RolloutController], bot_kube: KubernetesClient
) -> None:
    """Someone changed the staging Rollout and its controller has not observed it yet (its
    status, observedGeneration a string, still names the release before): the start pin alone
    would match, so a rehearsal's undo would drop that change. It refuses; once the controller
    picked the change up, the pin tells the new release apart as usual."""
    ours = pair["ours"]
    here = KubeTarget(None, ours.ns)
    undo, _, _ = bot_kube.rollout_preview_undo(here, NAME, lambda listed, current: None)
    assert undo.is_observed
    params = {
        "deployment": NAME,
        "to_revision": undo.to_revision,
        "expect_template": undo.to_template,
        "expect_from_template": undo.from_template,
    }
    ours.set_image(NAME, "shop/checkout:v4")  # no controller pass yet
    before = ours.get(NAME)
    assert before["metadata"]["generation"] > int(before["status"]["observedGeneration"])

    with HttpClient() as http, pytest.raises(StepFailed) as refused:
        rollout_undo(rollout_step_context(bot_kube, http, "Rollout", None, ours.ns)[0], params)

    assert str(refused.value) == (
        f"staging's Rollout {NAME} has a change its controller has not picked up yet; nothing"
        " was changed. Wait for it, then start a new rehearsal."
    )
    assert ours.get(NAME)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    ours.reconcile(NAME, promote=False)
    assert bot_kube.rollout_preview_undo(here, NAME, lambda listed, current: None)[0].is_observed
