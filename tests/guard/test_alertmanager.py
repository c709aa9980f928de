"""``POST /alertmanager``: the whole bot over HTTP with the Slack, Kubernetes and Prometheus
simulators (token, body, services, duplicates, resolution, the guard's fire path), and once end
to end: a real Prometheus alerting rule over the test's exporter, a real Alertmanager delivering
to the bot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackCall
from storage.guard_models import GUARD_ACTOR
from storage.models import DueWork
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.guard.alertmanager_server import RealAlertmanager, alerting_config, require_alertmanager
from tests.guard.exporter import Exporter, scrape_config
from tests.prometheus_server import RealPrometheus, require_prometheus

TOKEN = "am-test-token-5f1c"
T = KubeTarget(None, "shop")
GUARD = (
    "\n    auto_rollback:\n      enabled: true\n"
    "      triggers:\n"
    "        - {metric: error_rate, threshold: 0.01, comparison: greater_than,"
    " duration_seconds: 60}\n"
)


def alert(
    name: str = "HighErrorRate",
    *,
    status: str = "firing",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts: str = "2024-05-01T10:00:00.123456789Z",
    ends: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "service": "checkout", **labels},
        "annotations": {"summary": "5xx above 10 %"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any], version: str = "4") -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps(
        {
            "version": version,
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "rollback-bot",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example",
            "alerts": list(alerts),
        }
    ).encode()


def post(h: Harness, body: bytes, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{h.server.url}/alertmanager", content=body, headers=headers, timeout=10)


def assessments_posted(h: Harness) -> list[SlackCall]:
    return [c for c in h.posted() if "Assessment #" in json.dumps(c.params.get("blocks"))]


def in_thread(h: Harness, ts: str) -> list[str]:
    return [c.params.get("text", "") for c in h.posted() if c.params.get("thread_ts") == ts]


@pytest.fixture
def kube() -> Iterator[KubernetesClient]:
    with KubeSimulator() as sim:
        sim.seed_deployment(
            "shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2", "shop/v3"]
        )
        client = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
        yield client
        client.close()


@pytest.fixture
def make(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator
) -> Callable[..., Harness]:
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.2, sessions=30, db_up=1)

    def build(extra: str = "", **settings: Any) -> Harness:
        settings.setdefault("alertmanager_token", SecretStr(TOKEN))
        harness: Harness = make_harness(
            catalog_yaml(service_yaml("checkout", None) + extra),
            prometheus_url=prometheus.url,
            kube=kube,
            **settings,
        )
        return harness

    return build


def test_without_a_token_the_webhook_says_it_is_not_configured(make: Any) -> None:
    h = make(alertmanager_token=None)
    resp = post(h, webhook(alert()))
    assert resp.status_code == 404
    assert "not configured" in resp.text and "ALERTMANAGER_TOKEN" in resp.text


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN[:-1], TOKEN + "x"])
def test_a_missing_or_wrong_token_is_refused_without_effect(make: Any, token: str | None) -> None:
    h = make()
    resp = post(h, webhook(alert(rollback="auto")), token=token)
    assert resp.status_code == 401
    h.wait_idle()
    assert h.bot.deps.repo.list_assessments() == []
    assert h.bot.deps.repo.list_audit_events() == []
    assert h.posted() == []
    assert TOKEN not in resp.text


def test_basic_auth_with_the_token_is_no_bearer_token(make: Any) -> None:
    h = make()
    resp = httpx.post(
        f"{h.server.url}/alertmanager",
        content=webhook(alert()),
        headers={"Authorization": f"Basic {TOKEN}"},
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"version": "4", "alerts": [', "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "not a JSON object"),
        (webhook(alert(), version="3"), "version '3'"),
        (b'{"version": "4", "alerts": {}}', '"alerts" is not a list'),
        (json.dumps({"version": "4", "alerts": [{"status": "firing"}]}).encode(), "labels"),
    ],
)
def test_a_malformed_body_is_a_400_with_a_short_reason(make: Any, body: bytes, why: str) -> None:
    h = make()
    resp = post(h, body)
    assert resp.status_code == 400
    assert why in resp.json()["why"]
    assert h.bot.deps.repo.list_audit_events() == []


def test_an_unknown_or_missing_service_label_is_counted_not_raised(make: Any) -> None:
    h = make()
    unknown = alert(fingerprint="0000000000000001", service="billing")
    unlabelled = alert(fingerprint="0000000000000002")
    del unlabelled["labels"]["service"]
    resp = post(h, webhook(unknown, unlabelled))
    assert resp.status_code == 200
    assert resp.json() == {
        "accepted": 0,
        "duplicate": 0,
        "unknown_service": ["billing", "(no service label)"],
    }
    h.wait_idle()
    assert h.posted() == [] and h.bot.deps.repo.list_assessments() == []


def test_a_custom_service_label_maps_the_alert(make: Any) -> None:
    h = make(alertmanager_service_label="app")
    resp = post(h, webhook(alert(app="checkout", service="something-else")))
    assert resp.json()["accepted"] == 1


def test_a_repeated_delivery_assesses_once(make: Any) -> None:
    h = make()
    first = post(h, webhook(alert()))
    assert first.json() == {"accepted": 1, "duplicate": 0, "unknown_service": []}
    h.wait_idle()
    again = post(h, webhook(alert()))  # Alertmanager's repeat_interval: the same group again
    assert again.json() == {"accepted": 0, "duplicate": 1, "unknown_service": []}
    h.wait_idle()
    (assessment,) = h.bot.deps.repo.list_assessments(service="checkout")
    assert assessment.requested_by == "alertmanager" and assessment.status == "done"
    (posted,) = assessments_posted(h)
    assert posted.params["channel"] == "C0DEPLOYS"
    assert "requested by" not in json.dumps(posted.params["blocks"])
    (note,) = in_thread(h, posted.response["ts"])
    assert "*HighErrorRate* firing since 2024-05-01 10:00:00 UTC: 5xx above 10 %" in note
    (received,) = h.bot.deps.repo.list_audit_events(kind="alert.received")
    assert received.assessment_id == assessment.id and received.actor == "alertmanager"
    # a new start of the same alert is a new alert
    assert post(h, webhook(alert(starts="2024-05-01T11:00:00Z"))).json()["accepted"] == 1


def test_a_resolved_alert_is_noted_in_the_assessment_thread(make: Any) -> None:
    h = make()
    post(h, webhook(alert()))
    h.wait_idle()
    (posted,) = assessments_posted(h)
    resolved = alert(status="resolved", ends="2024-05-01T10:07:30Z")
    assert post(h, webhook(resolved)).json()["accepted"] == 1
    h.wait_idle()
    assert post(h, webhook(resolved)).json()["duplicate"] == 1  # noted once
    h.wait_idle()
    notes = in_thread(h, posted.response["ts"])
    assert [n for n in notes if "resolved" in n] == [
        ":white_check_mark: Alertmanager: *HighErrorRate* resolved at 2024-05-01 10:07:30 UTC."
    ]
    (event,) = h.bot.deps.repo.list_audit_events(kind="alert.resolved")
    assert event.detail["thread_ts"] == posted.response["ts"]
    assert len(assessments_posted(h)) == 1  # a resolution is no new assessment


def test_rollback_auto_rolls_back_through_the_guard(make: Any, kube: KubernetesClient) -> None:
    h = make(GUARD)
    assert post(h, webhook(alert(rollback="auto"))).json()["accepted"] == 1
    h.wait_rollbacks()
    (rollback,) = h.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR and rollback.status == "succeeded"
    assert (
        'alert HighErrorRate (rollback="auto") from Alertmanager: 5xx above 10 %' in rollback.reason
    )
    assert kube.deployment(T, "checkout-api").images == {"app": "shop/checkout:v2"}
    (release,) = h.bot.deps.repo.list_guarded(service="checkout")
    assert release.status == "fired" and release.rollback_id == rollback.id
    assert release.fired_trigger == "HighErrorRate"
    (event,) = h.bot.deps.repo.list_audit_events(kind="alert.rollback")
    assert event.detail["revision"] == release.revision
    # the same alert again (repeat_interval) rolls nothing back a second time
    assert post(h, webhook(alert(rollback="auto"))).json()["duplicate"] == 1
    h.wait_rollbacks()
    assert len(h.bot.deps.repo.list_rollbacks(service="checkout")) == 1


def test_rollback_auto_with_confirmation_asks_the_channel(make: Any) -> None:
    h = make(GUARD + "      require_manual_confirmation: true\n")
    post(h, webhook(alert(rollback="auto")))
    h.wait_rollbacks()
    assert h.bot.deps.repo.list_rollbacks(service="checkout") == []
    (asked,) = [c for c in h.posted() if "Roll back now, or keep" in c.params.get("text", "")]
    assert 'alert HighErrorRate (rollback="auto") from Alertmanager' in asked.params["text"]
    actions = asked.params["blocks"][1]["elements"]
    assert [a["action_id"] for a in actions] == ["guard_rollback_now", "guard_keep_release"]


def test_rollback_auto_waits_while_the_guard_is_paused(make: Any) -> None:
    h = make(GUARD)
    assert "paused" in h.slash("guard checkout off").json()["text"]
    post(h, webhook(alert(rollback="auto")))
    h.wait_rollbacks()
    assert h.bot.deps.repo.list_rollbacks(service="checkout") == []
    (event,) = h.bot.deps.repo.list_audit_events(kind="alert.rollback")
    assert event.detail["skipped"] == "the guard is paused (by U0ONCALL1)"
    assert len(assessments_posted(h)) == 1  # assessed all the same


def test_rollback_auto_without_auto_rollback_only_assesses(make: Any) -> None:
    h = make()
    post(h, webhook(alert(rollback="auto")))
    h.wait_rollbacks()
    assert h.bot.deps.repo.list_rollbacks(service="checkout") == []
    (event,) = h.bot.deps.repo.list_audit_events(kind="alert.rollback")
    assert event.detail["skipped"] == "auto_rollback is not enabled"
    (posted,) = assessments_posted(h)
    (note,) = in_thread(h, posted.response["ts"])
    assert '`rollback="auto"` ignored: auto_rollback is not enabled for checkout' in note


# --- the real thing: Prometheus rule → Alertmanager → the bot ----------------------------------

RULES = """\
groups:
  - name: rollback-bot-test
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: max by (service) (am_error_rate) > 0.1
        labels: {rollback: auto}
        annotations: {summary: 'error rate {{ $value }}'}
"""


def wait_until(what: str, check: Callable[[], bool], seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.2)  # polling external processes (rule evaluation, grouping) with a deadline


def test_a_real_alertmanager_delivers_firing_and_resolved(make: Any, tmp_path: Any) -> None:
    """The signals the bot reads come from the simulator; the alert is the real chain's."""
    require_prometheus()
    require_alertmanager()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES, encoding="utf-8")
    h = make(GUARD)
    with (
        Exporter() as exporter,
        RealAlertmanager(f"{h.server.url}/alertmanager", TOKEN) as alertmanager,
    ):
        exporter.set("am_error_rate", 0.001, service="checkout")
        config = scrape_config(exporter.target) + alerting_config(alertmanager.target, rules)
        with RealPrometheus(config_text=config):
            _fire_and_resolve(h, exporter)


def _fire_and_resolve(h: Harness, exporter: Exporter) -> None:
    repo = h.bot.deps.repo
    exporter.set("am_error_rate", 0.5, service="checkout")
    wait_until("the alert reaches the bot", lambda: bool(repo.list_audit_events("alert.received")))
    h.wait_rollbacks()
    (received,) = repo.list_audit_events("alert.received")
    assert received.detail["alert"] == "HighErrorRate" and received.detail["rollback"] == "auto"
    (rollback,) = repo.list_rollbacks(service="checkout")
    assert rollback.requested_by == GUARD_ACTOR
    assert 'alert HighErrorRate (rollback="auto") from Alertmanager: error rate 0.5' in (
        rollback.reason
    )
    exporter.set("am_error_rate", 0.001, service="checkout")
    wait_until(
        "the resolution reaches the bot", lambda: bool(repo.list_audit_events("alert.resolved"))
    )
    h.wait_idle()
    (resolved,) = repo.list_audit_events("alert.resolved")
    (posted,) = assessments_posted(h)
    assert resolved.detail["thread_ts"] == posted.response["ts"]
    assert any("resolved at" in n for n in in_thread(h, posted.response["ts"]))
    assert len(repo.list_rollbacks(service="checkout")) == 1


# --- durable before acted on: a crash after the 200 -------------------------------------------

ALERT_KINDS = ("guard.alert_firing", "guard.alert_rollback", "guard.alert_resolved")


def work_of(h: Harness, kind: str) -> list[DueWork]:
    with Session(h.bot.deps.repo.engine) as session:
        return list(session.exec(select(DueWork).where(DueWork.kind == kind)).all())


def test_a_crash_after_the_answer_still_acts_once_after_a_restart(
    make: Any, kube: KubernetesClient
) -> None:
    crashed = make(GUARD)
    for kind in ALERT_KINDS:  # this process dies after answering, before acting on anything
        crashed.bot.deps.due.handlers.pop(kind)
    answer = post(crashed, webhook(alert(rollback="auto")))
    assert answer.json() == {"accepted": 1, "duplicate": 0, "unknown_service": []}
    crashed.wait_idle()
    assert crashed.bot.deps.repo.list_assessments() == []  # recorded, not acted on
    restarted = make(GUARD)  # the same database
    restarted.bot.deps.due.tick()
    restarted.wait_rollbacks()
    (assessment,) = restarted.bot.deps.repo.list_assessments(service="checkout")
    assert assessment.status == "done"
    (rollback,) = restarted.bot.deps.repo.list_rollbacks(service="checkout")
    assert rollback.status == "succeeded"
    assert kube.deployment(T, "checkout-api").images == {"app": "shop/checkout:v2"}
    # Alertmanager's resend (its repeat_interval) is still a duplicate
    assert post(restarted, webhook(alert(rollback="auto"))).json()["duplicate"] == 1
    restarted.bot.deps.due.tick()
    restarted.wait_rollbacks()
    assert len(restarted.bot.deps.repo.list_assessments()) == 1
    assert len(restarted.bot.deps.repo.list_rollbacks()) == 1
    assert len(assessments_posted(restarted)) == 1


def test_a_rerun_of_an_interrupted_alert_assesses_and_rolls_back_once(make: Any) -> None:
    h = make(GUARD)
    for kind in ALERT_KINDS:
        h.bot.deps.due.handlers.pop(kind)
    post(h, webhook(alert(rollback="auto"), alert("Latency", fingerprint="ff00ff00ff00ff00")))
    h.wait_idle()
    restarted = make(GUARD)
    repo = restarted.bot.deps.repo
    (firing_work,) = work_of(restarted, "guard.alert_firing")
    # run here, by hand (the runner would claim it too, at once)
    run = restarted.bot.deps.due.handlers.pop("guard.alert_firing")
    run(firing_work)  # acted on, then "crashed" before the work was marked done:
    run(firing_work)  # the lease lapses and it runs again
    (assessment,) = repo.list_assessments(service="checkout")
    assert assessment.status == "done"
    assert len(repo.list_audit_events(kind="alert.received")) == 2  # one per alert
    restarted.wait_rollbacks()  # the rollback item it scheduled ran (kicked)
    (rollback_work,) = work_of(restarted, "guard.alert_rollback")
    rerun = restarted.bot.deps.due.handlers["guard.alert_rollback"]
    rerun(rollback_work)
    rerun(rollback_work)
    restarted.wait_rollbacks()
    assert len(repo.list_rollbacks(service="checkout")) == 1
    assert len(assessments_posted(restarted)) == 1
