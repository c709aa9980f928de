"""The ``auto_rollback:`` problems that only show with the service a section guards: a signal it
does not define, a health probe without ``health_url``, a guard with nothing to watch, two
triggers of one name.

They are read from the plain YAML data, not from the validated services, so that a service with
a typo elsewhere (or a trigger with its own mistake) still has the rest of its triggers checked
in the same ``check-config`` run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bot.catalog.auto_rollback import AutoRollback, TriggerSpec
from bot.catalog.guard import trigger_names
from bot.catalog.yaml_lines import Path_, line_for


@dataclass(frozen=True)
class _Where:
    """Where a trigger list is written, for ``file:line: path: message`` errors."""

    source: str
    lines: Mapping[Path_, int]
    at: Path_

    @property
    def is_defaults(self) -> bool:
        return self.at[0] == "defaults"

    def error(self, message: str, *below: str | int) -> str:
        path = (*self.at, *below)
        dotted = ".".join(str(p) for p in path)
        return f"{self.source}:{line_for(path, self.lines)}: {dotted}: {message}"


@dataclass(frozen=True)
class _Guarded:
    """What the checks need of one service, taken from its plain data."""

    name: str
    signals: frozenset[str] | None  # None: not a mapping (pydantic reports that)
    has_health_url: bool
    section: Mapping[str, object] | None  # its own auto_rollback:, when a mapping
    has_regions: bool = False  # regions: (several clusters)

    @classmethod
    def of(cls, name: str, raw: Mapping[str, object]) -> _Guarded:
        signals = raw.get("signals", {})
        section = raw.get("auto_rollback")
        return cls(
            name=name,
            signals=frozenset(map(str, signals)) if isinstance(signals, dict) else None,
            has_health_url=raw.get("health_url") is not None,
            section=section if isinstance(section, dict) else None,
            has_regions=bool(raw.get("regions")),
        )

    def writes(self, key: str) -> bool:
        return self.section is not None and key in self.section


_M = TypeVar("_M", bound=BaseModel)


def _valid(model: type[_M], raw: object) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None  # reported by the validation of the whole catalog


def _triggers(raw: object) -> list[tuple[int, TriggerSpec]]:
    """The items of a ``triggers:`` list that are valid on their own, with their positions."""
    items = raw if isinstance(raw, list) else []
    valid = ((i, _valid(TriggerSpec, item)) for i, item in enumerate(items))
    return [(i, t) for i, t in valid if t is not None]


def _duplicate_names(triggers: Sequence[tuple[int, TriggerSpec]], where: _Where) -> Iterator[str]:
    # the guard keeps each trigger's state under its name: two of one name would share a timer
    names = trigger_names([t for _, t in triggers])
    counts, seen = Counter(names), set()
    for (i, _), name in zip(triggers, names, strict=True):
        if counts[name] > 1 and name in seen:
            yield where.error(
                f"a second trigger named {name!r}: give one of them its own name:"
                " (the guard tells triggers apart by name)",
                "triggers",
                i,
            )
        seen.add(name)


def _unreadable(
    triggers: Sequence[tuple[int, TriggerSpec]], svc: _Guarded, where: _Where
) -> Iterator[str]:
    """Triggers that read what the service does not have: a signal, or a health_url to probe."""
    name = svc.name
    whose = f"services.{name} inherits this trigger but" if where.is_defaults else name
    own = f"or give {name} its own auto_rollback: triggers: or enabled: false"
    for i, t in triggers:
        if t.is_health and not svc.has_health_url:
            fix = f", {own}" if where.is_defaults else ""
            yield where.error(
                f"health_check_failures probes the service's health_url, and {whose} has"
                f" none (add health_url: to services.{name}{fix})",
                "triggers",
                i,
            )
        elif (
            t.metric and not t.is_health and svc.signals is not None and t.metric not in svc.signals
        ):
            fix = own if where.is_defaults else "or use query: with your own PromQL"
            yield where.error(
                f"metric {t.metric} reads signals.{t.metric}, and {whose} defines no such"
                f" signal (add it under services.{name}.signals, {fix})",
                "triggers",
                i,
            )


def _is_enabled(svc: _Guarded, default: AutoRollback | None) -> bool | None:
    """None when it cannot be told (the value, or the default it falls back on, is invalid)."""
    if svc.writes("enabled"):
        value = svc.section["enabled"] if svc.section else None
        return value if isinstance(value, bool) else None
    return None if default is None else default.enabled


def _regions_problem(svc: _Guarded, source: str, lines: Mapping[Path_, int]) -> str:
    """The guard watches one cluster a service (its context), not each region's: on a
    ``regions:`` service it would watch the wrong cluster and never see a release."""
    own = svc.writes("enabled")
    where = _Where(source, lines, ("services", svc.name, *(("auto_rollback",) if own else ())))
    whose = "" if own else " (it inherits enabled: true from defaults.auto_rollback)"
    return where.error(
        f"the automatic guard does not watch regions yet, and services.{svc.name} runs in"
        f" regions (regions:){whose}: it would watch the kubeconfig's default context and"
        f" never notice a region's release. Set enabled: false under"
        f" services.{svc.name}.auto_rollback; roll back with /rollback run {svc.name}"
        " --region …",
        *(("enabled",) if own else ("regions",)),
    )


def _service_problems(
    svc: _Guarded, default: AutoRollback | None, source: str, lines: Mapping[Path_, int]
) -> Iterator[str]:
    enabled = _is_enabled(svc, default)
    if enabled and svc.has_regions:
        yield _regions_problem(svc, source, lines)
    defaults_at = _Where(source, lines, ("defaults", "auto_rollback"))
    if svc.writes("triggers"):
        where = _Where(source, lines, ("services", svc.name, "auto_rollback"))
        raw = svc.section["triggers"] if svc.section else None
        own = _triggers(raw)
        yield from _duplicate_names(own, where)
        yield from _unreadable(own, svc, where)
        has_triggers: bool | None = bool(raw) if isinstance(raw, list) else None
    elif default is not None:
        if enabled:
            yield from _unreadable(list(enumerate(default.triggers)), svc, defaults_at)
        has_triggers = bool(default.triggers)
    else:
        has_triggers = None
    if enabled and has_triggers is False:
        at = defaults_at.at
        if svc.writes("enabled"):
            at = ("services", svc.name, "auto_rollback")
        yield _Where(source, lines, at).error(
            f"enabled: true but services.{svc.name} has no triggers, so nothing would ever fire"
            " (add triggers: to its auto_rollback: or to defaults.auto_rollback, or set"
            " enabled: false)",
            "enabled",
        )


def guard_problems(
    data: Mapping[str, object], source: str, lines: Mapping[Path_, int]
) -> list[str]:
    """Every problem of the ``auto_rollback:`` sections that needs the service to see."""
    raw_defaults = data.get("defaults")
    raw_default = raw_defaults.get("auto_rollback", {}) if isinstance(raw_defaults, dict) else {}
    default = _valid(AutoRollback, raw_default)
    out: list[str] = []
    if default is not None:
        defaults_at = _Where(source, lines, ("defaults", "auto_rollback"))
        out += _duplicate_names(list(enumerate(default.triggers)), defaults_at)
    services = data.get("services")
    for name, raw in services.items() if isinstance(services, dict) else ():
        if isinstance(raw, dict):
            out += _service_problems(_Guarded.of(str(name), raw), default, source, lines)
    return out
