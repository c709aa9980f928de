"""``check-config`` and start-up checks of the notification templates: every template (defaults
and the catalog's overrides) renders with a sample context, and errors point at ``file:line``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from bot.catalog.load import Catalog, Service, parse_catalog
from bot.notify import templates
from bot.notify.template_context import sample_context


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
            if name not in templates.DEFAULT_SOURCES:
                path = _override_path(service, name, nodes)
                line = _file_line(nodes.get(path), 1) if path else 1
                errors.append(
                    f"{catalog.source}:{line}: {'.'.join(path or ('templates', name))}: unknown"
                    f" template (known: {', '.join(templates.TEMPLATE_NAMES)})"
                )
        for name in templates.TEMPLATE_NAMES:
            source = templates.source_for(service, name)
            if (name, source) in seen:
                continue
            seen.add((name, source))
            problem = templates.check_source(source, context)
            if problem is None:
                continue
            line, message = problem
            if name in service.templates:
                path = _override_path(service, name, nodes)
                where = f"{catalog.source}:{_file_line(nodes.get(path) if path else None, line)}"
                errors.append(f"{where}: {'.'.join(path or ('templates', name))}: {message}")
            else:
                errors.append(f"{templates.default_path(name)}:{line}: {name}: {message}")
    return errors


def _override_path(
    service: Service, name: str, nodes: Mapping[tuple[str, ...], yaml.Node]
) -> tuple[str, ...] | None:
    for path in (("services", service.name, "templates", name), ("defaults", "templates", name)):
        if path in nodes:
            return path
    return None


# A catalog that always loads: its service stands in for the real ones when the catalog has
# errors, so that check-config still tries every template override and reports all at once.
_STAND_IN = "defaults:\n  channel: C0STANDIN\nservices:\n  service:\n    deployment: service\n"


def validate_templates_in_yaml(source: str, text: str) -> list[str]:
    """The template overrides of a catalog that did not load, checked from its YAML alone
    (each rendered with a stand-in service's sample context)."""
    context = sample_context(parse_catalog(_STAND_IN, "stand-in").services["service"])
    errors = []
    for path, node in _value_nodes(text).items():
        is_override = path[0] == "defaults" or (path[0] == "services" and len(path) == 4)
        if not is_override or not isinstance(node, yaml.ScalarNode):
            continue
        where = f"{source}:{_file_line(node, 1)}: {'.'.join(path)}"
        if path[-1] not in templates.DEFAULT_SOURCES:
            known = ", ".join(templates.TEMPLATE_NAMES)
            errors.append(f"{where}: unknown template (known: {known})")
        elif (problem := templates.check_source(str(node.value), context)) is not None:
            line, message = problem
            errors.append(f"{source}:{_file_line(node, line)}: {'.'.join(path)}: {message}")
    return errors
