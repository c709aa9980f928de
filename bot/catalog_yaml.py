"""YAML with line numbers: plain data that remembers lines, and errors as ``file:line: message``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pydantic import ValidationError


class CatalogError(Exception):
    """The catalog is invalid; ``errors`` are ``file:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# --- YAML with line numbers ------------------------------------------------------------------

Path_ = tuple[str | int | float, ...]


class _YAMLProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _LineMapper:
    """Turns a composed YAML node tree into plain data, remembering the line of every path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.errors: list[str] = []
        self._constructor = yaml.SafeLoader("")

    def data(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _YAMLProblem(line, "merge keys (<<) are not supported: write keys out")
                key = self.data(key_node, (*path, "<key>"))
                if not isinstance(key, str | int | float | bool):
                    raise _YAMLProblem(line, "a key must be a plain name, not a list or mapping")
                if key in out:
                    self.errors.append(f"{self.source}:{line}: duplicate key {key!r}")
                self.lines[(*path, key)] = line
                out[key] = self.data(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.data(n, (*path, i)) for i, n in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # e.g. an unknown tag like !secret
            problem = getattr(exc, "problem", None) or str(exc)
            raise _YAMLProblem(node.start_mark.line + 1, problem) from None


def _line_for(loc: tuple[Any, ...], lines: Mapping[Path_, int]) -> int:
    for end in range(len(loc), -1, -1):
        key = tuple(loc[:end])
        if key in lines:
            return lines[key]
    return 1


_UNION_TAGS = {"user-id", "user-group"}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds union tags and "[key]" markers to locations; they mean nothing to a user
    return tuple(
        p for p in loc if not (isinstance(p, str) and (p in _UNION_TAGS or p.endswith("[key]")))
    )


def _errors_from(exc: ValidationError, lines: Mapping[Path_, int], src: str) -> Iterator[str]:
    seen: set[str] = set()
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        where = ".".join(str(p) for p in loc) or "catalog"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (see rollback.example.yaml for the accepted keys)"
        text = f"{src}:{_line_for(loc, lines)}: {where}: {msg}"
        if text not in seen:
            seen.add(text)
            yield text


_LINE = re.compile(r":(\d+): ")


def _line_number(error: str) -> int:
    m = _LINE.search(error)
    return int(m.group(1)) if m else 0
