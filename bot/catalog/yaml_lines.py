"""YAML with line numbers: plain data that remembers lines, and errors as ``file:line: message``."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError


class CatalogError(Exception):
    """The catalog is invalid; ``errors`` are ``file:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# --- YAML with line numbers ------------------------------------------------------------------

Path_ = tuple[str | int | float, ...]


class YAMLProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class LineMapper:
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
                    raise YAMLProblem(line, "merge keys (<<) are not supported: write keys out")
                key = self.data(key_node, (*path, "<key>"))
                if not isinstance(key, str | int | float | bool):
                    raise YAMLProblem(line, "a key must be a plain name, not a list or mapping")
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
            raise YAMLProblem(node.start_mark.line + 1, problem) from None


def line_for(loc: tuple[Any, ...], lines: Mapping[Path_, int]) -> int:
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


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# pydantic's wording (and its class names) → what a person editing YAML understands
_PLAIN = {
    "model_type": "must be a mapping of keys (key: value), not {given}",
    "model_attributes_type": "must be a mapping of keys (key: value), not {given}",
    "dict_type": "must be a mapping (key: value), not {given}",
    "list_type": "must be a list (- item lines or [a, b]), not {given}",
    "string_type": "must be text, not {given}",
    "int_type": "must be a whole number, not {given}",
    "int_parsing": "must be a whole number, not {given}",
    "int_from_float": "must be a whole number, not {given}",
    "float_type": "must be a number, not {given}",
    "float_parsing": "must be a number, not {given}",
    "bool_type": "must be true or false, not {given}",
    "bool_parsing": "must be true or false, not {given}",
    "missing": "missing (required)",
    "too_short": "must not be empty",
}


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """The keys the model at ``loc`` (a mapping's location) accepts; [] when not a model."""
    current: Any = root
    for part in _clean_loc(loc):
        current = _inner(current)
        origin = get_origin(current)
        if origin is dict:
            current = get_args(current)[1]  # part is a key of the mapping
        elif origin is list:
            current = get_args(current)[0]  # part is an index
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            return []
    current = _inner(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _unknown_key(loc: tuple[Any, ...], root: type[BaseModel] | None) -> str:
    allowed = _allowed_keys(loc[:-1], root) if root is not None else []
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    if allowed:
        return "unknown key (allowed here: " + ", ".join(allowed) + ")"
    return "unknown key (see rollback.example.yaml for the accepted keys)"


def errors_from(
    exc: ValidationError,
    lines: Mapping[Path_, int],
    src: str,
    root: type[BaseModel] | None = None,
    prefix: tuple[str | int, ...] = (),
) -> Iterator[str]:
    seen: set[str] = set()
    for err in exc.errors():
        loc = (*prefix, *_clean_loc(tuple(err["loc"])))
        where = ".".join(str(p) for p in loc) or "catalog"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(tuple(err["loc"]), root)
        elif err["type"] in _PLAIN:
            msg = _PLAIN[err["type"]].format(given=_describe(err.get("input")))
        elif msg.startswith("Input should be "):
            msg = "must be " + msg.removeprefix("Input should be ")
        text = f"{src}:{line_for(loc, lines)}: {where}: {msg}"
        if text not in seen:
            seen.add(text)
            yield text


_LINE = re.compile(r":(\d+): ")


def line_number(error: str) -> int:
    m = _LINE.search(error)
    return int(m.group(1)) if m else 0
