"""Text pieces of the review document: times, durations, tables, signal values, step changes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storage.models import RollbackStep


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def user(user_id: str | None) -> str:
    return f"@{user_id}" if user_id else "nobody"


# What would make user text markup: emphasis, code, links and images, headings, HTML and
# autolinks, entities, strikethrough, table pipes (and the backslash that escapes them all).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]#|<>~&])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# A pipe not already escaped (an even number of backslashes before it) would end a table cell.
_BARE_PIPE = re.compile(r"(?<!\\)((?:\\\\)*)\|")


def plain(value: Any) -> str:
    """User-supplied text (a reason, an error) shown as written: one line, Markdown escaped, so
    ``[x](https://evil)`` is no link and ``## Root Cause`` no heading."""
    one_line = _LINE_BREAKS.sub(" ", str(value)).strip()
    return _MARKDOWN_SPECIALS.sub(r"\\\1", one_line)


def cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (a bare pipe or a line break would break the row);
    backslash escapes already in it (from :func:`plain`) are kept."""
    text = _LINE_BREAKS.sub(" ", str(value)).strip()
    return _BARE_PIPE.sub(r"\1\\|", text) or "—"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def took(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def signal_value(signal: str, value: Any) -> str:
    if value is None:
        return "unknown (could not be read)"
    if signal == "error_rate":
        return f"{float(value) * 100:.2f} %"
    if signal == "latency_p95_seconds":
        return f"{float(value):.3f} s"
    if signal == "health":
        return "passing" if value else "failing"
    if signal == "db_up":
        return "reachable" if value else "unreachable"
    return f"{value:g}" if isinstance(value, float) else str(value)


def changes(step: RollbackStep, deployment: str) -> list[str]:
    """What a step changed, before → after, from what it remembered."""
    d, out = step.detail, []
    params = d.get("params") or {}
    target = params.get("deployment") or deployment
    if undo := d.get("undo"):
        images = ", ".join(
            f"{c}: {undo['images_before'].get(c, '?')} → {i}"
            for c, i in undo.get("images_after", {}).items()
        )
        out.append(
            f"Deployment {target}: revision {undo['from_revision']} → template of revision"
            f" {undo['to_revision']} ({images})" + (" — already there" if d.get("is_noop") else "")
        )
    if "image_before" in d:
        out.append(f"Deployment {target} image: {d['image_before']} → {d.get('image_after')}")
    if "selector_before" in d:
        out.append(
            f"Service {params.get('service', '?')} selector:"
            f" {_labels(d['selector_before'])} → {_labels(d.get('selector') or {})}"
        )
    if "replicas_before" in d:
        out.append(
            f"Deployment {target} replicas: {d['replicas_before']} → {d.get('replicas_after')}"
        )
    if "restarted_at" in d:
        out.append(f"Deployment {target} restarted at {d['restarted_at']}")
    if "canary_percent" in d:
        path = " → ".join(str(w) for w in d.get("weights") or []) or "unchanged"
        out.append(f"Canary weight: {path} (now {d['canary_percent']} %)")
    if "job" in d:
        out.append(f"Job {d['job']} created ({d.get('status', 'did not finish')})")
    for name in d.get("snapshots") or {}:
        out.append(f"{name}: snapshot of the state before the rollback kept in the bot's database")
    return out


def _labels(selector: Mapping[str, Any]) -> str:
    """A label selector as kubectl takes it (``app=storefront,version=blue``), not a dict."""
    return ",".join(f"{k}={v}" for k, v in dict(selector).items()) or "(none)"
