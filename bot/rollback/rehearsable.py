"""Which step kinds a rehearsal in staging can run (``/rollback drill <service> --rehearse``).

A rehearsal runs the service's own rollback plan against staging, then rolls forward what it
changed. So every step that writes must have an inverse (``bot.rehearsal.forward``), and the
checks that read production (its health URLs, its Prometheus) give way to the staging health
check. Pure: the catalog check and the rehearsal planner both read it.
"""

from __future__ import annotations

# writes that a roll-forward puts back, from the staging state read when the rehearsal is planned
INVERTIBLE = frozenset({"rollout_undo", "switch_selector", "scale", "shift_traffic", "set_image"})
# writes with nothing to put back: the same release runs after them (said in the plan)
NOTHING_TO_UNDO = frozenset({"restart"})
# checks of production signals or production URLs: replaced by the staging health check
PRODUCTION_CHECKS = frozenset({"http_check", "prometheus_gate"})
# steps that change nothing and run in staging as written: a manual gate is rehearsed too
# (someone presses Continue, as in production), and so is a wait (it is part of the timing)
AS_WRITTEN = frozenset({"snapshot", "wait_rollout", "wait", "manual_gate"})
# steps a rehearsal leaves out, saying why: an abort has no update to abort on the fully promoted
# Healthy Rollout a rehearsal starts from (``bot.rehearsal.rollout``)
LEFT_OUT = frozenset({"rollout_abort"})
# the traffic steps: a rehearsal whose traffic step would change nothing rehearses nothing
TRAFFIC = frozenset({"switch_selector", "shift_traffic"})

_NOT_ROLLED_FORWARD = {
    "run_job": "a Job (a migration, say) has no inverse the bot knows",
    "http_request": "a call to an API has no inverse the bot knows, and its URL is production's",
}


def why_not_rehearsable(kind: str) -> str | None:
    """Why a step of this kind cannot be rehearsed in staging, or None when it can."""
    if kind in INVERTIBLE | NOTHING_TO_UNDO | PRODUCTION_CHECKS | AS_WRITTEN | LEFT_OUT:
        return None
    why = _NOT_ROLLED_FORWARD.get(kind, "the bot has no inverse for it")
    return f"step {kind} cannot be rolled forward after a rehearsal ({why})"
