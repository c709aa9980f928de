"""What ``check-config`` says about a service's ``staging:`` target, with ``file:line`` errors:
it must not name production, and a rehearsal must be able to run the service's rollback plan in
staging and roll it forward (``bot.rollback.rehearsable``) without calling production."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from bot.catalog.service import Catalog, Service
from bot.catalog.yaml_lines import Path_, line_for
from bot.rollback.rehearsable import why_not_rehearsable


def production_targets(svc: Service) -> list[tuple[str, str | None, str]]:
    """(what, context, namespace) of every place a rollback of ``svc`` acts on: the service's
    own target and each of its regions (None: the kubeconfig's current context)."""
    return [
        ("production", svc.context, svc.namespace),
        *((f"production region {r.name}", r.context, r.namespace) for r in svc.regions),
    ]


def names_production(svc: Service, twin: Service, current: str | None = None) -> str | None:
    """Why the staging ``twin`` is a production target of ``svc``, or None. ``current``: the
    kubeconfig's current context, which an absent context stands for (None: unknown, so only
    the same names compare equal)."""
    staging = (twin.context or current, twin.namespace)
    for what, context, namespace in production_targets(svc):
        if staging == (context or current, namespace) or (twin.context, twin.namespace) == (
            context,
            namespace,
        ):
            shown = context or twin.context or current
            named = f"context {shown}" if shown else "the current one"
            if current is not None and (context is None) != (twin.context is None):
                named += ", the kubeconfig's current context"
            return (
                f"names {what} ({named}, namespace {namespace}); give the staging context or"
                " namespace"
            )
    return None


def staging_problems(catalog: Catalog, lines: Mapping[Path_, int]) -> list[str]:
    out = []
    for name, svc in catalog.services.items():
        twin = svc.staging_twin()
        if twin is None:
            continue
        where = f"{catalog.source}:{line_for(('services', name, 'staging'), lines)}"
        if why := names_production(svc, twin):
            out.append(f"{where}: services.{name}.staging: {why}")
        out += _http_problems(catalog.source, name, svc, lines)
        if found := production_endpoint(svc):
            key, why = found
            line = line_for(("services", name, "staging", "http", key), lines)
            out.append(f"{catalog.source}:{line}: services.{name}.staging.http.{key}: {why}")
        out += _phase_problems(catalog.source, name, svc, lines)
    return out


def _http_problems(source: str, name: str, svc: Service, lines: Mapping[Path_, int]) -> list[str]:
    """Strategy http rehearses through the staging deployment API (``staging.http``), which
    only that strategy's built-in plan calls."""
    s = svc.spec
    assert s.staging is not None
    is_http_plan = s.strategy == "http" and s.phases is None
    if is_http_plan and s.staging.http is None:
        line = line_for(("services", name, "staging"), lines)
        return [
            f"{source}:{line}: services.{name}.staging: {name} rolls back through a deployment"
            " API (strategy http), and a rehearsal never calls production's http_rollback:"
            " give the staging API's endpoints, staging.http: {url: <rollback>, forward_url:"
            " <roll-forward>, status_url: <optional>}"
        ]
    if not is_http_plan and s.staging.http is not None:
        line = line_for(("services", name, "staging", "http"), lines)
        uses = "custom phases:" if s.phases is not None else f"strategy {s.strategy}"
        return [
            f"{source}:{line}: services.{name}.staging.http: only the built-in plan of strategy"
            f" http calls a deployment API, and {name} uses {uses}: remove staging.http"
        ]
    return []


def _phase_problems(source: str, name: str, svc: Service, lines: Mapping[Path_, int]) -> list[str]:
    """Custom phases are rehearsed when every step that writes can be rolled forward."""
    out = []
    for phase, steps in (svc.spec.phases or {}).items():
        for i, step in enumerate(steps):
            why = why_not_rehearsable(step.kind)
            if why is None:
                continue
            line = line_for(("services", name, "phases", phase, i), lines)
            out.append(
                f"{source}:{line}: services.{name}.phases.{phase}[{i}]: {why}, so {name}'s"
                " rollback cannot be rehearsed in staging (staging:): remove staging: or"
                " this step"
            )
    return out


def staging_context_errors(
    catalog: Catalog, staging_lines: Mapping[str, int], current: str | None
) -> list[str]:
    """check-config with the kubeconfig at hand: an absent context is its current one, so a
    staging that names that context explicitly (or leaves it out where production names it)
    is production."""
    out = []
    for name, svc in catalog.services.items():
        twin = svc.staging_twin()
        if twin is None or current is None:
            continue
        if why := names_production(svc, twin, current):
            line = staging_lines.get(name, 1)
            out.append(f"{catalog.source}:{line}: services.{name}.staging: {why}")
    return out


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port or default
    except ValueError:
        port = default
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def production_endpoint(svc: Service) -> tuple[str, str] | None:
    """(key, why) when a URL of ``staging.http`` is on the host (scheme, host and port) of
    production's deployment API (``http_rollback``): a rehearsal would call production."""
    st, prod = svc.spec.staging, svc.spec.http_rollback
    if st is None or st.http is None or prod is None:
        return None
    production = {
        _origin(u): k for k, u in (("url", prod.url), ("status_url", prod.status_url)) if u
    }
    h = st.http
    for key, url in (("url", h.url), ("forward_url", h.forward_url), ("status_url", h.status_url)):
        if url and (at := production.get(_origin(url))):
            scheme, host, port = _origin(url)
            return key, (
                f"{scheme}://{host}:{port} is the host of production's deployment API"
                f" (http_rollback.{at}), and a rehearsal never calls production: give the"
                " staging deployment API's endpoints"
            )
    return None
