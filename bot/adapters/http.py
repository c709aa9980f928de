"""Plain HTTP (httpx): the health probe, the HTTP steps' calls, the pool other adapters share.

The rest of the bot sees answers (:class:`HttpAnswer`) and :class:`HttpError`, never an httpx
type, so the HTTP library can change here alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# One pool for the whole process: health probes, HTTP steps and Prometheus queries run in many
# threads at once, and a connection per call would exhaust ports under load.
MAX_CONNECTIONS = 64
MAX_KEEPALIVE_CONNECTIONS = 32


class HttpError(Exception):
    """No HTTP answer at all: refused, unreachable, timed out, a broken response.

    ``str()`` is the kind of failure (``ConnectError``, ``ReadTimeout`` …): never the URL,
    which may carry credentials.
    """

    def __init__(self, kind: str, *, is_timeout: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.is_timeout = is_timeout


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    text: str  # the body, decoded
    is_success: bool  # 2xx
    is_redirect: bool  # 3xx with a Location (never followed)


@dataclass(frozen=True)
class HealthResult:
    is_healthy: bool
    note: str


class HttpClient:
    """A thread-safe HTTP client over one connection pool. Redirects are never followed."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client()

    @classmethod
    def pooled(cls) -> HttpClient:
        """The app's client: one pool sized for the worker threads."""
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS
        )
        return cls(httpx.Client(limits=limits))

    @property
    def shared(self) -> httpx.Client:
        """The pool itself, for the other adapters that speak HTTP (Prometheus)."""
        return self._client

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """One request; raises HttpError when no HTTP answer came back."""
        try:
            resp = self._client.request(
                method, url, json=json, headers=headers, timeout=timeout, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            raise HttpError(
                type(exc).__name__, is_timeout=isinstance(exc, httpx.TimeoutException)
            ) from exc
        return HttpAnswer(resp.status_code, resp.text, resp.is_success, resp.is_redirect)

    def get(self, url: str, *, timeout: float) -> HttpAnswer:
        return self.request("GET", url, timeout=timeout)

    def check_health(self, url: str, timeout_seconds: float) -> HealthResult:
        """The runbook's ``curl -f --max-time 5``: 2xx is healthy; anything else — status,
        timeout, refused connection — is a failed check. A redirect is not followed (``curl -f``
        does not either): a health URL that redirects, to a login page say, tells nothing about
        the service, so a 3xx is a failed check."""
        try:
            answer = self.get(url, timeout=timeout_seconds)
        except HttpError as exc:
            if exc.is_timeout:
                return HealthResult(False, f"no answer within {timeout_seconds:g} s")
            return HealthResult(False, f"unreachable ({exc.kind})")
        if answer.is_success:
            return HealthResult(True, f"HTTP {answer.status}")
        if answer.is_redirect:
            return HealthResult(False, f"HTTP {answer.status} redirect (not followed)")
        return HealthResult(False, f"HTTP {answer.status}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
