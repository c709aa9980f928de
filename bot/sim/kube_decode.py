"""How the API server decodes a body into its Go structs, on plain JSON.

A value of the wrong type is refused (`json: cannot unmarshal string into Go struct field
DeploymentSpec.spec.replicas of type int32`), a field the struct does not have is dropped and
reported (`unknown field "spec.foo"`), `null` means "not set", and a quantity is stored in its
canonical form (`0.5` → `500m`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.sim.kube_fields import GO_TYPES, INT_RANGES, ListOf, MapOf, Obj, Schema
from bot.sim.kube_quantity import QUANTITY_PATTERN, canonical_quantity

__all__ = ["DecodeError", "Decoded", "decode"]

JSON = Any
_INDEX = re.compile(r"\[[0-9]+\]")


class DecodeError(ValueError):
    """A value that does not decode into its Go type; `path` is the Go struct field path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class Decoded:
    value: JSON
    unknown: list[str] = field(default_factory=list)  # paths like spec.template.spec.foo


def decode(schema: Obj, body: JSON) -> Decoded:
    """`body` as the server would store it: typed, without unknown fields and nulls."""
    result = Decoded(None)
    result.value = _decode(schema, body, "", "", result)
    return result


def _decode(schema: Schema, value: JSON, path: str, go_path: str, result: Decoded) -> JSON:
    if schema == "any" or value is None:
        return value
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            raise _type_error(value, go_path, schema.go)
        kept = {}
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else key
            sub = schema.fields.get(key)
            if sub is None:
                result.unknown.append(item_path)
            elif item is not None:
                kept[key] = _decode(sub, item, item_path, _go_field(schema.go, item_path), result)
        return kept
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise _type_error(value, go_path, f"[]{_go_name(schema.item)}")
        return [
            _decode(schema.item, item, f"{path}[{i}]", go_path, result)
            for i, item in enumerate(value)
        ]
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise _type_error(value, go_path, f"map[string]{_go_name(schema.value)}")
        return {
            key: _decode(schema.value, item, f"{path}.{key}", go_path, result)
            for key, item in value.items()
            if item is not None
        }
    return _scalar(schema, value, go_path)


def _scalar(kind: str, value: JSON, go_path: str) -> JSON:
    if kind == "quantity":
        canonical = canonical_quantity(value)
        if canonical is None:
            raise DecodeError(
                go_path, f"quantities must match the regular expression '{QUANTITY_PATTERN}'"
            )
        return canonical
    if kind == "intstr":
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise DecodeError(
            go_path,
            f"json: cannot unmarshal {_json_type(value)} into Go value of type intstr.IntOrString",
        )
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind in INT_RANGES:
        # Go refuses 3.0 for an int as much as 3.5 (json.loads makes both floats).
        if is_int and -INT_RANGES[kind] <= value < INT_RANGES[kind]:
            return value
        raise _type_error(value, go_path, kind, is_literal=True)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind in ("string", "time") and isinstance(value, str):
        return value
    if kind == "object" and isinstance(value, dict):
        return value
    raise _type_error(value, go_path, GO_TYPES.get(kind, kind))


def _go_field(struct: str, path: str) -> str:
    """Go's UnmarshalTypeError names the innermost struct and the full field path."""
    return f"{struct}.{_INDEX.sub('', path)}"


def _go_name(schema: Schema) -> str:
    if isinstance(schema, Obj):
        return f"v1.{schema.go}"
    if isinstance(schema, ListOf | MapOf):
        return "[]" if isinstance(schema, ListOf) else "map"
    return GO_TYPES.get(schema, "resource.Quantity" if schema == "quantity" else schema)


def _json_type(value: JSON, *, is_literal: bool = False) -> str:
    """How Go names the JSON value: a number that does not fit an int is shown as written."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}" if is_literal else "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


def _type_error(
    value: JSON, go_path: str, go_type: str, *, is_literal: bool = False
) -> DecodeError:
    where = f"Go struct field {go_path}" if go_path else "Go value"
    shown = _json_type(value, is_literal=is_literal)
    message = f"json: cannot unmarshal {shown} into {where} of type {go_type}"
    return DecodeError(go_path, message)
