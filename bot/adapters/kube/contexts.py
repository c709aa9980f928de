"""The context names a kubeconfig holds (``check-config`` warns about regions naming others)."""

from __future__ import annotations

from kubernetes.config import ConfigException, list_kube_config_contexts


def kubeconfig_contexts(kubeconfig: str | None) -> frozenset[str] | None:
    """The contexts of ``kubeconfig`` (several files joined with ``:`` are merged, as kubectl
    does; None: the default location). None when there is no readable kubeconfig."""
    try:
        # the config loaders carry no annotations
        contexts, _ = list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, TypeError, ValueError):
        return None
    return frozenset(str(c["name"]) for c in contexts or () if isinstance(c, dict) and "name" in c)


def kubeconfig_current_context(kubeconfig: str | None) -> str | None:
    """The kubeconfig's current context (what a target without a context uses), or None when
    there is no readable kubeconfig or it names none."""
    try:
        _, active = list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, TypeError, ValueError):
        return None
    name = active.get("name") if isinstance(active, dict) else None
    return str(name) if name else None
