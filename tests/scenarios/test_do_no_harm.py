"""Do no harm: a rollback never re-deploys what was rolled back, never resolves a target by
guessing, and never notifies or pages for a command it refuses. Through signed HTTP, with the
real app, engine and Kubernetes client against the simulators."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.approvals import blocks as ab
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.objects import _revision_number
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.scenarios.test_approval_flow import button, click, new_answer, request_message, settle

NS = "shop"
T = KubeTarget(None, NS)
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


@pytest.fixture
def h(make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator) -> Harness:
    # slow and its database down: IMMEDIATE ROLLBACK; the error rate passes the verification gate
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)
    harness: Harness = make_harness(
        catalog_yaml(checkout()), prometheus_url=prometheus.url, kube=kube
    )
    return harness


def checkout(extra: str = "") -> str:
    """checkout with an approver who is also a responder (an approver's --force needs both)."""
    return (
        service_yaml("checkout", None).replace(
            "    responders: [U0ONCALL1]", "    responders: [U0ONCALL1, U0APPROVER1]"
        )
        + extra
    )


def image(kube: KubernetesClient) -> str:
    return kube.deployment(T, "checkout-api").images["app"]


def progress_messages(h: Harness) -> list[dict[str, Any]]:
    return [m for m in h.slack.messages("C0DEPLOYS") if "Rollback #" in m.get("text", "")]


def first_rollback(h: Harness) -> None:
    """#1: v3 → v2, succeeded."""
    assert "Rollback #1 of *checkout* started" in h.slash("run checkout --immediate v3 5xx").text
    settle(h)
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "succeeded"


# --- 1. the flip-flop ---------------------------------------------------------------------


def test_a_second_undo_would_redeploy_the_bad_release_and_is_refused(
    h: Harness, kube: KubernetesClient
) -> None:
    first_rollback(h)
    assert image(kube) == "shop/checkout:v2"
    messages_before = len(h.slack.messages("C0DEPLOYS"))

    text = h.slash("run checkout --immediate still broken").json()["text"]

    assert "No rollback of *checkout* was started" in text
    assert "checkout was rolled back from checkout:v3 by #1 (" in text
    assert "undoing again would re-deploy it; use `--to N` to choose a revision" in text
    assert "1 (checkout:v1) · 3 (checkout:v3) · 4 (checkout:v2, current)" in text
    assert "nobody was paged" in text
    assert image(kube) == "shop/checkout:v2"  # the bad release stays out
    assert [r.id for r in h.bot.deps.repo.list_rollbacks()] == [1]
    settle(h)
    assert len(h.slack.messages("C0DEPLOYS")) == messages_before  # no notice, no page
    (refused,) = h.bot.deps.repo.list_audit_events(kind="rollback.refused")
    assert "rolled back from checkout:v3" in refused.detail["why"]


def test_the_flip_flop_is_refused_by_template_even_when_its_number_changed(
    h: Harness, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    first_rollback(h)  # v3 (revision 3) → v2, now revision 4
    # someone re-deploys v3 by hand: its ReplicaSet is reused under revision 5
    kube.set_image(T, "checkout-api", "app", "shop/checkout:v3")
    assert kube.deployment(T, "checkout-api").revision == 5
    kube.set_image(T, "checkout-api", "app", "shop/checkout:v2")  # and back: revision 6
    text = h.slash("run checkout --immediate bad release").json()["text"]
    assert "rolled back from checkout:v3 by #1" in text  # revision 5 is the same template


def test_going_further_back_with_to_is_allowed(h: Harness, kube: KubernetesClient) -> None:
    first_rollback(h)
    text = h.slash("run checkout --immediate --to 1 v2 is bad too").json()["text"]
    assert "Rollback #2 of *checkout* started" in text
    settle(h)
    assert image(kube) == "shop/checkout:v1"


def test_re_deploying_it_on_purpose_needs_to_and_an_approvers_force(
    h: Harness, kube: KubernetesClient
) -> None:
    first_rollback(h)
    assert (
        "approvers only"
        in h.slash("run checkout --immediate --to 3 --force bad release").json()["text"]
    )
    no_to = h.slash("run checkout --immediate --force v3 was fine", user_id="U0APPROVER1")
    assert "needs `--to N` and an approver's `--force`" in no_to.json()["text"]

    forced = h.slash(
        "run checkout --immediate --to v3 --force v3 was fine", user_id="U0APPROVER1"
    ).json()["text"]

    assert "Rollback #2 of *checkout* started" in forced
    assert "re-deploys checkout:v3, which #1 rolled back from: forced by an approver" in forced
    settle(h)
    assert image(kube) == "shop/checkout:v3"
    (started,) = [
        e for e in h.bot.deps.repo.list_audit_events(rollback_id=2) if e.kind == "rollback.started"
    ]
    assert started.detail["warnings"] and started.detail["forced"] is True


def test_the_dry_run_and_the_request_show_the_same_warning(h: Harness) -> None:
    first_rollback(h)
    h.slash("run checkout --dry-run")
    answer = h.slack.wait_for(
        "response_url", lambda c: "Dry run" in str(c.params.get("text"))
    ).params["text"]
    assert "A real run would be refused now:* checkout was rolled back from checkout:v3" in answer

    refused = h.slash("plan checkout flaky again").json()["text"]
    assert "No rollback request for *checkout* was made" in refused
    assert "rolled back from checkout:v3 by #1" in refused
    assert len(h.bot.deps.repo.list_rollbacks()) == 1


def test_an_approved_request_is_checked_again_when_it_starts(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator
) -> None:
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)
    ponr = "\n    point_of_no_return: {revision: 4, reason: migration 12 drops a column}"
    h: Harness = make_harness(
        catalog_yaml(checkout(ponr)), prometheus_url=prometheus.url, kube=kube
    )
    h.slash("plan checkout slow since v3", user_id="U0ONCALL1")  # 3 → 2: allowed now
    request = request_message(h)
    kube.set_image(T, "checkout-api", "app", "shop/checkout:v4")  # revision 4 meanwhile

    click(h, request, ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)

    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "failed"
    assert "refused at the start: going from revision 4 to 3 crosses the point of no return" in (
        r.error or ""
    )
    assert image(kube) == "shop/checkout:v4"
    said = [m["text"] for m in h.slack.messages("C0DEPLOYS") if "did not start" in m["text"]]
    assert said and "nobody was paged" in said[0]
    kinds = [e.kind for e in h.bot.deps.repo.list_audit_events(rollback_id=1)]
    assert "rollback.refused" in kinds and "rollback.started" not in kinds


# --- 1b. an assessment's buttons are about the release it assessed ------------------------


def assessment(h: Harness) -> dict[str, Any]:
    h.slash("assess checkout")
    call = h.slack.wait_for("chat.postMessage", lambda c: "Assessment #" in str(c.params))
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    return message


def test_an_old_assessments_roll_back_now_refuses_once_the_release_changed(
    h: Harness, kube: KubernetesClient
) -> None:
    old = assessment(h)
    assert "checkout-api at revision 3 (checkout:v3)" in json.dumps(old["blocks"])
    first_rollback(h)

    answer = new_answer(h.slack, click(h, old, ab.RUN_NOW_ACTION, "U0ONCALL1"))

    assert answer == (
        ":arrows_counterclockwise: Nothing was started: this assessment is about revision 3;"
        " checkout is now at revision 4 — assess again."
    )
    assert image(kube) == "shop/checkout:v2"
    assert [r.id for r in h.bot.deps.repo.list_rollbacks()] == [1]
    reply = h.slack.calls_to("response_url")[-1].params
    blocks = reply["blocks"] if isinstance(reply["blocks"], list) else json.loads(reply["blocks"])
    again = button({"blocks": blocks}, ab.ASSESS_AGAIN_ACTION)
    assert again["value"] == "checkout"

    # Plan rollback on the old assessment says the same; Assess again makes a fresh one
    answer = new_answer(h.slack, click(h, old, ab.PLAN_ACTION, "U0ONCALL1"))
    assert "this assessment is about revision 3" in answer
    h.requester.click(
        {"blocks": blocks, "ts": old["ts"]}, again, user_id="U0ONCALL1", channel_id="C0DEPLOYS"
    )
    h.slack.wait_for(
        "chat.postMessage",
        lambda c: "Assessment #2" in str(c.params),
    )
    settle(h)
    fresh = h.bot.deps.repo.get_assessment(2)
    assert fresh is not None and fresh.result["release"]["revision"] == 4


# --- 2. --to is a revision, resolved before anything starts -------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("v1", "shop/checkout:v1"),
        ("checkout:v1", "shop/checkout:v1"),
        ("shop/checkout:v1", "shop/checkout:v1"),
        ("1", "shop/checkout:v1"),
    ],
)
def test_to_takes_a_tag_or_an_image_and_resolves_it_to_its_revision(
    h: Harness, kube: KubernetesClient, target: str, expected: str
) -> None:
    text = h.slash(f"run checkout --immediate --to {target} bad release").json()["text"]
    assert "Rollback #1 of *checkout* started" in text
    settle(h)
    assert image(kube) == expected
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and (r.status, r.target_revision) == ("succeeded", "1")


def test_to_a_digest_resolves_to_the_revision_running_it(
    kube_sim: KubeSimulator, make_harness: Any, kube: KubernetesClient
) -> None:
    digest = "sha256:" + "ab12" * 16
    kube_sim.seed_deployment(NS, "pay-api", images=[f"shop/pay@{digest}", "shop/pay:v2"])
    h: Harness = make_harness(
        catalog_yaml(service_yaml("pay", None)), prometheus_url=None, kube=kube
    )
    assert "started" in h.slash("run pay --immediate --to sha256:ab12ab12ab12 bad release").text
    settle(h)
    assert kube.deployment(T, "pay-api").images["app"] == f"shop/pay@{digest}"


@pytest.mark.parametrize("target", ["abc", "v9", "sha256:0000000"])
def test_a_target_no_revision_runs_is_refused_before_anything_starts(
    h: Harness, kube: KubernetesClient, target: str
) -> None:
    h.slash("plan checkout waiting request", user_id="U0APPROVER1")
    request_message(h)

    text = h.slash(f"run checkout --immediate --to {target} bad release").json()["text"]

    assert f"No revision of checkout-api runs `{target}`" in text
    assert "1 (checkout:v1) · 2 (checkout:v2) · 3 (checkout:v3, current)" in text
    assert "nobody was paged" in text
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "pending_approval"  # not superseded by a refusal
    assert len(h.bot.deps.repo.list_rollbacks()) == 1
    assert image(kube) == "shop/checkout:v3"
    assert not progress_messages(h)


def test_a_tag_on_several_revisions_is_refused_with_the_list(
    kube_sim: KubeSimulator, make_harness: Any, kube: KubernetesClient
) -> None:
    kube_sim.seed_deployment(NS, "pay-api", images=["shop/pay:v1", "shop/pay:v2"])
    kube.restart(T, "pay-api", at=datetime(2026, 1, 1, tzinfo=UTC))  # v2 again: revision 3
    h: Harness = make_harness(
        catalog_yaml(service_yaml("pay", None)), prometheus_url=None, kube=kube
    )
    text = h.slash("run pay --immediate --to v2 bad release").json()["text"]
    assert "`v2` matches several revisions of pay-api (2, 3)" in text
    assert "Choose one with `--to N`" in text
    assert h.bot.deps.repo.list_rollbacks() == []


def test_the_plan_command_and_form_resolve_a_tag_too(h: Harness) -> None:
    assert "Rollback request #1" in h.slash("plan checkout --to v1 back to v1").json()["text"]
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.target_revision == "1"
    steps = h.bot.deps.repo.list_steps(1)
    (undo,) = [s for s in steps if s.kind == "rollout_undo"]
    assert undo.detail["params"]["to_revision"] == 1

    refused = h.slash("plan checkout --to nope oops").json()["text"]
    assert "No revision of checkout-api runs `nope`" in refused


def test_a_step_given_a_tag_fails_in_words_not_with_an_internal_error() -> None:
    with pytest.raises(StepFailed, match="`v2` is not a revision number"):
        _revision_number("v2")
    assert _revision_number("2") == 2 and _revision_number(None) is None


# --- 3. --to reaches a catalog plan of its own phases -------------------------------------


def custom(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator, step: str, seed: bool = True
) -> Harness:
    if seed:
        kube_sim.seed_deployment(NS, "board", images=["b:1", "b:2", "b:3"])
    text = catalog_yaml(
        "  board:\n    namespace: shop\n    deployment: board\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
        f"    phases:\n      application:\n        - {step}\n"
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=kube)
    return h


def test_to_reaches_the_undo_step_of_a_custom_plan(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    h = custom(make_harness, kube, kube_sim, "{kind: rollout_undo, name: Undo board}")
    assert "started" in h.slash("run board --immediate --to 1 bad release").text
    settle(h)
    assert kube.deployment(T, "board").images["app"] == "b:1"
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and (r.status, r.target_revision) == ("succeeded", "1")


def test_to_is_refused_when_the_custom_plan_cannot_honour_it(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    h = custom(make_harness, kube, kube_sim, "{kind: set_image, container: app, image: 'b:2'}")
    text = h.slash("run board --immediate --to 1 bad release").json()["text"]
    assert "has no such step" in text and "nobody was paged" in text
    assert h.bot.deps.repo.list_rollbacks() == []

    fixed = custom(
        make_harness,
        kube,
        kube_sim,
        "{kind: rollout_undo, name: Undo board, to_revision: 2}",
        seed=False,
    )
    text = fixed.slash("run board --immediate --to 1 bad release").json()["text"]
    assert "always goes back to revision 2; `--to 1` cannot change that" in text


# --- replays: one effect per delivery -------------------------------------------------------


def test_a_replayed_signed_run_is_not_executed_twice(h: Harness, kube: KubernetesClient) -> None:
    body = h.requester.slash_body(
        "run checkout --immediate bad release", user_id="U0ONCALL1", channel_id="C0DEPLOYS"
    )
    stamp = int(time.time())
    first = h.requester.post_form(body, timestamp=stamp)
    settle(h)
    replay = h.requester.post_form(body, timestamp=stamp)  # the same signed bytes, 0 s later
    retry = h.requester.post_form(body, extra_headers={"X-Slack-Retry-Num": "1"})

    assert "Rollback #1 of *checkout* started" in first.json()["text"]
    for again in (replay, retry):
        assert again.status_code == 200
        assert "already received and handled once" in again.json()["text"]
    settle(h)
    assert [r.id for r in h.bot.deps.repo.list_rollbacks()] == [1]
    assert image(kube) == "shop/checkout:v2"  # not flipped back to v3


@pytest.mark.parametrize("verb", ["plan checkout x", "abort 1", "approve 1", "reject 1 no"])
def test_every_state_changing_command_is_once_per_delivery(h: Harness, verb: str) -> None:
    body = h.requester.slash_body(verb, user_id="U0APPROVER1", channel_id="C0DEPLOYS")
    h.requester.post_form(body)
    again = h.requester.post_form(body)
    assert "already received and handled once" in again.json()["text"]


def test_a_replayed_button_press_acts_once(h: Harness, kube: KubernetesClient) -> None:
    message = assessment(h)
    body = h.requester.click_body(
        message, button(message, ab.RUN_NOW_ACTION), user_id="U0ONCALL1", channel_id="C0DEPLOYS"
    )
    stamp = int(time.time())
    assert h.requester.post_form(body, timestamp=stamp).status_code == 200
    settle(h)
    assert h.requester.post_form(body, timestamp=stamp).status_code == 200
    settle(h)

    assert [r.id for r in h.bot.deps.repo.list_rollbacks()] == [1]
    # the replay reached no listener: not even the refusal a second press would get
    assert h.bot.deps.repo.list_audit_events(kind="rollback.refused") == []
    assert image(kube) == "shop/checkout:v2"


# --- nobody can stall the others with assessments ------------------------------------------


def test_a_second_assess_of_a_service_reuses_the_running_one(
    h: Harness, prometheus: PrometheusSimulator
) -> None:
    prometheus.set_delay(1.0)  # the first assessment is still querying
    first = h.slash("assess checkout", user_id="U0SOMEONE").json()["text"]
    second = h.slash("assess checkout", user_id="U0ONCALL1").json()["text"]
    assert "Assessing *checkout*" in first
    assert "An assessment of *checkout* is already running (asked by <@U0SOMEONE>" in second
    settle(h)
    prometheus.set_delay(0)
    assert len(h.bot.deps.repo.list_assessments()) == 1
    just_after = h.slash("assess checkout").json()["text"]  # answered by the posted one
    assert "*checkout* was assessed" in just_after and "nothing new was started" in just_after
    h.bot.deps.work.assessments.just_assessed_seconds = 0  # as if those seconds had passed
    assert "Assessing" in h.slash("assess checkout").json()["text"]  # free again once done


def test_the_plan_form_resolves_its_target_while_it_is_open(h: Harness) -> None:
    message = assessment(h)
    click(h, message, ab.PLAN_ACTION, "U0ONCALL1")
    raw = h.slack.wait_for("views.open").params["view"]
    view = json.loads(raw) if isinstance(raw, str) else raw

    bad = h.requester.submit_view(
        view, {"reason": "slow", "target": "nope", "window": ""}, user_id="U0ONCALL1"
    )
    assert "No revision of checkout-api runs nope" in bad.json()["errors"]["target"]
    assert h.bot.deps.repo.list_rollbacks() == []

    good = h.requester.submit_view(
        view, {"reason": "slow", "target": "v1", "window": ""}, user_id="U0ONCALL1"
    )
    assert good.status_code == 200
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and (r.status, r.target_revision) == ("pending_approval", "1")
