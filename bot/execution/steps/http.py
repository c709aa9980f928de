"""HTTP step kinds: health checks after a rollback, and calling a deployment API (seed 003)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.adapters.http import HttpAnswer, HttpError
from bot.execution.steps.base import DryRun, StepContext, StepFailed
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec

POLL_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 10.0
BODY_EXCERPT_CHARS = 200
HIDDEN = "***"
DEFAULT_METHOD = "POST"  # http_request's, when the plan names none


def redact_url(url: str) -> str:
    """The URL as it may be shown in Slack, the audit and the review: without the credentials it
    may carry (``user:password@``, query-string values such as ``?token=``, a fragment)."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(an unparsable URL)"
    netloc = f"{HIDDEN}@{host}" if "@" in parts.netloc else parts.netloc
    query = "&".join(
        f"{name}={HIDDEN}" if sep else HIDDEN
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, HIDDEN if parts.fragment else ""))


def body_excerpt(answer: HttpAnswer) -> str:
    """The start of a response body on one line. Step errors are plain text: every place that
    shows one in Slack escapes it (thread note, progress message, notices), so a body that says
    ``<!channel>`` or ``<https://evil|click>`` neither pings nor links."""
    return " ".join(answer.text[: BODY_EXCERPT_CHARS * 2].split())[:BODY_EXCERPT_CHARS]


def _expected(params: Mapping[str, Any], status: int) -> bool:
    wanted = params.get("expect_status")
    return status == int(wanted) if wanted is not None else 200 <= status < 300


def http_check(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """GET the URL until it answers as expected (a fresh rollout may need a moment)."""
    url = str(params["url"])
    shown = redact_url(url)
    last = {"answer": "no answer yet"}

    def check() -> str | None:
        try:
            answer = ctx.http.get(url, timeout=REQUEST_TIMEOUT_SECONDS)
        except HttpError as exc:
            last["answer"] = f"unreachable ({exc.kind})"
            return None
        last["answer"] = f"HTTP {answer.status}"
        return last["answer"] if _expected(params, answer.status) else None

    try:
        answer = ctx.poll_until(check, POLL_SECONDS, f"health check {shown}")
    except StepFailed as exc:
        raise StepFailed(f"{exc}; last answer: {last['answer']}") from None
    return {"url": shown, "answer": answer}


def http_request(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Call a deployment API once. It is not idempotent, so a resumed attempt does not resend."""
    url, method = str(params["url"]), str(params.get("method", DEFAULT_METHOD))
    shown = redact_url(url)
    if ctx.previous.get("sent"):
        ctx.note(f"{method} {shown} was sent before the restart; not sending it again")
        return {"url": shown, "answer": ctx.previous.get("answer", "sent before the restart")}
    ctx.remember({"sent": True})
    try:
        answer = ctx.http.request(
            method, url, json=params.get("body"), timeout=REQUEST_TIMEOUT_SECONDS
        )
    except HttpError as exc:
        raise StepFailed(f"{method} {shown}: unreachable ({exc.kind})") from None
    status = f"HTTP {answer.status}"
    if not _expected(params, answer.status):
        raise StepFailed(f"{method} {shown} answered {status}: {body_excerpt(answer)}")
    return {"url": shown, "answer": status}


def _shown_in_slack(params: Mapping[str, Any]) -> str:
    return escape(redact_url(str(params["url"])))  # no credentials in Slack


def describe_http_check(dry: DryRun, s: StepSpec) -> str:
    return f"GET {_shown_in_slack(s.params)}"


def describe_http_request(dry: DryRun, s: StepSpec) -> str:
    method = str(s.params.get("method", DEFAULT_METHOD))  # what the run will send
    return f"{escape(method)} {_shown_in_slack(s.params)}"
