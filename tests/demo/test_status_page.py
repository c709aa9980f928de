"""The demo's own status page: a strict loopback simulator the demo catalog names, its token in
the variable the catalog names for as long as the demo runs — and no status page in the demo
catalog when no URL is given (the benchmarks)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from bot.adapters.http import HttpClient
from bot.adapters.status_page import StatusPage, StatusPageError, StatusUpdate
from bot.demo import STATUS_PAGE_TOKEN_ENV, demo_catalog
from bot.demo.simulators import start_demo
from bot.settings import Settings

UPDATE = StatusUpdate(
    incident_id="rollback-bot:checkout:1",
    title="Checkout: service disruption",
    status="resolved",
    message="Back to normal.",
    service="checkout",
    update_id="rollback-bot-checkout-1-1-v1",
    sent_at=datetime(2026, 12, 4, 20, 30, tzinfo=UTC),
)


def test_the_demo_runs_its_own_status_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATUS_PAGE_TOKEN_ENV, raising=False)
    with ExitStack() as stack, HttpClient() as http:
        demo = start_demo(stack)
        pages = {s.status_page for s in demo.catalog.services.values()}
        assert len(pages) == 1  # under defaults: every demo service has it
        (page,) = pages
        assert page is not None and page.url == demo.status_page.hook_url
        assert page.url.startswith("http://127.0.0.1:")  # nothing leaves the machine
        token = Settings().named_secret(page.token_env)
        assert token is not None and token.get_secret_value() == demo.status_page.token
        with pytest.raises(StatusPageError) as refused:
            StatusPage(http, page.url, "not-the-token").publish(UPDATE)
        assert refused.value.http_status == 401
        assert StatusPage(http, page.url, token.get_secret_value()).publish(UPDATE) == 201
        assert [b["status"] for b in demo.status_page.accepted] == ["resolved"]
    assert STATUS_PAGE_TOKEN_ENV not in os.environ  # put back as it was


def test_without_a_url_the_demo_catalog_has_no_status_page() -> None:
    catalog = demo_catalog("http://127.0.0.1:9")
    assert all(s.status_page is None for s in catalog.services.values())
