"""Block Kit validation as strict as Slack's: the simulator refuses what Slack refuses.

Slack answers a message with one text a character too long with ``invalid_blocks`` (a modal
with ``invalid_arguments``) and explains in ``errors`` and ``response_metadata.messages``, each
naming the field by JSON pointer. The numbers here are Slack's documented limits, written out
on purpose instead of imported from the bot (``bot/notify/limits.py``): a wrong limit there must
show up as a refused message in the tests, not pass because both sides share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TEXT_TYPES = ("plain_text", "mrkdwn")
_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)


class _Check:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def length(self, value: Any, limit: int, pointer: str, minimum: int = 0) -> None:
        if not isinstance(value, str):
            self.fail("must be a string", pointer)
        elif len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", pointer)
        elif len(value) < minimum:
            self.fail(f"must be more than {minimum - 1} characters", pointer)

    def text(
        self, obj: Any, limit: int, pointer: str, *, types: tuple[str, ...] = _TEXT_TYPES
    ) -> None:
        if not isinstance(obj, Mapping):
            self.fail("must provide an object", pointer)
            return
        if obj.get("type") not in types:
            self.fail(f"must be one of {', '.join(types)}", f"{pointer}/type")
        self.length(obj.get("text"), limit, f"{pointer}/text", minimum=1)

    def element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, Mapping):
            self.fail("must provide an object", pointer)
            return
        if "action_id" in element:
            self.length(element["action_id"], 255, f"{pointer}/action_id")
        if element.get("type") == "button":
            self.text(element.get("text"), 75, f"{pointer}/text", types=("plain_text",))
            if "value" in element:
                self.length(element["value"], 2000, f"{pointer}/value")
            if "url" in element:
                self.length(element["url"], 3000, f"{pointer}/url")
            if element.get("style") not in (None, "primary", "danger"):
                self.fail("must be one of primary, danger", f"{pointer}/style")

    def block(self, block: Any, pointer: str) -> None:
        if not isinstance(block, Mapping):
            self.fail("must provide an object", pointer)
            return
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            self.fail("unsupported type", f"{pointer}/type")
            return
        if "block_id" in block:
            self.length(block["block_id"], 255, f"{pointer}/block_id")
        if kind == "section":
            self._section(block, pointer)
        elif kind == "header":
            self.text(block.get("text"), 150, f"{pointer}/text", types=("plain_text",))
        elif kind == "context":
            self._list(block.get("elements"), 10, f"{pointer}/elements", self._context_element)
        elif kind == "actions":
            self._list(block.get("elements"), 25, f"{pointer}/elements", self.element)
        elif kind == "input":
            self.text(block.get("label"), 2000, f"{pointer}/label", types=("plain_text",))
            if "hint" in block:
                self.text(block["hint"], 2000, f"{pointer}/hint", types=("plain_text",))
            self.element(block.get("element"), f"{pointer}/element")

    def _section(self, block: Mapping[str, Any], pointer: str) -> None:
        if "text" not in block and "fields" not in block:
            self.fail("must provide either text or fields", pointer)
        if "text" in block:
            self.text(block["text"], 3000, f"{pointer}/text")
        if "fields" in block:
            self._list(
                block["fields"],
                10,
                f"{pointer}/fields",
                lambda field, where: self.text(field, 2000, where),
            )
        if "accessory" in block:
            self.element(block["accessory"], f"{pointer}/accessory")

    def _context_element(self, element: Any, pointer: str) -> None:
        if isinstance(element, Mapping) and element.get("type") == "image":
            return
        self.text(element, 3000, pointer)

    def _list(self, items: Any, limit: int, pointer: str, each: Any) -> None:
        if not isinstance(items, list) or not items:
            self.fail("must provide a non-empty array", pointer)
            return
        if len(items) > limit:
            self.fail(f"must have at most {limit} items", pointer)
        for i, item in enumerate(items):
            each(item, f"{pointer}/{i}")


def block_errors(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """Slack's complaints about ``blocks`` (empty when Slack would take them)."""
    check = _Check()
    if not isinstance(blocks, list):
        check.fail("must provide an array", pointer)
        return check.errors
    if len(blocks) > max_blocks:
        check.fail(f"no more than {max_blocks} items allowed", pointer)
    for i, block in enumerate(blocks):
        check.block(block, f"{pointer}/{i}")
    return check.errors


def view_errors(view: Mapping[str, Any]) -> list[str]:
    """Slack's complaints about a modal or Home tab (100 blocks; titles of 24 characters)."""
    check = _Check()
    for key in ("title", "submit", "close"):
        if key in view:
            check.text(view[key], 24, f"/view/{key}", types=("plain_text",))
    if "private_metadata" in view:
        check.length(view["private_metadata"], 3000, "/view/private_metadata")
    return check.errors + block_errors(
        view.get("blocks", []), max_blocks=100, pointer="/view/blocks"
    )


def invalid(error: str, errors: list[str]) -> dict[str, Any]:
    """The answer Slack gives: ``ok: false`` with the reasons in two places."""
    return {
        "ok": False,
        "error": error,
        "errors": list(errors),
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }
