"""A kubeconfig for Kubernetes simulators, as tests, benchmarks and the demo's users point the bot
at them: one context per simulator (named as given), the first one current."""

from __future__ import annotations

from collections.abc import Mapping


def kubeconfig_text(servers: Mapping[str, str], namespace: str = "shop") -> str:
    """``servers``: context name → the simulator's URL. The simulators take any credentials."""
    lines = ["apiVersion: v1", "kind: Config", f"current-context: {next(iter(servers))}"]
    lines.append("clusters:")
    lines += [f"- name: {n}\n  cluster: {{server: '{url}'}}" for n, url in servers.items()]
    lines.append("users:\n- name: bot\n  user: {token: test-token}")
    lines.append("contexts:")
    lines += [
        f"- name: {n}\n  context: {{cluster: {n}, user: bot, namespace: {namespace}}}"
        for n in servers
    ]
    return "\n".join(lines) + "\n"
