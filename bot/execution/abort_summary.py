"""What an aborted rollback's thread says: what ran, what was cut, what never ran, anything left
running in the cluster, and the state the service is left in."""

from __future__ import annotations

from bot.rollback.lifecycle import StepStatus
from storage.models import RollbackStep

_CUT = (StepStatus.RUNNING, StepStatus.FAILED)


def abort_summary(steps: list[RollbackStep], service_state: str | None) -> str:
    """``steps`` as they were when the abort was honoured; ``service_state`` which pods run
    which release (None when the service left the catalog)."""
    ran = [s.name for s in steps if s.status == StepStatus.SUCCEEDED]
    cut = [s.name for s in steps if s.status in _CUT]
    skipped = [s.name for s in steps if s.status == StepStatus.PENDING]
    lines = [":octagonal_sign: *Aborted.*", f"Done: {', '.join(ran) or 'nothing'}."]
    if cut:
        lines.append(f"Interrupted: {', '.join(cut)}.")
    lines += [  # e.g. a Job still running in the cluster: say so, never hide it
        f":warning: {s.detail['left_running']}"
        for s in steps
        if s.status in _CUT and s.detail.get("left_running")
    ]
    lines.append(f"Not run: {', '.join(skipped) or 'nothing'}.")
    if service_state is not None:  # which pods run which release, per ReplicaSet
        lines.append(f"Now: {service_state}.")
    return "\n".join(lines)
