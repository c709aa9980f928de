"""The status page adapter against a strict loopback status page: the documented body and
headers, refusals and failures as StatusPageError (transient or not), never the token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.adapters.http import HttpClient
from bot.adapters.status_page import StatusPage, StatusPageError, StatusUpdate
from tests.conftest import closed_port_url
from tests.customer.status_page_server import StatusPageServer

TOKEN = "sp-secret-token"


@pytest.fixture
def page() -> Iterator[StatusPageServer]:
    with StatusPageServer(TOKEN) as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient() as client:
        yield client


def update(status: str = "investigating") -> StatusUpdate:
    return StatusUpdate(
        incident_id="rollback-bot:checkout:1",
        title="Checkout: service disruption",
        status=status,
        message="We are working on it & <soon>.",
        service="checkout",
        update_id="rollback-bot-checkout-1-1-v1",
        sent_at=datetime(2026, 12, 4, 20, 30, tzinfo=UTC),
    )


def test_an_update_is_posted_as_documented(page: StatusPageServer, http: HttpClient) -> None:
    assert StatusPage(http, page.url, TOKEN).publish(update()) == 201
    (received,) = page.received
    assert received.answered == 201
    assert received.headers["authorization"] == f"Bearer {TOKEN}"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["idempotency-key"] == "rollback-bot-checkout-1-1-v1"
    assert received.body == {
        "incident_id": "rollback-bot:checkout:1",
        "title": "Checkout: service disruption",
        "status": "investigating",
        "message": "We are working on it & <soon>.",
        "service": "checkout",
        "update_id": "rollback-bot-checkout-1-1-v1",
        "sent_at": "2026-12-04T20:30:00Z",
    }


def test_a_wrong_token_is_refused_for_good_and_never_said(
    page: StatusPageServer, http: HttpClient
) -> None:
    with pytest.raises(StatusPageError) as caught:
        StatusPage(http, page.url, "wrong-token").publish(update())
    assert caught.value.http_status == 401 and not caught.value.is_transient
    assert "wrong-token" not in str(caught.value) and page.url not in str(caught.value)


@pytest.mark.parametrize(("status", "is_transient"), [(500, True), (429, True), (404, False)])
def test_refusals_say_whether_to_try_again(
    page: StatusPageServer, http: HttpClient, status: int, is_transient: bool
) -> None:
    page.fail(status)
    with pytest.raises(StatusPageError) as caught:
        StatusPage(http, page.url, TOKEN).publish(update())
    assert caught.value.http_status == status
    assert caught.value.is_transient is is_transient
    assert str(caught.value).startswith(f"HTTP {status}")


def test_no_answer_in_time_and_no_connection_are_transient(
    page: StatusPageServer, http: HttpClient
) -> None:
    page.fail(0)  # hangs
    with pytest.raises(StatusPageError) as caught:
        StatusPage(http, page.url, TOKEN, timeout=0.3).publish(update())
    assert caught.value.is_transient and caught.value.http_status is None
    assert str(caught.value) == "no answer within 0.3 s"
    with pytest.raises(StatusPageError) as refused:
        StatusPage(http, closed_port_url() + "/x", TOKEN).publish(update())
    assert refused.value.is_transient and str(refused.value) == "unreachable (ConnectError)"


def test_an_unknown_status_is_never_sent(page: StatusPageServer, http: HttpClient) -> None:
    with pytest.raises(ValueError, match="not one of"):
        StatusPage(http, page.url, TOKEN).publish(update("fixed"))
    assert page.received == []
