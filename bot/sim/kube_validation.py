"""What the API server refuses: decoding (types, unknown fields) and validation (422 Invalid).

`conform` is the decoding step, on the body of a create or replace and on the result of a
patch: a value of the wrong type is refused — 400 BadRequest for a body ("… cannot be handled
as a Deployment: json: cannot unmarshal …"), 422 Invalid for a patch — and unknown fields are
dropped with a warning, or refused under `fieldValidation=Strict`. kube-apiserver before 1.25
dropped them silently; the simulator does what current servers do.

`validate` runs after defaulting: the rules of pkg/apis/*/validation that catch client bugs
(negative replicas, a Job that restarts Always, a selector that does not match its template …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.sim import kube_crd_schema as crd_schema
from bot.sim.kube_decode import DecodeError, decode
from bot.sim.kube_fields import schema_of
from bot.sim.kube_schema import KubeError, ResourceType, requirements_of

__all__ = ["FIELD_VALIDATION", "conform", "validate"]

JSON = Any
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PERCENT = re.compile(r"^[0-9]+%$")


def conform(
    rt: ResourceType, obj: JSON, *, field_validation: str, is_patch: bool, name: str = ""
) -> tuple[JSON, list[str]]:
    """`obj` decoded as the server stores it, and the warnings to send back."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
        raise KubeError.bad_request("the body of the request is not a Kubernetes object")
    _check_identity(rt, obj)
    custom = crd_schema.SCHEMAS.get((rt.group, rt.kind))
    if custom is not None:
        return _conform_custom(rt, obj, custom, field_validation, name)
    kind = "Scale" if rt.kind == "Scale" else rt.kind
    schema = schema_of(kind, obj, is_builtin=rt.is_builtin)
    try:
        decoded = decode(schema, obj)
    except DecodeError as error:
        if is_patch:
            field = error.path.partition(".")[2] or "patch"
            message = f"Invalid value: {_go_value(obj, field)}: {error}"
            raise KubeError.invalid(rt, name, [(field, message)]) from error
        raise KubeError.bad_request(_cannot_handle(rt, str(error))) from error
    unknown = [f'unknown field "{path}"' for path in sorted(decoded.unknown)]
    if unknown and field_validation == "Strict":
        message = f"strict decoding error: {', '.join(unknown)}"
        raise KubeError.bad_request(message if is_patch else _cannot_handle(rt, message))
    warnings = [] if field_validation == "Ignore" else unknown
    return decoded.value, warnings


def _conform_custom(
    rt: ResourceType, obj: JSON, schema: JSON, field_validation: str, name: str
) -> tuple[JSON, list[str]]:
    """A custom resource against its CRD's structural schema: 422 for wrong types, unknown
    fields pruned (a warning, or refused under Strict)."""
    errors: list[tuple[str, str]] = []
    unknown: list[str] = []
    pruned = crd_schema.check(schema, obj, errors, unknown)
    if errors:
        raise KubeError.invalid(rt, name or str(obj["metadata"].get("name", "")), errors)
    found = [f'unknown field "{path}"' for path in unknown]
    if found and field_validation == "Strict":
        raise KubeError.bad_request(f"strict decoding error: {', '.join(found)}")
    return pruned, [] if field_validation == "Ignore" else found


def _cannot_handle(rt: ResourceType, message: str) -> str:
    return f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {message}'


def _go_value(obj: JSON, path: str) -> str:
    current: JSON = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return f'"{current}"' if isinstance(current, str) else str(current)


def _check_identity(rt: ResourceType, obj: JSON) -> None:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version and api_version != rt.api_version and not rt.is_builtin:
        raise KubeError.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    if kind and kind != rt.kind:
        raise KubeError.bad_request(
            f"the object provided is unrecognized (must be of type {rt.kind}): "
            f"kind {kind!r} does not match"
        )


def validate(rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    """The validation rules that catch real client bugs; raises 422 Invalid."""
    name = obj["metadata"].get("name", "")
    errors: list[tuple[str, str]] = []
    if not name:
        errors.append(("metadata.name", "Required value: name or generateName is required"))
    elif not _NAME.match(name) or len(name) > 253:
        errors.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    spec = obj.get("spec") or {}
    if rt.kind in ("Deployment", "ReplicaSet"):
        errors += _selector_errors(spec, (old or {}).get("spec"), rt.kind == "Deployment")
        errors += _non_negative(spec, "replicas", "minReadySeconds", "revisionHistoryLimit")
        errors += _template_errors(spec.get("template") or {}, "spec.template.spec")
    if rt.kind == "Deployment":
        errors += _deployment_errors(spec)
    elif rt.kind == "Job":
        errors += _non_negative(spec, "parallelism", "completions", "backoffLimit")
        errors += _template_errors(spec.get("template") or {}, "spec.template.spec")
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            errors.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
    elif rt.kind == "Service":
        errors += _service_errors(spec)
    if errors:
        raise KubeError.invalid(rt, name, errors)


def validate_scale(rt: ResourceType, name: str, replicas: int) -> None:
    if replicas < 0:
        message = f"Invalid value: {replicas}: must be greater than or equal to 0"
        raise KubeError.invalid(rt, name, [("spec.replicas", message)])


def _non_negative(spec: JSON, *keys: str) -> list[tuple[str, str]]:
    return [
        (f"spec.{key}", f"Invalid value: {spec[key]}: must be greater than or equal to 0")
        for key in keys
        if isinstance(spec.get(key), int) and spec[key] < 0
    ]


def _template_errors(template: JSON, path: str) -> list[tuple[str, str]]:
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        return [(f"{path}.containers", "Required value")]
    errors = []
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not container.get(key):
                errors.append((f"{path}.containers[{i}].{key}", "Required value"))
    return errors


def _deployment_errors(spec: JSON) -> list[tuple[str, str]]:
    errors = []
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "Recreate"):
        errors.append(
            (
                "spec.strategy.type",
                f'Unsupported value: "{kind}": supported values: "Recreate", "RollingUpdate"',
            )
        )
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate" and rolling:
        errors.append(
            (
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        )
    if kind == "RollingUpdate" and rolling:
        path = "spec.strategy.rollingUpdate"
        for key in ("maxSurge", "maxUnavailable"):
            errors += _int_or_percent(rolling.get(key), f"{path}.{key}")
        if (
            not errors
            and _is_zero(rolling.get("maxSurge"))
            and _is_zero(rolling.get("maxUnavailable"))
        ):
            value = rolling.get("maxUnavailable")
            shown = f'"{value}"' if isinstance(value, str) else str(value)
            errors.append(
                (
                    f"{path}.maxUnavailable",
                    f"Invalid value: {shown}: may not be 0 when `maxSurge` is 0",
                )
            )
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds", 0)
    if isinstance(deadline, int) and deadline <= min_ready:
        errors.append(
            (
                "spec.progressDeadlineSeconds",
                f"Invalid value: {deadline}: must be greater than minReadySeconds",
            )
        )
    return errors


def _int_or_percent(value: JSON, path: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [
                (
                    path,
                    f'Invalid value: "{value}": a valid percent string must be a numeric string '
                    "followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
                    "validation is '[0-9]+%')",
                )
            ]
        if int(value[:-1]) > 100 and path.endswith("maxUnavailable"):
            return [(path, f'Invalid value: "{value}": must not be greater than 100%')]
        return []
    if value < 0:
        return [(path, f"Invalid value: {value}: must be greater than or equal to 0")]
    return []


def _is_zero(value: JSON) -> bool:
    return value in (0, "0%")


def _service_errors(spec: JSON) -> list[tuple[str, str]]:
    errors = []
    kind = spec.get("type", "ClusterIP")
    supported = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
    if kind not in supported:
        listed = ", ".join(f'"{s}"' for s in supported)
        errors.append(("spec.type", f'Unsupported value: "{kind}": supported values: {listed}'))
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName":
        errors.append(("spec.ports", "Required value"))
    for i, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(
                (
                    f"spec.ports[{i}].port",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            )
    return errors


def _selector_errors(
    spec: JSON, old_spec: JSON | None, is_immutable: bool
) -> list[tuple[str, str]]:
    selector = spec.get("selector")
    if not selector or not requirements_of(selector):
        return [("spec.selector", "Required value")]
    errors = []
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not all(req.matches(labels) for req in requirements_of(selector)):
        errors.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    if is_immutable and old_spec is not None and old_spec.get("selector") != selector:
        errors.append(
            ("spec.selector", f"Invalid value: {_go_selector(selector)}: field is immutable")
        )
    return errors


def _go_map(labels: Mapping[str, str]) -> str:
    """Labels printed like Go's %#v of a map[string]string, as the server's message does."""
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def _go_selector(selector: Mapping[str, JSON]) -> str:
    return f"v1.LabelSelector{{MatchLabels:{_go_map(selector.get('matchLabels') or {})}}}"
