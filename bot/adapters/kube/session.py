"""The API connection under KubernetesClient: an ApiClient per context, requests with retries."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config import ConfigException, load_incluster_config, new_client_from_config

from bot.adapters.kube.api_errors import (
    _first_error,
    _one_line,
    _retry_after,
    _unreachable,
    error_from_api,
)
from bot.adapters.kube.reads import ReadOnce
from bot.adapters.kube.values import KubeError, KubeTarget

# the public module's name, as before the split: log lines and any filter on it stay the same
log = logging.getLogger("bot.adapters.kubernetes")

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# who wrote a field, in managedFields and the audit log (the SDK would say "OpenAPI-Generator")
FIELD_MANAGER = "rollback-bot"


def _version() -> str:
    try:
        return importlib.metadata.version("rollback-bot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT = f"{FIELD_MANAGER}/{_version()}"


def default_api_client_factory(kubeconfig: str | None) -> Callable[[str | None], ApiClient]:
    """In-cluster credentials inside a pod when no context is named, else the kubeconfig."""

    def build(context: str | None) -> ApiClient:
        # the SDK's in-cluster loader keys on this variable too; Settings has no say in it
        if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            # the config loaders carry no annotations, hence the ignores below
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return ApiClient(configuration=configuration)
        # persist_config=False: refreshed tokens are not written back into the user's file
        built: ApiClient = new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, persist_config=False
        )
        return built

    return build


def _prepared(api_client: ApiClient, pool_size: int | None = None) -> ApiClient:
    """The bot's User-Agent, so an audit log tells its requests apart; adapter-only retries."""
    api_client.user_agent = USER_AGENT
    return _with_adapter_retries(api_client, pool_size)


def _with_adapter_retries(api_client: ApiClient, pool_size: int | None = None) -> ApiClient:
    """Leave retrying to the adapter alone, and keep as many connections as threads use.

    urllib3's default policy, which the SDK keeps, re-sends a GET answered 429/503 with
    Retry-After by itself, sleeping in the calling thread: unlogged, and past the injected sleep.
    Connection errors are retried by `KubernetesClient._call` with backoff instead.

    The SDK's pool keeps ``cpu_count * 5`` connections per host (10 on two cores); with more
    threads calling at once each surplus connection is thrown away after its request, with a
    "Connection pool is full, discarding connection" warning (a flood under 50 rollbacks).
    """
    pool_manager = api_client.rest_client.pool_manager
    no_retries = urllib3.Retry(total=0, redirect=False, respect_retry_after_header=False)
    pool_manager.connection_pool_kw["retries"] = no_retries
    if pool_size is not None:
        pool_manager.connection_pool_kw["maxsize"] = pool_size
        api_client.configuration.connection_pool_maxsize = pool_size
    pool_manager.clear()  # pools made before this would keep the old policy
    return api_client


def _dry_run(dry_run: bool) -> str | None:
    return "All" if dry_run else None


def _not_found(kind: str, name: str, t: KubeTarget) -> str:
    """The words for a 404 on a named object (the API's own say `deployments.apps "x"`)."""
    return f'{kind} "{name}" not found in namespace "{t.namespace}"'


class ApiSession:
    """KubernetesClient's connection half: ApiClients per kube context, bounded retries."""

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        api_client_for: Callable[[str | None], ApiClient] | None = None,
        retries: int = 4,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout_seconds: float = 30.0,
    ) -> None:
        self._build_client = api_client_for or default_api_client_factory(kubeconfig)
        self._retries = max(0, retries)
        self._backoff = backoff_seconds
        self._sleep = sleep
        # the SDK waits forever by default; a hung API server must not hang a rollback worker
        self._timeout = request_timeout_seconds
        self._clients: dict[str | None, ApiClient] = {}
        self._pool_size: int | None = None  # the SDK's default until size_connection_pools
        self._plurals: dict[tuple[str | None, str, str], str] = {}
        self._lock = threading.Lock()
        self._reads: ReadOnce | None = None  # set on a reading_once() view only

    def size_connection_pools(self, size: int) -> None:
        """Keep up to ``size`` connections per API server: as many as threads may call at once
        (clients built already and those built later)."""
        with self._lock:
            self._pool_size = max(1, size)
            for api_client in self._clients.values():
                _with_adapter_retries(api_client, self._pool_size)

    def connection_pool_size(self, context: str | None = None) -> int:
        """How many connections the client of ``context`` keeps per host (what urllib3 uses)."""
        api_client = self._client(KubeTarget(namespace="default", context=context))
        return int(api_client.rest_client.pool_manager.connection_pool_kw["maxsize"])

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for api_client in clients:
            api_client.close()  # type: ignore[no-untyped-call]  # SDK method is unannotated

    # ── internals ──

    def _client(self, t: KubeTarget) -> ApiClient:
        """One ApiClient per kube context, built on first use."""
        with self._lock:
            cached = self._clients.get(t.context)
            if cached is not None:
                return cached
            try:
                built = self._build_client(t.context)
            except (ConfigException, OSError) as exc:
                where = f'context "{t.context}"' if t.context else "the default context"
                message = f"cannot load Kubernetes credentials for {where}: {_one_line(str(exc))}"
                raise KubeError(None, "ConfigError", message) from None
            self._clients[t.context] = _prepared(built, self._pool_size)
            return built

    def _read_once(self, key: tuple[object, ...], fetch: Callable[[], T]) -> T:
        """``fetch()``, or on a reading_once() view the value fetched for ``key`` before."""
        return fetch() if self._reads is None else self._reads.get(key, fetch)

    def _call(self, what: str, request: Callable[[], T], not_found: str | None = None) -> T:
        """One API request; 429/5xx and connection errors are retried with exponential backoff."""
        attempt = 0
        while True:
            delay: float | None = None
            try:
                return request()
            except ApiException as exc:
                error, delay = error_from_api(exc, not_found), _retry_after(exc)
            except urllib3.exceptions.HTTPError as exc:
                error = _unreachable(exc)
            except json.JSONDecodeError:
                message = f"{what}: the Kubernetes API answered with invalid JSON"
                raise KubeError(None, "ClientError", message) from None
            except (ValueError, OpenApiException) as exc:
                # pydantic: arguments or an answer that do not fit the models
                raise KubeError(None, "Invalid", f"{what}: {_first_error(exc)}") from None
            is_transient = error.status in TRANSIENT_STATUSES or error.reason == "Unreachable"
            if not is_transient or attempt >= self._retries:
                raise error from None
            attempt += 1
            wait = max(delay or 0.0, self._backoff * 2 ** (attempt - 1))
            status = error.status or "no answer"
            log.warning(
                "kubernetes %s: %s (%s); retry %d/%d in %.1f s",
                *(what, error.reason, status, attempt, self._retries, wait),
            )
            self._sleep(wait)

    def _with_conflict_retry(self, what: str, attempt: Callable[[], T]) -> T:
        """Re-run a whole read-modify-write when its write met a 409 Conflict."""
        tries = 0
        while True:
            try:
                return attempt()
            except KubeError as exc:
                if exc.status != 409 or exc.reason != "Conflict" or tries >= self._retries:
                    raise
                if self._reads is not None:  # the object changed: read it again
                    self._reads.clear()
                tries += 1
                log.warning(
                    "kubernetes %s: conflict, re-reading (retry %d/%d)", what, tries, self._retries
                )
