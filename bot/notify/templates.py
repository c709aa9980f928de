"""Notification templates: sandboxed Jinja2 rendering to Slack mrkdwn, defaults and overrides.

Every ``{{ value }}`` passes through a finalize hook that escapes ``&``, ``<`` and ``>``, so a
reason like ``<!channel>`` or ``<http://x|click>`` cannot ping anyone or forge a link, whatever
the template author wrote. Values the bot builds itself as mrkdwn (user mentions, channel links)
are :class:`Mrkdwn` and pass unchanged. The defaults are ``templates/<name>.j2`` next to this
module (adapted from the seed runbooks); a catalog's ``templates:`` overrides any of them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import update_wrapper
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

from bot.catalog import Catalog, Service
from bot.notify.blocks import escape
from storage.models import ACTIVE_STATUSES, Approval, Assessment, Rollback, RollbackStep
from storage.repository import Repository

TEMPLATE_NAMES = (
    "critical_notice",
    "completion_notice",
    "failure_notice",
    "aborted_notice",
    "incident_update",
    "incident_topic",
    "sla_breach",
)
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")


class Mrkdwn(str):
    """Text that is already valid, safe mrkdwn (built by the bot, or escaped once)."""

    __slots__ = ()


def mrkdwn(value: Any) -> Mrkdwn:
    """Escape a value for mrkdwn once; already-safe text passes unchanged."""
    if isinstance(value, Mrkdwn):
        return value
    return Mrkdwn(escape("n/a" if value is None else str(value)))


def mention(user_id: str | None) -> Mrkdwn:
    """``<@U…>`` for a real user id; anything else is shown escaped, never as a mention."""
    if user_id and _USER.match(user_id):
        return Mrkdwn(f"<@{user_id}>")
    return mrkdwn(user_id or "someone")


def channel_link(channel_id: str | None) -> Mrkdwn | None:
    return Mrkdwn(f"<#{channel_id}>") if channel_id and _CHANNEL.match(channel_id) else None


def _join(values: Iterable[Any], separator: str = ", ") -> Mrkdwn:
    """``join`` that escapes every item (Jinja's would hand back plain, unescaped text)."""
    return Mrkdwn(mrkdwn(separator).join(mrkdwn(v) for v in values))


class _MrkdwnFormatter(SandboxedFormatter):
    """Formats into a Mrkdwn string: every field is escaped unless it is Mrkdwn itself."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, Mrkdwn) and not format_spec:
            return value
        return escape(str(super().format_field(value, format_spec)))


class _MrkdwnSandbox(SandboxedEnvironment):
    """The sandbox would format a Mrkdwn string (``("{}"|mrkdwn).format(reason)``) into a
    Mrkdwn holding the raw arguments, which the finalize hook then trusts: escape them."""

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None or not isinstance(value.__self__, Mrkdwn):
            return wrapped
        template: Mrkdwn = value.__self__
        is_format_map = value.__name__ == "format_map"
        vformat = _MrkdwnFormatter(self).vformat

        def format_escaped(*args: Any, **kwargs: Any) -> str:
            if not is_format_map:
                return Mrkdwn(vformat(template, args, kwargs))
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one positional argument")
            return Mrkdwn(vformat(template, (), args[0]))

        return update_wrapper(format_escaped, value)


def _environment() -> SandboxedEnvironment:
    env = _MrkdwnSandbox(
        autoescape=False, undefined=StrictUndefined, finalize=mrkdwn, keep_trailing_newline=False
    )
    env.filters["mrkdwn"] = mrkdwn
    env.filters["join"] = _join
    return env


_ENV = _environment()
_COMPILED: dict[str, Template] = {}
_COMPILED_LOCK = threading.Lock()


def default_sources() -> dict[str, str]:
    """The templates that ship with the bot, by name."""
    folder = resources.files("bot.notify") / "templates"
    return {name: (folder / f"{name}.j2").read_text(encoding="utf-8") for name in TEMPLATE_NAMES}


_DEFAULTS = default_sources()


def default_path(name: str) -> str:
    return str(Path(__file__).with_name("templates") / f"{name}.j2")


def source_for(service: Service, name: str) -> str:
    if name not in _DEFAULTS:
        raise KeyError(f"unknown template {name!r}")
    return service.templates.get(name) or _DEFAULTS[name]


def compile_source(source: str) -> Template:
    with _COMPILED_LOCK:
        template = _COMPILED.get(source)
    if template is None:
        template = _ENV.from_string(source)
        with _COMPILED_LOCK:
            _COMPILED[source] = template
    return template


def render(service: Service, name: str, context: Mapping[str, Any]) -> str:
    """Render one of the service's templates (its override, else the default)."""
    return compile_source(source_for(service, name)).render(dict(context)).strip()


# --- validation -----------------------------------------------------------------------------


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to point there)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def check_source(source: str, context: Mapping[str, Any]) -> tuple[int, str] | None:
    """(template line, message) of the first problem rendering ``source``, or None."""
    try:
        template = _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        return exc.lineno, f"syntax error: {exc.message}"
    try:
        template.render(dict(context))
    except TemplateError as exc:
        return _template_line(exc.__traceback__) or 1, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # e.g. a TypeError from `{{ 1 + "a" }}`: still the author's bug
        return _template_line(exc.__traceback__) or 1, f"{type(exc).__name__}: {exc}"
    return None


def _value_nodes(text: str | None) -> dict[tuple[str, ...], yaml.Node]:
    """Catalog paths of every ``templates:`` value node, to turn template lines into file lines."""
    found: dict[tuple[str, ...], yaml.Node] = {}
    if text is None:
        return found
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return found

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, str(key.value)))
        elif len(path) >= 2 and path[-2] == "templates":
            found[path] = node

    if root is not None:
        walk(root, ())
    return found


def _file_line(node: yaml.Node | None, template_line: int) -> int:
    if node is None:
        return 1
    start = node.start_mark.line + 1
    style = getattr(node, "style", None)
    # a block scalar (`key: |`) starts on the line after its indicator
    return start + template_line if style in ("|", ">") else start + template_line - 1


def validate_templates(catalog: Catalog, source_text: str | None = None) -> list[str]:
    """Render every template (defaults and overrides) with a sample context.

    Returns ``file:line: message`` errors: syntax errors, undefined variables, unknown template
    names. ``source_text`` is the catalog's YAML (read from ``catalog.source`` when omitted).
    """
    if source_text is None:
        try:
            source_text = Path(catalog.source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            source_text = None
    nodes = _value_nodes(source_text)
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for service in catalog.services.values():
        context = sample_context(service)
        for name in sorted(service.templates):
            if name not in _DEFAULTS:
                path = _override_path(service, name, nodes)
                line = _file_line(nodes.get(path), 1) if path else 1
                errors.append(
                    f"{catalog.source}:{line}: {'.'.join(path or ('templates', name))}: unknown"
                    f" template (known: {', '.join(TEMPLATE_NAMES)})"
                )
        for name in TEMPLATE_NAMES:
            source = source_for(service, name)
            if (name, source) in seen:
                continue
            seen.add((name, source))
            problem = check_source(source, context)
            if problem is None:
                continue
            line, message = problem
            if name in service.templates:
                path = _override_path(service, name, nodes)
                where = f"{catalog.source}:{_file_line(nodes.get(path) if path else None, line)}"
                errors.append(f"{where}: {'.'.join(path or ('templates', name))}: {message}")
            else:
                errors.append(f"{default_path(name)}:{line}: {name}: {message}")
    return errors


def _override_path(
    service: Service, name: str, nodes: Mapping[tuple[str, ...], yaml.Node]
) -> tuple[str, ...] | None:
    for path in (("services", service.name, "templates", name), ("defaults", "templates", name)):
        if path in nodes:
            return path
    return None


# --- context --------------------------------------------------------------------------------

_STATUS_TEXT = {
    "pending_approval": "Waiting for approval",
    "approved": "Approved, about to start",
    "scheduled": "Scheduled",
    "running": "Rollback in progress",
    "aborting": "Aborting",
    "succeeded": "Rollback completed",
    "failed": "Rollback FAILED",
    "aborted": "Rollback aborted",
}
_RESULTS = {
    "succeeded": (":white_check_mark:", "PASSED"),
    "failed": (":x:", "FAILED"),
    "skipped": (":heavy_minus_sign:", "SKIPPED"),
    "running": (":hourglass_flowing_sand:", "RUNNING"),
    "pending": (":white_circle:", "PENDING"),
}
_VALIDATION_KINDS = ("http_check", "prometheus_gate", "wait_rollout")


def format_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "n/a"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _target_version(rollback: Rollback, steps: Iterable[RollbackStep]) -> str:
    for step in steps:
        undo = step.detail.get("undo")
        if isinstance(undo, Mapping) and "to_revision" in undo:
            images = undo.get("images_after") or {}
            shown = ", ".join(f"{c}={i}" for c, i in dict(images).items())
            return f"revision {undo['to_revision']}" + (f" ({shown})" if shown else "")
        if "image_after" in step.detail:
            return str(step.detail["image_after"])
        if "selector" in step.detail and step.kind == "switch_selector":
            return ", ".join(f"{k}={v}" for k, v in dict(step.detail["selector"]).items())
    if rollback.target_revision:
        return f"revision {rollback.target_revision}"
    return "the previous version"


def context_from(
    rollback: Rollback,
    steps: list[RollbackStep],
    approvals: list[Approval],
    assessment: Assessment | None,
    service: Service,
    now: datetime,
) -> dict[str, Any]:
    """The variables every template sees (pure: the caller reads the records)."""
    started = rollback.started_at or rollback.created_at
    ended = rollback.finished_at or now
    running = next((s for s in steps if s.status == "running"), None)
    failed = next((s for s in steps if s.status == "failed"), None)
    has_database = any(s.phase == "database" for s in steps)
    is_critical = rollback.kind == "immediate"
    validation = [
        {"name": s.name, "icon": _RESULTS[s.status][0], "result": _RESULTS[s.status][1]}
        for s in steps
        if s.phase == "verification" or s.kind in _VALIDATION_KINDS
    ]
    notifications = service.notifications
    return {
        "rollback_id": rollback.id,
        "service": rollback.service,
        "kind": rollback.kind,
        "strategy": rollback.strategy,
        "status": rollback.status,
        "status_text": _STATUS_TEXT.get(rollback.status, rollback.status),
        "is_final": rollback.status not in ACTIVE_STATUSES,
        "reason": rollback.reason or "no reason given",
        "coordinator": mention(rollback.requested_by),
        "requested_by": mention(rollback.requested_by),
        "started_at": format_time(started),
        "finished_at": format_time(rollback.finished_at),
        "now": format_time(now),
        "duration": format_duration((ended - started).total_seconds()),
        "duration_minutes": round((ended - started).total_seconds() / 60, 1),
        "estimated_downtime_minutes": service.sla_minutes,
        "sla_minutes": service.sla_minutes,
        "update_every_minutes": f"{notifications.update_every_minutes:g}",
        "status_page_url": notifications.status_page_url,
        "review_reminder_hours": f"{service.review_reminder_hours:g}",
        "incident_channel": channel_link(rollback.incident_channel_id),
        "user_impact": "HIGH — users may see a service interruption"
        if is_critical
        else "LOW — planned rollback",
        "business_impact": "HIGH — core business processes affected"
        if is_critical
        else "LOW — planned change window",
        "data_impact": "AT RISK — the plan changes the database; verify data integrity"
        if has_database
        else "MINIMAL — the plan does not touch the database",
        "target_version": _target_version(rollback, steps),
        "steps": [
            {"name": s.name, "phase": s.phase, "status": s.status, "error": s.error} for s in steps
        ],
        "steps_total": len(steps),
        "steps_done": sum(1 for s in steps if s.status == "succeeded"),
        "current_step": running.name if running else None,
        "validation": validation,
        "failed_phase": failed.phase if failed else "n/a",
        "failed_step": failed.name if failed else "n/a",
        "error": (failed.error if failed else None) or rollback.error,
        "approvers_voted": [mention(a.user_id) for a in approvals if a.decision == "approve"],
        "responders": [mention(u) for u in service.spec.responders],
        "assessment": {
            "decision": assessment.decision,
            "critical": assessment.critical_score,
            "high": assessment.high_score,
            "medium": assessment.medium_score,
            "total": assessment.total_score,
        }
        if assessment is not None
        else None,
    }


def build_context(
    repo: Repository, rollback: Rollback, service: Service, now: datetime
) -> dict[str, Any]:
    """The template context of a stored rollback: its steps, votes and assessment."""
    assert rollback.id is not None
    assessment = (
        repo.get_assessment(rollback.assessment_id) if rollback.assessment_id is not None else None
    )
    return context_from(
        rollback,
        repo.list_steps(rollback.id),
        repo.list_approvals(rollback.id),
        assessment,
        service,
        now,
    )


def sample_context(service: Service) -> dict[str, Any]:
    """A realistic context (a failed, approved rollback) for check-config's trial renders."""
    now = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)
    start = now - timedelta(minutes=7)
    rollback = Rollback(
        id=42,
        service=service.name,
        status="failed",
        kind="immediate",
        strategy=service.spec.strategy,
        requested_by="U0SAMPLE",
        reason="error rate above 10 % after v3",
        created_at=start,
        started_at=start,
        finished_at=now,
        incident_channel_id="C0INCIDENT",
        error="Wait for rollout: timed out",
    )
    steps = [
        RollbackStep(
            rollback_id=42,
            phase="application",
            position=0,
            name="Roll back the Deployment",
            kind="rollout_undo",
            status="succeeded",
            detail={"undo": {"to_revision": 2, "images_after": {"app": "shop/app:v2"}}},
        ),
        RollbackStep(
            rollback_id=42,
            phase="verification",
            position=1,
            name="Health check",
            kind="http_check",
            status="failed",
            error="timed out",
        ),
    ]
    approvals = [
        Approval(
            rollback_id=42, user_id="U0APPROVER", decision="approve", via="slack", created_at=now
        )
    ]
    assessment = Assessment(
        id=7,
        service=service.name,
        status="done",
        decision="IMMEDIATE ROLLBACK",
        critical_score=55,
        high_score=0,
        medium_score=10,
        total_score=65,
        created_at=start,
    )
    return context_from(rollback, steps, approvals, assessment, service, now)
