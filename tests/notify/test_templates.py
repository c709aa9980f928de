"""Notification templates: defaults rendered from stored rollbacks, escaping, overrides and
check-config's file:line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.__main__ import main
from bot.app import build_app
from bot.catalog.load import Service, parse_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.notify import template_check, template_context, templates
from bot.settings import Settings
from storage.db import make_engine, migrate
from storage.models import Rollback
from storage.repo.records import NewStep
from storage.repository import Repository

HOSTILE = "<!channel> <http://evil|click> @here &"
ESCAPED = "&lt;!channel&gt; &lt;http://evil|click&gt; @here &amp;"
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
CATALOG = """defaults:
  channel: C0DEPLOYS
  notifications:
    status_page_url: https://status.example.com
    update_every_minutes: 5
services:
  checkout:
    deployment: checkout-api
    responders: [U0ONCALL1]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    yield Repository(engine)
    engine.dispose()


@pytest.fixture
def service() -> Service:
    found = parse_catalog(CATALOG, "test.yaml").get("checkout")
    assert found is not None
    return found


def stored_rollback(repo: Repository, *, status: str, reason: str = HOSTILE) -> Rollback:
    """A real record: created, steps run (the last one failed if status is failed), finished."""
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=T0,
        reason=reason,
        channel_id="C0DEPLOYS",
        steps=[
            NewStep("preparation", "Snapshot", "snapshot"),
            NewStep("application", "Roll back the Deployment", "rollout_undo"),
            NewStep("verification", "Health check", "http_check"),
        ],
    )
    assert rollback.id is not None
    repo.set_rollback_status(rollback.id, "running", T0)
    snapshot, undo, health = repo.list_steps(rollback.id)
    for step, detail in (
        (snapshot, {"snapshots": {}}),
        (undo, {"undo": {"to_revision": 2, "images_after": {"app": "shop/checkout:v2"}}}),
    ):
        assert step.id is not None
        repo.start_step(step.id, T0)
        repo.finish_step(step.id, "succeeded", T0 + timedelta(minutes=1), detail=detail)
    assert health.id is not None
    repo.start_step(health.id, T0 + timedelta(minutes=1))
    if status == "running":
        return repo.get_rollback(rollback.id)  # type: ignore[return-value]
    outcome = "failed" if status == "failed" else "succeeded"
    error = "health check http://checkout/health: HTTP 503" if outcome == "failed" else None
    repo.finish_step(health.id, outcome, T0 + timedelta(minutes=4), error=error)
    repo.record_approval(rollback.id, "U0APPROVER1", "approve", via="slack", now=T0)
    done = repo.set_rollback_status(
        rollback.id, status, T0 + timedelta(minutes=4, seconds=30), error=error
    )
    assert done is not None
    return done


def render(repo: Repository, service: Service, rollback: Rollback, name: str) -> str:
    context = template_context.build_context(repo, rollback, service, T0 + timedelta(minutes=5))
    return templates.render(service, name, context)


def test_every_default_template_renders_from_a_stored_rollback(
    repo: Repository, service: Service
) -> None:
    running = stored_rollback(repo, status="running")
    critical = render(repo, service, running, "critical_notice")
    assert critical.startswith(":rotating_light: *CRITICAL: Production Rollback Initiated*")
    for expected in (
        "SLA: the rollback should be done within 15 minutes",
        "Rollback coordinator: <@U0ONCALL1>",
        "User impact: HIGH",
        "Data impact: MINIMAL",
        "Rollback in progress — now: Health check",
        "Updates every 5 minutes",
        "Status page: https://status.example.com",
    ):
        assert expected in critical
    assert "Business impact" not in critical  # the catalog gives none: not made up
    assert "Estimated downtime" not in critical  # the SLA is a target, not an estimate
    update = render(repo, service, running, "incident_update")
    assert "Steps done: 2 of 3" in update and "Next update in 5 minutes" in update
    topic = render(repo, service, running, "incident_topic")
    assert topic == (
        "Rollback #1 of checkout: Rollback in progress (2/3 steps),"
        " verification phase: Health check"
    )
    breach = render(repo, service, running, "sla_breach")
    assert "RollbackTakingTooLong" in breach and "running for 5 min (SLA: 15 minutes)" in breach

    repo.set_rollback_status(1, "succeeded", T0 + timedelta(minutes=4))
    assert running.id is not None
    (health,) = [s for s in repo.list_steps(running.id) if s.name == "Health check"]
    assert health.id is not None
    repo.finish_step(health.id, "succeeded", T0 + timedelta(minutes=4))
    done = repo.get_rollback(1)
    assert done is not None
    completion = render(repo, service, done, "completion_notice")
    assert "Duration: 4 min" in completion
    assert "Target version: revision 2 (app=shop/checkout:v2)" in completion
    assert ":white_check_mark: Health check: PASSED" in completion
    assert "This is the final update" in render(repo, service, done, "incident_update")


def test_failure_and_abort_notices_name_the_failing_step(
    repo: Repository, service: Service
) -> None:
    failed = stored_rollback(repo, status="failed")
    notice = render(repo, service, failed, "failure_notice")
    assert "Failed in phase *verification*, step *Health check*" in notice
    assert "Error: health check http://checkout/health: HTTP 503" in notice
    assert "Steps done: 2 of 3" in notice
    aborted = render(repo, service, failed, "aborted_notice")
    assert "after 4 min 30 s; 2 of 3 steps done" in aborted


@pytest.mark.parametrize("name", templates.TEMPLATE_NAMES)
def test_a_hostile_reason_cannot_ping_or_forge_links(
    repo: Repository, service: Service, name: str
) -> None:
    rollback = stored_rollback(repo, status="failed")
    text = render(repo, service, rollback, name)
    assert "<!channel>" not in text and "<http://evil" not in text
    if "Reason" in text:
        assert ESCAPED in text


def test_template_authors_cannot_forget_to_escape() -> None:
    catalog = parse_catalog(
        CATALOG
        + "    templates:\n"
        + "      critical_notice: '{{ reason }} {{ reason | mrkdwn }} {{ [reason, coordinator]"
        + ' | join(" / ") }} {{ "<" ~ reason }}\'\n',
        "test.yaml",
    )
    service = catalog.get("checkout")
    assert service is not None
    context = template_context.sample_context(service) | {"reason": "<!here>"}
    text = templates.render(service, "critical_notice", context)
    assert text == "&lt;!here&gt; &lt;!here&gt; &lt;!here&gt; / <@U0SAMPLE> &lt;&lt;!here&gt;"


def test_catalog_overrides_replace_defaults_per_service(repo: Repository) -> None:
    catalog = parse_catalog(
        """defaults:
  channel: C0DEPLOYS
  templates:
    incident_topic: "{{ service }} is {{ status }}"
services:
  checkout:
    deployment: checkout-api
    templates:
      critical_notice: |
        :fire: {{ service }} rollback by {{ coordinator }}: {{ reason }}
  search:
    deployment: search-api
""",
        "test.yaml",
    )
    rollback = stored_rollback(repo, status="running")
    checkout, search = catalog.get("checkout"), catalog.get("search")
    assert checkout is not None and search is not None
    assert render(repo, checkout, rollback, "critical_notice") == (
        f":fire: checkout rollback by <@U0ONCALL1>: {ESCAPED}"
    )
    assert render(repo, checkout, rollback, "incident_topic") == "checkout is running"
    assert "CRITICAL: Production Rollback" in render(repo, search, rollback, "critical_notice")
    assert template_check.validate_templates(catalog) == []


BROKEN = """defaults:
  channel: C0DEPLOYS
  templates:
    incident_topic: "{{ service }} {{ no_such_thing }}"
services:
  checkout:
    deployment: checkout-api
    templates:
      critical_notice: |
        line one is fine: {{ service }}
        line two is not: {% if reason %}
      sla_breach: "{{ ''.__class__.__mro__ }}"
      critcal_notice: "typo in the name"
"""


def test_check_config_reports_broken_templates_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(BROKEN)

    assert main(["check-config", str(path)]) == 1

    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4, errors
    by_key = {line.split(": ")[1]: line for line in errors}
    assert by_key["defaults.templates.incident_topic"].startswith(f"{path}:4: ")
    assert "'no_such_thing' is undefined" in by_key["defaults.templates.incident_topic"]
    critical = by_key["services.checkout.templates.critical_notice"]
    assert critical.startswith(f"{path}:11: ") and "syntax error" in critical
    sla = by_key["services.checkout.templates.sla_breach"]
    assert sla.startswith(f"{path}:12: ") and "SecurityError" in sla
    typo = by_key["services.checkout.templates.critcal_notice"]
    assert typo.startswith(f"{path}:13: ") and "unknown template" in typo


def test_check_config_reports_template_and_catalog_errors_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog error does not hide the template errors: one run lists both."""
    path = tmp_path / "rollback.yaml"
    path.write_text(
        BROKEN.replace(
            "    deployment: checkout-api\n",
            "    deployment: checkout-api\n    sla_minutes: -1\n",
            1,
        )
    )

    assert main(["check-config", str(path)]) == 1

    errors = capsys.readouterr().err.splitlines()
    assert any("sla_minutes" in line for line in errors), errors
    keys = {line.split(": ")[1] for line in errors if ".templates." in line}
    assert keys == {
        "defaults.templates.incident_topic",
        "services.checkout.templates.critical_notice",
        "services.checkout.templates.sla_breach",
        "services.checkout.templates.critcal_notice",
    }


def test_check_config_accepts_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(CATALOG)
    assert main(["check-config", str(path)]) == 0


def test_a_broken_template_stops_the_bot_at_start(tmp_path: Path) -> None:
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-unused"),
        slack_signing_secret=SecretStr("unused"),
        slack_api_url="http://127.0.0.1:9/api/",
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    )
    with pytest.raises(CatalogError) as raised:
        build_app(settings, catalog=parse_catalog(BROKEN, "inline.yaml"))
    assert any("critical_notice" in e and "syntax error" in e for e in raised.value.errors)


def test_default_template_errors_point_at_the_shipped_file() -> None:
    problem = templates.check_source("ok\n{{ missing }}", {})
    assert problem is not None and problem[0] == 2 and "'missing' is undefined" in problem[1]
    assert templates.default_path("critical_notice").endswith(
        "bot/notify/templates/critical_notice.j2"
    )
    assert Path(templates.default_path("critical_notice")).is_file()


@pytest.mark.parametrize(
    "source",
    [
        '{{ ("{}"|mrkdwn).format(reason) }}',
        '{{ ("{r}"|mrkdwn).format(r=reason) }}',
        '{{ ("{r}"|mrkdwn).format_map({"r": reason}) }}',
        '{{ (("{}"|mrkdwn)|attr("format"))(reason) }}',
        '{{ ("{:20}"|mrkdwn).format(reason) }}',
        '{{ ("%s"|mrkdwn) % reason }}',
        '{{ "{}".format(reason) }}',
    ],
)
def test_formatting_a_mrkdwn_string_escapes_its_arguments(source: str) -> None:
    """The sandbox formats a Mrkdwn into a Mrkdwn, which the finalize hook would trust."""
    catalog = parse_catalog(
        CATALOG + "    templates:\n      critical_notice: '" + source.replace("'", "''") + "'\n",
        "test.yaml",
    )
    service = catalog.get("checkout")
    assert service is not None
    context = template_context.sample_context(service) | {"reason": "<!channel> <http://evil|x>"}
    text = templates.render(service, "critical_notice", context)
    assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in text and "<http://evil" not in text


def test_formatting_keeps_mentions_and_escapes_the_rest() -> None:
    catalog = parse_catalog(
        CATALOG
        + "    templates:\n"
        + "      critical_notice: '{{ (\"{} by {}\"|mrkdwn).format(reason, coordinator) }}'\n",
        "test.yaml",
    )
    service = catalog.get("checkout")
    assert service is not None
    context = template_context.sample_context(service) | {"reason": "<!here> & co"}
    text = templates.render(service, "critical_notice", context)
    assert text == "&lt;!here&gt; &amp; co by <@U0SAMPLE>"


ONCALL = CATALOG + (
    "    oncall:\n"
    "      - {name: Ada, phone: '+15555550101'}\n"
    "      - {name: Bob, phone: '+15555550102', after_minutes: 10}\n"
)


@pytest.mark.parametrize(
    ("catalog", "is_sms_enabled", "said", "not_said"),
    [
        (CATALOG, True, "Nobody is being paged: checkout has no `oncall:` ladder", "being paged;"),
        (
            ONCALL,
            False,
            "SMS paging is disabled (Twilio is not configured): nobody is texted.",
            "being paged",
        ),
        (ONCALL, True, "The on-call (Ada) is being paged by SMS; take over manually", "Nobody"),
    ],
)
def test_the_failure_notice_only_says_paging_happens_when_it_does(
    repo: Repository, catalog: str, is_sms_enabled: bool, said: str, not_said: str
) -> None:
    service = parse_catalog(catalog, "test.yaml").get("checkout")
    assert service is not None
    failed = stored_rollback(repo, status="failed")
    for name in ("failure_notice", "sla_breach"):
        context = template_context.build_context(
            repo, failed, service, T0 + timedelta(minutes=5), is_sms_enabled=is_sms_enabled
        )
        text = templates.render(service, name, context)
        assert said.split(";")[0] in text and not_said not in text, text


def test_the_failure_and_abort_notices_say_which_pods_run_which_release(
    repo: Repository, service: Service
) -> None:
    failed = stored_rollback(repo, status="failed")
    state = (
        "slow: revision 4 (app=slow:v2) 0/3 available · revision 3 (app=slow:v3) 3/3 available"
        " — the rollout has not finished"
    )
    context = template_context.build_context(
        repo, failed, service, T0 + timedelta(minutes=5), service_state=state
    )
    for name in ("failure_notice", "aborted_notice"):
        assert f"• Now: {state}" in templates.render(service, name, context)


def test_the_critical_notice_links_the_incident_channel_and_says_the_catalog_impact(
    repo: Repository,
) -> None:
    catalog = CATALOG.replace(
        "    responders: [U0ONCALL1]\n",
        "    responders: [U0ONCALL1]\n    impact: Customers cannot pay\n    sla_minutes: 1\n",
    )
    found = parse_catalog(catalog, "test.yaml").get("checkout")
    assert found is not None
    running = stored_rollback(repo, status="running")
    assert running.id is not None
    repo.set_incident_channel(running.id, "C0INCIDENT")
    fresh = repo.get_rollback(running.id)
    assert fresh is not None
    critical = render(repo, found, fresh, "critical_notice")
    assert "• Incident channel: <#C0INCIDENT>" in critical
    assert "Team actively working on resolution in <#C0INCIDENT>" in critical
    assert "• Business impact: Customers cannot pay" in critical
    assert "within 1 minute\n" in critical  # not "1 minutes"
    breach = render(repo, found, fresh, "sla_breach")
    assert "(SLA: 1 minute)" in breach


@pytest.mark.parametrize("impact", ["", "two\nlines", "x" * 201])
def test_a_bad_impact_line_is_refused_by_the_catalog(impact: str) -> None:
    catalog = CATALOG + f"    impact: {json.dumps(impact)}\n"
    with pytest.raises(CatalogError):
        parse_catalog(catalog, "test.yaml")
