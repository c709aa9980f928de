"""The console's terminal: renders what the bot sends to Slack (text + Block Kit) readably,
and reads what is typed."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

SHOWN_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"}
Message = dict[str, Any]  # a message as posted (its params), with its ts

_EMOJI = {
    ":rotating_light:": "🚨",
    ":warning:": "⚠️ ",
    ":eyes:": "👀",
    ":white_check_mark:": "✅",
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_yellow_circle:": "🟡",
    ":large_green_circle:": "🟢",
    ":grey_question:": "❔",
    ":x:": "❌",
    ":hourglass_flowing_sand:": "⏳",
    ":white_large_square:": "⬜",
    ":arrows_counterclockwise:": "🔄",
    ":mag:": "🔍",
    ":octagonal_sign:": "🛑",
    ":no_entry:": "⛔",
    ":raised_hand:": "✋",
    ":pager:": "📟",
    ":shield:": "🛡 ",
    ":fast_forward:": "⏩",
    ":information_source:": "ℹ️ ",
    ":hourglass:": "⌛",
    ":black_right_pointing_double_triangle_with_vertical_bar:": "⏭",
}
_USER = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_EMPHASIS = re.compile(r"(?<![\w*])[*_]([^*_\n]+)[*_](?![\w*])")


def mrkdwn_to_text(text: str) -> str:
    for code, char in _EMOJI.items():
        text = text.replace(code, char)
    text = _USER.sub(r"@\1", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _LINK.sub(r"\2 (\1)", text)
    text = _EMPHASIS.sub(r"\1", text).replace("```", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(obj: Mapping[str, Any] | None) -> str:
    return mrkdwn_to_text(str(obj.get("text", ""))) if obj else ""


def buttons_of(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every button of a message in display order, each with its ``block_id``."""
    found: list[dict[str, Any]] = []
    for block in blocks:
        elements = list(block.get("elements", []))
        if block.get("accessory"):
            elements.append(block["accessory"])
        for el in elements:
            if el.get("type") == "button":
                found.append({**el, "block_id": block.get("block_id", "")})
    return found


def render_message(
    text: str,
    blocks: Sequence[Mapping[str, Any]] | None,
    width: int = 96,
    *,
    number: int | None = None,
) -> str:
    """A message as lines of plain text; buttons are numbered for ``click N`` (``[M.N]`` when the
    message has a ``number``, for ``click M.N``)."""
    if not blocks:
        return mrkdwn_to_text(text)
    out: list[str] = []
    button_no = 0
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text_of(block.get("text"))
            out += [title.upper(), "═" * min(len(title), width)]
        elif kind == "divider":
            out.append("─" * 40)
        elif kind == "section":
            body = _text_of(block.get("text"))
            fields = [_text_of(f) for f in block.get("fields", [])]
            for line in [body, *fields]:
                out += [textwrap.fill(p, width) if p else "" for p in line.split("\n")]
        elif kind == "context":
            for el in block.get("elements", []):
                out.append(textwrap.fill(_text_of(el), width, initial_indent="  · "))
        if kind == "actions" or block.get("accessory", {}).get("type") == "button":
            labels = []
            for button in buttons_of([block]):
                button_no += 1
                tag = f"{number}.{button_no}" if number is not None else str(button_no)
                labels.append(f"[{tag}] {_text_of(button.get('text'))}")
            out.append("   ".join(labels))
    return "\n".join(out)


def find_button(
    what: str, shown: Sequence[dict[str, Any]], last: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """The message and button ``what`` names (``N``: button N of ``last``; ``M.N``: button N of
    message [M] of ``shown``, numbered from 1; a label: the newest button with it), or why
    there is none."""
    if not what:
        return "usage: click N | click M.N | click LABEL"
    if m := re.fullmatch(r"(\d+)\.(\d+)", what):
        number, n = int(m.group(1)), int(m.group(2))
        if not 1 <= number <= len(shown):
            return f"no message [{number}]: messages with buttons are [1]…[{len(shown)}]"
        message = shown[number - 1]
        buttons = buttons_of(message.get("blocks") or [])
        if not 1 <= n <= len(buttons):
            return f"no button {number}.{n}: message [{number}] has {len(buttons)}"
        return message, buttons[n - 1]
    if what.isdigit():
        buttons = buttons_of(last.get("blocks") or []) if last else []
        n = int(what)
        if last is None or not 1 <= n <= len(buttons):
            return f"no button {n}: the last message with buttons has {len(buttons)}"
        return last, buttons[n - 1]
    wanted = what.casefold()
    for message in reversed(shown):
        for button in buttons_of(message.get("blocks") or []):
            if _label(button).casefold() == wanted:
                return message, button
    labels = sorted({_label(b) for msg in shown for b in buttons_of(msg.get("blocks") or [])})
    return f"no button labelled {what!r}; buttons: {', '.join(labels) or 'none yet'}"


def _label(button: Mapping[str, Any]) -> str:
    return str(button.get("text", {}).get("text", ""))


class Call(Protocol):
    """One Slack API call as the simulator answered it (``bot.sim.slack_api.SlackCall``)."""

    @property
    def method(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def status(self) -> int: ...
    @property
    def response(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=Call)


@dataclass
class Arrivals(Generic[C]):
    shown: dict[tuple[str, str], tuple[str, Message]] = field(default_factory=dict)
    held: list[C] = field(default_factory=list)  # edits kept for later
    failures: list[str] = field(default_factory=list)
    forms: list[dict[str, Any]] = field(default_factory=list)  # views opened


def collect_arrivals(calls: Iterable[C], *, is_final: bool) -> Arrivals[C]:
    """What to show of ``calls``, by (channel, ts): its prefix and the message as it ended up
    (a message edited several times is shown once, like a Slack channel looked at after the
    fact). Unless ``is_final`` (a rollback still runs), edits are held back."""
    found: Arrivals[C] = Arrivals()
    for order, call in enumerate(calls):
        if not is_final and call.method == "chat.update":
            found.held.append(call)
        elif call.status >= 400 or call.response.get("ok") is False:
            error = call.response.get("error", call.status)
            found.failures.append(f"Slack API {call.method} failed: {error}")
        elif call.method == "views.open":
            view = call.params.get("view")
            found.forms.append(json.loads(view) if isinstance(view, str) else dict(view or {}))
        elif call.method in SHOWN_METHODS:
            p = call.params
            ts = str(call.response.get("ts") or p.get("ts") or f"#{order}")
            key = (str(p.get("channel", "")), ts)
            if call.method == "chat.update" and key in found.shown:
                prefix, _ = found.shown[key]
            else:
                prefix = _prefix(call.method, p)
            found.shown[key] = (prefix, {**p, "ts": ts})
    return found


def _prefix(method: str, p: Mapping[str, Any]) -> str:
    prefix = {
        "chat.update": f"(edited in #{p.get('channel')}) ",
        "chat.postEphemeral": "(only you) ",
        "response_url": "(only you) " if p.get("response_type") != "in_channel" else "",
    }.get(method, f"#{p.get('channel')} ")
    return f"  ↳ (thread) {prefix}" if p.get("thread_ts") else prefix


def describe_form(view: Mapping[str, Any]) -> str:
    """A modal's fields, for ``submit field=value …``."""
    fields = [
        f"{b['block_id']}{'' if b.get('optional') else ' (required)'}: {b['label']['text']}"
        for b in view.get("blocks", [])
        if b.get("type") == "input"
    ]
    title = view.get("title", {}).get("text", "form")
    return (
        f"📝 Form “{title}” opened:\n  "
        + "\n  ".join(fields)
        + "\nFill it in with `submit field=value …` (quote values with spaces)."
    )


def enable_line_editing() -> None:
    """Arrow keys, history (Up) and Ctrl-R through ``readline`` where the platform has it."""
    # e.g. Windows has no readline: plain input() still works there
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  # importing it is what makes input() use it


def read_lines_into(lines: queue.Queue[str | None]) -> None:
    """The reader thread: lines typed while the app works are queued, not lost or blocked."""
    while True:
        try:
            lines.put(input("rollback> "))
        except (EOFError, KeyboardInterrupt):
            lines.put(None)
            return
