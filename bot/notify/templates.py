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
from functools import update_wrapper
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

from bot.catalog.load import Service
from bot.notify.blocks import escape, person

TEMPLATE_NAMES = (
    "critical_notice",
    "completion_notice",
    "failure_notice",
    "aborted_notice",
    "incident_update",
    "incident_topic",
    "sla_breach",
    # customer updates (bot/customer): plain text for a status page, drafted for a person
    "customer_title",
    "customer_started",
    "customer_resolved",
    "customer_unresolved",
)
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
    return Mrkdwn(person(user_id))


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


DEFAULT_SOURCES = default_sources()


def default_path(name: str) -> str:
    return str(Path(__file__).with_name("templates") / f"{name}.j2")


def source_for(service: Service, name: str) -> str:
    if name not in DEFAULT_SOURCES:
        raise KeyError(f"unknown template {name!r}")
    return service.templates.get(name) or DEFAULT_SOURCES[name]


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
