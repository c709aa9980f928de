"""Control step kinds: a timed wait, and a manual gate someone releases with a button."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.execution.steps.base import DryRun, StepContext
from bot.rollback.plan import StepSpec

POLL_SECONDS = 2.0


def wait(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Wait ``seconds`` in total, counting time already waited before a restart."""
    seconds = float(params["seconds"])
    started = ctx.previous.get("wait_started")
    if started is None:
        started = ctx.clock().isoformat()
        ctx.remember({"wait_started": started})
    waited = (ctx.clock() - datetime.fromisoformat(started)).total_seconds()
    if seconds > waited:
        ctx.wait(seconds - waited)
    return {"waited_seconds": seconds}


def describe_wait(dry: DryRun, s: StepSpec) -> str:
    return f"waits {s.params['seconds']} s"


def manual_gate(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Pause until someone presses Continue (the button records ``continued_by`` on the step)."""
    fresh = ctx.fresh_detail

    def check() -> str | None:
        who = fresh().get("continued_by")
        return f"continued by <@{who}>" if who else None

    ctx.remember({"waiting_for": str(params.get("prompt") or "Continue when ready")})
    return {"gate": ctx.poll_until(check, POLL_SECONDS, "manual gate")}


def describe_manual_gate(dry: DryRun, s: StepSpec) -> str:
    return "pauses until someone presses Continue"
