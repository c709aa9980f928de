"""Slack's documented size limits, in one place, and the truncation every builder goes through.

Slack refuses a whole message (``invalid_blocks``) when one text is a character too long, so a
long reason or error must never reach it whole. Limits (docs.slack.dev, Block Kit reference):
a section's text 3,000 and each of at most 10 fields 2,000; a header 150 (plain text); a
context at most 10 elements, each a text object of at most 3,000; a button's text 75 and value
2,000; a block_id or action_id 255; 50 blocks in a message, 100 in a modal or Home tab; a
message's ``text`` 40,000 (Slack cuts longer ones off).

Texts are cut with "…" and, when the caller knows where the whole text can be read (the review
page, the progress message, a thread), a pointer to it. A cut never splits an escape
(``&amp;``), a mention or link (``<…>``), and closes a code block it cut open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Block = dict[str, Any]

SECTION_TEXT = 3000
SECTION_FIELD_TEXT = 2000
SECTION_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
TEXT_OBJECT = 3000  # any text object, e.g. a context element
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTIONS_ELEMENTS = 25
ID_LENGTH = 255  # block_id, action_id
INPUT_LABEL = 2000
INPUT_HINT = 2000
VIEW_TITLE = 24  # a modal's title, submit and close
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MESSAGE_TEXT = 40000

ELLIPSIS = "…"


def link(url: str, label: str = "full text") -> str:
    """A mrkdwn pointer to where the whole text can be read."""
    return f"<{url}|{label}>"


def clip_plain(text: str, limit: int) -> str:
    """Plain text (headers, buttons) cut to ``limit`` characters, ending in "…" when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def clip(text: str, limit: int, more: str | None = None) -> str:
    """mrkdwn cut to ``limit`` characters: "…" and ``more`` (a link, or a note saying where the
    whole text is) appended when cut. Escapes, mentions and links are never split."""
    if len(text) <= limit:
        return text
    tail = ELLIPSIS + (f" {more}" if more else "")
    if len(tail) >= limit // 2:  # a pointer that does not fit is dropped, never the text
        tail = ELLIPSIS
    head = _safe_cut(text, limit - len(tail) - 3)  # room for a closing ```
    if head.count("```") % 2:
        head += "```"
    return head + tail


def _safe_cut(text: str, n: int) -> str:
    head = text[: max(0, n)]
    opened = head.rfind("<")
    if opened > head.rfind(">"):  # inside <@U…>, <#C…> or <url|label>
        head = head[:opened]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:] and len(head) - amp < 6:  # inside &amp; &lt; &gt;
        head = head[:amp]
    return head.rstrip()


def message_text(text: str, more: str | None = None) -> str:
    """A message's ``text`` (the notification body, or the fallback of blocks)."""
    return clip(text, MESSAGE_TEXT, more)


def _text_object(obj: Any, limit: int, more: str | None) -> Any:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("text"), str):
        return obj
    text = obj["text"]
    is_plain = obj.get("type") == "plain_text"
    fitted = clip_plain(text, limit) if is_plain else clip(text, limit, more)
    return obj if fitted == text else {**obj, "text": fitted}


def _element(element: Any, more: str | None) -> Any:
    if not isinstance(element, Mapping):
        return element
    fitted = dict(element)
    if "text" in fitted:
        limit = BUTTON_TEXT if fitted.get("type") == "button" else TEXT_OBJECT
        fitted["text"] = _text_object(fitted["text"], limit, None)
    if isinstance(fitted.get("value"), str):
        fitted["value"] = fitted["value"][:BUTTON_VALUE]
    return fitted


def fit_block(block: Block, more: str | None = None) -> Block:
    """One block within Slack's limits (texts cut, element lists shortened)."""
    kind = block.get("type")
    fitted = dict(block)
    if kind == "section":
        if "text" in fitted:
            fitted["text"] = _text_object(fitted["text"], SECTION_TEXT, more)
        if isinstance(fitted.get("fields"), list):
            fitted["fields"] = [
                _text_object(f, SECTION_FIELD_TEXT, more) for f in fitted["fields"][:SECTION_FIELDS]
            ]
        if "accessory" in fitted:
            fitted["accessory"] = _element(fitted["accessory"], more)
    elif kind == "header":
        fitted["text"] = _text_object(fitted.get("text"), HEADER_TEXT, None)
    elif kind == "context" and isinstance(fitted.get("elements"), list):
        elements = fitted["elements"]
        if len(elements) > CONTEXT_ELEMENTS:  # the last ones joined into the tenth
            rest = [e.get("text", "") for e in elements[CONTEXT_ELEMENTS - 1 :]]
            joined = {"type": "mrkdwn", "text": " · ".join(t for t in rest if t)}
            elements = [*elements[: CONTEXT_ELEMENTS - 1], joined]
        fitted["elements"] = [_text_object(e, TEXT_OBJECT, more) for e in elements]
    elif kind == "actions" and isinstance(fitted.get("elements"), list):
        fitted["elements"] = [_element(e, more) for e in fitted["elements"][:ACTIONS_ELEMENTS]]
    elif kind == "input":
        for key, limit in (("label", INPUT_LABEL), ("hint", INPUT_HINT)):
            if key in fitted:
                fitted[key] = _text_object(fitted[key], limit, None)
    if isinstance(fitted.get("block_id"), str):
        fitted["block_id"] = fitted["block_id"][:ID_LENGTH]
    return fitted


def fit_blocks(
    blocks: Sequence[Block], *, more: str | None = None, max_blocks: int = MESSAGE_BLOCKS
) -> list[Block]:
    """Every block within its limits, and at most ``max_blocks`` of them: when there are more,
    the last one says how many were left out (and where to read everything)."""
    fitted = [fit_block(b, more) for b in blocks]
    if len(fitted) <= max_blocks:
        return fitted
    left_out = len(fitted) - (max_blocks - 1)
    where = f" {more}" if more else ""
    note = {"type": "mrkdwn", "text": f"_{left_out} more blocks not shown{ELLIPSIS}{where}_"}
    return [*fitted[: max_blocks - 1], {"type": "context", "elements": [note]}]


def fit_message(
    text: str, blocks: Sequence[Block], *, more: str | None = None
) -> tuple[str, list[Block]]:
    """A message's fallback text and blocks, both within Slack's limits."""
    return message_text(text, more), fit_blocks(blocks, more=more)


def fit_view(view: Block) -> Block:
    """A modal or Home tab within Slack's limits (100 blocks, short titles)."""
    fitted = dict(view)
    fitted["blocks"] = fit_blocks(view.get("blocks", []), max_blocks=VIEW_BLOCKS)
    for key in ("title", "submit", "close"):
        if key in fitted:
            fitted[key] = _text_object(fitted[key], VIEW_TITLE, None)
    return fitted
