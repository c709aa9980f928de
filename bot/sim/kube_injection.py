"""The Kubernetes simulator's test controls: failure injection and the request log.

Failure injection answers chosen requests with an error.
The default body is the Status the API server would send for the status code (a 404 or 409
names the object of the path). An injected answer has no effect on the cluster.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sim.kube_schema import KubeError
from bot.sim.kube_server import Answer, Route

__all__ = ["Injections", "RequestLog"]

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


class RequestLog:
    """Every request received (method, path with query, User-Agent), under the simulator's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._recorded = threading.Condition(lock)
        self._requests: list[tuple[str, str]] = []
        self._user_agents: list[str] = []  # of each request in `_requests`

    def record(self, method: str, path: str, user_agent: str) -> None:
        with self._recorded:
            self._requests.append((method, path))
            self._user_agents.append(user_agent)
            self._recorded.notify_all()

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._recorded:
            return list(self._requests)

    @property
    def user_agents(self) -> list[str]:
        with self._recorded:
            return list(self._user_agents)

    @property
    def writes(self) -> list[tuple[str, str, str | None, str]]:
        with self._recorded:
            recorded = list(zip(self._requests, self._user_agents, strict=True))
        return [
            (method, path.partition("?")[0], _first_query(path, "fieldManager"), agent)
            for (method, path), agent in recorded
            if method != "GET"
        ]

    def wait_for(self, method: str, path_regex: str, timeout: float) -> tuple[str, str]:
        pattern = re.compile(path_regex)
        deadline = time.monotonic() + timeout
        with self._recorded:
            while True:
                for request in self._requests:
                    if request[0] == method.upper() and pattern.search(request[1]):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {method} {path_regex} within {timeout}s; got {self._requests}"
                    )
                self._recorded.wait(remaining)


def _first_query(path: str, key: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get(key)
    return values[0] if values else None
