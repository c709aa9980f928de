"""HTTP step kinds: health checks after a rollback, and calling a deployment API (seed 003)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bot.steps import StepContext, StepFailed

POLL_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 10.0


def _expected(params: Mapping[str, Any], status: int) -> bool:
    wanted = params.get("expect_status")
    return status == int(wanted) if wanted is not None else 200 <= status < 300


def http_check(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """GET the URL until it answers as expected (a fresh rollout may need a moment)."""
    url = str(params["url"])
    last = {"answer": "no answer yet"}

    def check() -> str | None:
        try:
            resp = ctx.http.get(url, timeout=REQUEST_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            last["answer"] = f"unreachable ({type(exc).__name__})"
            return None
        last["answer"] = f"HTTP {resp.status_code}"
        return last["answer"] if _expected(params, resp.status_code) else None

    try:
        answer = ctx.poll_until(check, POLL_SECONDS, f"health check {url}")
    except StepFailed as exc:
        raise StepFailed(f"{exc}; last answer: {last['answer']}") from None
    return {"url": url, "answer": answer}


def http_request(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Call a deployment API once. It is not idempotent, so a resumed attempt does not resend."""
    url, method = str(params["url"]), str(params.get("method", "POST"))
    if ctx.previous.get("sent"):
        ctx.note(f"{method} {url} was sent before the restart; not sending it again")
        return {"url": url, "answer": ctx.previous.get("answer", "sent before the restart")}
    ctx.remember({"sent": True})
    try:
        resp = ctx.http.request(
            method, url, json=params.get("body"), timeout=REQUEST_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        raise StepFailed(f"{method} {url}: unreachable ({type(exc).__name__})") from None
    answer = f"HTTP {resp.status_code}"
    if not _expected(params, resp.status_code):
        raise StepFailed(f"{method} {url} answered {answer}: {resp.text[:200]}")
    return {"url": url, "answer": answer}


RUNNERS: dict[str, Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]] = {
    "http_check": http_check,
    "http_request": http_request,
}
