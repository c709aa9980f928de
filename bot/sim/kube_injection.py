"""Failure injection for the Kubernetes simulator: answer chosen requests with an error.

The default body is the Status the API server would send for the status code (a 404 or 409
names the object of the path). An injected answer has no effect on the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sim.kube_schema import KubeError
from bot.sim.kube_server import Answer, Route

__all__ = ["Injections"]

JSON = Any
_INJECTED_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by KubeSimulator"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    500: ("InternalError", "Internal error occurred: injected by KubeSimulator"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


@dataclass
class _Injection:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    body: dict[str, JSON] | None


class Injections:
    """The pending injections; `route_of(path)` names the object of a path (or raises)."""

    def __init__(self, route_of: Callable[[str], Route | None]) -> None:
        self._route_of = route_of
        self._injections: list[_Injection] = []

    def add(
        self, method: str, path_regex: str, status: int, times: int, body: dict[str, JSON] | None
    ) -> None:
        self._injections.append(
            _Injection(method.upper(), re.compile(path_regex), status, times, body)
        )

    def take(self, method: str, path: str) -> Answer | None:
        """The injected answer for this request, if one matches (using it up)."""
        for injection in self._injections:
            if injection.method in ("*", method) and injection.path.search(path):
                injection.remaining -= 1
                if injection.remaining <= 0:
                    self._injections.remove(injection)
                body = injection.body or self._status(injection.status, path)
                headers = {"Retry-After": "1"} if injection.status == 429 else {}
                return Answer(injection.status, body, headers)
        return None

    def _status(self, status: int, path: str) -> JSON:
        try:
            route = self._route_of(path)
        except KubeError:
            route = None
        if route is not None and route.name and status in (404, 409):
            if status == 404:
                return KubeError.not_found(route.rt, route.name).status()
            return KubeError.conflict(route.rt, route.name).status()
        reason, message = _INJECTED_ERRORS.get(status, ("Unknown", f"injected HTTP {status}"))
        return KubeError(status, reason, message).status()
