"""Service health URL check (the runbook's ``curl -f --max-time 5``)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class HealthResult:
    is_healthy: bool
    note: str


def check_health(client: httpx.Client, url: str, timeout_seconds: float) -> HealthResult:
    """2xx is healthy; anything else — status, timeout, refused connection — is a failed check.
    A redirect is not followed (``curl -f`` does not either): a health URL that redirects, to a
    login page say, tells nothing about the service, so a 3xx is a failed check."""
    try:
        resp = client.get(url, timeout=timeout_seconds, follow_redirects=False)
    except httpx.TimeoutException:
        return HealthResult(False, f"no answer within {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return HealthResult(False, f"unreachable ({type(exc).__name__})")
    if resp.is_success:
        return HealthResult(True, f"HTTP {resp.status_code}")
    if resp.is_redirect:
        return HealthResult(False, f"HTTP {resp.status_code} redirect (not followed)")
    return HealthResult(False, f"HTTP {resp.status_code}")
