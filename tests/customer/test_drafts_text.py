"""What a draft says (seed 002's customer message, the catalog's words), how Slack shows it
(within Block Kit's limits, escaped, whole), and how the catalog and check-config treat the new
keys and template overrides (``file:line`` errors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.catalog.load import Service, parse_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.customer import blocks
from bot.customer.text import MESSAGE_LIMIT, draft_for, outcome_of, plain
from bot.notify import template_context
from bot.notify.template_check import validate_templates
from bot.settings import Settings
from bot.sim.slack_blocks import block_errors, view_errors
from storage.customer_models import CustomerUpdate, UpdateState
from storage.models import Rollback

CATALOG = """defaults:
  channel: C0DEPLOYS
  customer_name: Acme
  status_page: {url: "https://status.example.com/hooks/rollback", token_env: STATUS_TOKEN}
services:
  checkout:
    deployment: checkout-api
    customer_name: Acme Checkout
    sla_minutes: 10
    timezone: Europe/Berlin
    responders: [U0ONCALL1]
  search-api:
    deployment: search-api
    status_page: {url: "http://127.0.0.1:9/status", token_env: SEARCH_STATUS_TOKEN}
"""
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def with_templates(*lines: str) -> str:
    """The catalog with ``templates:`` lines in checkout's entry."""
    head, tail = CATALOG.split("  search-api:\n")
    return (
        head
        + "    templates:\n"
        + "".join(f"      {x}\n" for x in lines)
        + "  search-api:\n"
        + tail
    )


def service(name: str = "checkout", text: str = CATALOG) -> Service:
    found = parse_catalog(text, "rollback.yaml").get(name)
    assert found is not None
    return found


def context(svc: Service, reason: str = "bad deploy") -> dict[str, object]:
    rollback = Rollback(
        id=7,
        service=svc.name,
        status="running",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        reason=reason,
        created_at=NOW,
        started_at=NOW,
    )
    return template_context.context_from(rollback, [], [], None, svc, NOW + timedelta(minutes=1))


def test_the_catalog_resolves_names_and_status_pages() -> None:
    checkout, search = service(), service("search-api")
    assert checkout.customer_name == "Acme Checkout" and search.customer_name == "Acme"
    assert checkout.status_page is not None and checkout.status_page.token_env == "STATUS_TOKEN"
    assert search.status_page is not None and search.status_page.token_env == "SEARCH_STATUS_TOKEN"
    bare = parse_catalog("defaults: {channel: C0X}\nservices:\n  order-api: {deployment: o}\n")
    order = bare.get("order-api")
    assert order is not None and order.customer_name == "Order api" and order.status_page is None


def test_the_started_draft_is_seed_002s_message_with_name_and_estimate() -> None:
    svc = service()
    draft = draft_for(svc, "started", "running", context(svc))
    assert draft.status == "investigating"
    assert draft.title == "Acme Checkout: service disruption"
    assert draft.message == (
        "We are currently experiencing technical difficulties with Acme Checkout.\n"
        "Our team is working on resolving the issue.\n"
        "We expect normal service to resume within 10 minutes (by 13:10 CET).\n"
        "We apologize for any inconvenience."
    )


@pytest.mark.parametrize(
    ("outcome", "status", "words"),
    [
        ("succeeded", "resolved", "normal service has resumed"),
        ("failed", "identified", "still working on restoring normal service"),
        ("aborted", "identified", "still working on restoring normal service"),
    ],
)
def test_the_end_drafts_the_update_the_outcome_calls_for(
    outcome: str, status: str, words: str
) -> None:
    svc = service()
    assert outcome_of(outcome)[0] == status
    draft = draft_for(svc, "finished", outcome, context(svc))
    assert draft.status == status and words in draft.message


def test_overrides_render_as_plain_text_for_customers_and_escaped_in_slack() -> None:
    svc = service(text=with_templates("customer_started: 'Sorry: {{ reason }}'"))
    draft = draft_for(svc, "started", "running", context(svc, "<!channel> & <b>x</b>"))
    assert draft.message == "Sorry: <!channel> & <b>x</b>"  # what the status page gets
    assert plain("&lt;a&gt; &amp;amp;") == "<a> &amp;"
    shown = blocks.quoted(draft.message)
    assert "&lt;!channel&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in shown[0]["text"]["text"]


def stored(message: str, *, state: str = UpdateState.DRAFT) -> CustomerUpdate:
    return CustomerUpdate(
        id=3,
        rollback_id=7,
        service="checkout",
        moment="started",
        status="investigating",
        title="Acme: service disruption",
        message=message,
        state=state,
        version=2,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_long_message_is_shown_whole_within_slacks_limits() -> None:
    message = "& < > " * 300 + "\n" + "x" * 1190  # 2,991 characters, 5,991 once escaped
    assert len(message) <= MESSAGE_LIMIT
    text, shown = blocks.draft_message(stored(message), has_status_page=True, publishers="<@U1>")
    assert block_errors(shown) == [] and text.startswith("Draft customer update — Investigating")
    quotes = [
        b["text"]["text"]
        for b in shown
        if b["type"] == "section" and b["text"]["text"].startswith(">")
    ]
    assert len(quotes) >= 2  # too long for one section: split, never cut
    lines = "\n".join(quotes).split("\n")
    joined = "".join(line.removeprefix("> ") for line in lines)
    assert plain(joined).replace("\n", "") == message.replace("\n", "")
    actions = shown[-1]
    assert [e["action_id"] for e in actions["elements"]] == [
        blocks.PUBLISH_ACTION,
        blocks.EDIT_ACTION,
    ]
    assert actions["elements"][0]["value"] == "3:2" and "confirm" in actions["elements"][0]


def test_without_a_status_page_the_draft_says_so_and_offers_only_edit() -> None:
    _, shown = blocks.draft_message(stored("Hi"), has_status_page=False, publishers="<@U1>")
    assert "No status page is configured" in str(shown)
    assert [e["action_id"] for e in shown[-1]["elements"]] == [blocks.EDIT_ACTION]
    _, done = blocks.draft_message(
        stored("Hi", state=UpdateState.SUPERSEDED), has_status_page=True, publishers="<@U1>"
    )
    assert all(b["type"] != "actions" for b in done) and "a newer draft" in str(done)


def test_the_edit_form_is_valid_block_kit_prefilled_with_the_draft() -> None:
    view = blocks.edit_modal(stored("Hello"))
    assert view_errors(view) == [] and view["private_metadata"] == "3:2"
    status, message = view["blocks"][1], view["blocks"][2]
    assert status["element"]["initial_option"]["value"] == "investigating"
    assert [o["value"] for o in status["element"]["options"]] == [
        "investigating",
        "identified",
        "monitoring",
        "resolved",
    ]
    assert message["element"]["initial_value"] == "Hello"
    assert blocks.parse_value("3:2") == (3, 2) and blocks.parse_value("x:2") is None


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("status_page: {url: ftp://x, token_env: T}", "must be an http:// or https:// URL"),
        ("status_page: {url: 'https://x', token_env: lower}", "is not an environment variable"),
        ("status_page: {url: 'https://x'}", "token_env"),
        ("customer_name: ''", "customer_name"),
    ],
)
def test_bad_status_page_and_customer_name_are_catalog_errors_with_lines(
    section: str, expected: str
) -> None:
    text = f"defaults:\n  channel: C0X\nservices:\n  checkout:\n    deployment: c\n    {section}\n"
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "rollback.yaml")
    (error,) = caught.value.errors
    assert error.startswith("rollback.yaml:6: ") and expected in error


def test_check_config_validates_customer_template_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rollback.yaml"
    text = with_templates(
        "customer_resolved: |",
        "  All good with {{ customer_name }}.",
        "  Back at {{ resumed_at }}.",
    )
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("        Back at {{ resumed_at }}.") + 1
    errors = validate_templates(parse_catalog(path.read_text(), str(path)))
    (error,) = errors
    assert error.startswith(f"{path}:{line}: services.checkout.templates.customer_resolved: ")
    assert "'resumed_at' is undefined" in error
    assert main(["check-config", str(path)]) == 1
    assert error in capsys.readouterr().err


def test_the_token_is_read_from_the_variable_the_catalog_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    monkeypatch.delenv("STATUS_TOKEN", raising=False)
    assert settings.named_secret("STATUS_TOKEN") is None
    monkeypatch.setenv("STATUS_TOKEN", "has space")
    assert settings.named_secret("STATUS_TOKEN") is None
    monkeypatch.setenv("STATUS_TOKEN", "s3cr3t")
    secret = settings.named_secret("STATUS_TOKEN")
    assert secret is not None and secret.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(secret)
