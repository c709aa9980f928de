"""A local Kubernetes API server that the official `kubernetes` client cannot tell from a real one.

    with KubeSimulator() as sim, sim.api_client() as api:
        sim.seed_deployment("shop", "checkout", images=["shop:1.0", "shop:1.1"])
        AppsV1Api(api).read_namespaced_deployment("checkout", "shop")

What it serves (namespaced resources in namespaces that exist: `default`, `kube-system`,
`kube-public`, `kube-node-lease`, those seeded and those created through the API):
- apps/v1 Deployments (CRUD, patch in all three flavours, `scale` and `status` subresources) and
  ReplicaSets, kept in step by a deployment controller (see `kube_controller`), and Argo
  Rollouts with theirs by an Argo Rollouts controller (`kube_rollouts`, `seed_rollout`);
- core/v1 Services, Namespaces, Events (none) and Pods generated from the ReplicaSets (read only);
- batch/v1 Jobs, run to the outcome set with `set_job_outcome`;
- the other built-in kinds a rollback bot meets (Ingress, ConfigMap …) and the CRDs installed
  (Istio's and Argo Rollouts' come installed; `install_crd` adds more) as stored objects.
Discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`) lists what is served
(`kube_discovery`); any other group, version, resource or subresource is the server's 404.
Bodies are decoded and validated like the API server does (`kube_validation`): wrong types and
invalid values are refused, unknown fields dropped with a `Warning` header (refused under
`fieldValidation=Strict`). Lists take label and field selectors, `limit`/`continue` and
`watch=true` (`kube_watch`); every write takes `dryRun=All`. Errors are the API server's
`Status` bodies. Not simulated: server-side apply, deletecollection, authentication,
cluster-scoped objects other than Namespaces.

The parts: `kube_store` (objects and write semantics), `kube_patch` (the three patch types),
`kube_schema`/`kube_defaults` (names, Status errors, selectors, defaulting),
`kube_fields`/`kube_decode`/`kube_quantity`/`kube_validation` (what is accepted),
`kube_discovery` (what is served), `kube_controller`/`kube_rolling` (deployments),
`kube_workloads` (jobs, pods), `kube_server`/`kube_watch` (REST routing and HTTP),
`kube_injection` (failures on demand); this module puts them together under one lock and adds
the test controls.

Time: the controllers read the injected `clock` (seconds; `time.monotonic` by default) and
timestamps are wall time moved along by the same clock. Tests advance a fake clock and call
`tick()` (or just make a request: the controllers run before each one).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes.client import ApiClient, Configuration

from bot.sim.kube_access import AccessRule
from bot.sim.kube_controller import DEPLOYMENTS, DeploymentController
from bot.sim.kube_discovery import ApiResource
from bot.sim.kube_http import Answer, KubeHttpServer
from bot.sim.kube_injection import Injections, RequestLog
from bot.sim.kube_rollouts import ArgoController
from bot.sim.kube_schema import KubeError
from bot.sim.kube_seed import seed_deployment, seed_service
from bot.sim.kube_server import KubeRestApi
from bot.sim.kube_store import ObjectStore
from bot.sim.kube_watch import WatchRequest, watch_events
from bot.sim.kube_workloads import JobController, JobOutcome, JobRule, generated_pods
from bot.sim.loopback import LoopbackSimulator

__all__ = ["KubeSimulator"]

log = logging.getLogger(__name__)

JSON = Any


class KubeSimulator(LoopbackSimulator):
    """Kubernetes API on 127.0.0.1:<random port>, with controllers and failure injection."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        ready_delay_seconds: float = 0.0,
        job_delay_seconds: float = 0.0,
        tick_seconds: float = 0.05,
    ) -> None:
        self._clock = clock or time.monotonic
        # Timestamps are wall time that moves with the (possibly injected) clock.
        self._wall_offset = time.time() - self._clock()
        self._lock = threading.RLock()
        self._log = RequestLog(self._lock)
        self._store = ObjectStore(self._wall_now)
        self._synced_version, self._synced_clock = "", -math.inf
        self._passes = 0
        self._deployments = DeploymentController(
            self._store, self._clock, self._wall_now, ready_delay_seconds=ready_delay_seconds
        )
        self._rollouts = ArgoController(self._store, self._clock, self._wall_now, self._deployments)
        self._jobs = JobController(
            self._store, self._clock, self._wall_now, default_delay_seconds=job_delay_seconds
        )
        self._rest = KubeRestApi(
            self._store,
            lambda namespace: generated_pods(self._store, self._deployments, namespace),
            lambda: self.url.removeprefix("http://"),
        )
        self._injections = Injections(self._rest.route)
        self._tick_seconds = tick_seconds
        self._latency_seconds = 0.0
        self._stopping = threading.Event()
        self._server: KubeHttpServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeSimulator:
        if self._server is not None:
            raise RuntimeError("KubeSimulator already started")
        self._server = KubeHttpServer(self._serve)
        self._stopping.clear()
        # A short poll interval keeps stop() fast; the loop is idle otherwise.
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kube-simulator",
            daemon=True,
        )
        ticker = threading.Thread(target=self._tick_forever, name="kube-controllers", daemon=True)
        self._threads = [serve, ticker]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join()
        self._server, self._threads = None, []

    def api_client(self) -> ApiClient:
        """A client for the simulator (no auth); close it, or use it as a context manager."""
        configuration = Configuration(host=self.url)
        # Configuration picks HTTP(S)_PROXY from the environment; 127.0.0.1 must not go there.
        configuration.proxy = None
        return ApiClient(configuration)

    # -- cluster behaviour -----------------------------------------------------------------------

    def set_never_ready(
        self,
        namespace: str,
        deployment: str,
        is_never_ready: bool = True,
        *,
        image: str | None = None,
    ) -> None:
        """Pods of this deployment crash-loop: rollouts to them end in ProgressDeadlineExceeded.

        With `image`, only pods whose template runs that image do (a bad release): rolling back
        to a template without it completes, as on a real cluster. Without, every pod does."""
        with self._lock:
            key = (namespace, deployment, image)
            if is_never_ready:
                self._deployments.never_ready.add(key)
            else:
                self._deployments.never_ready.discard(key)
            self._synced_version = ""  # nothing was written, but the next pass has work

    def set_ready_delay(self, seconds: float) -> None:
        """Pods of rollouts started from now on become ready `seconds` after the start."""
        with self._lock:
            self._deployments.ready_delay_seconds = seconds

    def set_latency(self, seconds: float) -> None:
        """Every request waits ``seconds`` before it is answered (a far-away API server); the
        wait holds no lock, so concurrent requests wait side by side."""
        self._latency_seconds = max(0.0, seconds)

    def set_job_outcome(
        self,
        namespace: str,
        name_prefix: str,
        outcome: JobOutcome = "complete",
        after_seconds: float = 0.0,
    ) -> None:
        """Jobs created from now on named `name_prefix…` end so (the latest matching rule wins)."""
        with self._lock:
            self._jobs.rules.append(JobRule(namespace, name_prefix, outcome, after_seconds))

    def set_access_rules(self, rules: Sequence[AccessRule] | None) -> None:
        """Authorize every request by `rules` (see `kube_access`); None allows all (default)."""
        with self._lock:
            self._rest.access.rules = None if rules is None else list(rules)

    def tick(self) -> None:
        """Run the controllers now (after advancing an injected clock)."""
        with self._lock:
            self._run_controllers(force=True)

    # -- failure injection and recording -----------------------------------------------------------

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        body: dict[str, JSON] | None = None,
    ) -> None:
        """Answer the next `times` requests matching `method` ("*": any) and `path_regex`.

        The regex is searched in the URL path without the query string. The default body is the
        Status the API server would send for `status` (a 409 names the object of the path). An
        injected answer has no effect on the cluster.
        """
        with self._lock:
            self._injections.add(method, path_regex, status, times, body)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path with query string) of every request received, in order."""
        return self._log.requests

    @property
    def user_agents(self) -> list[str]:
        """The User-Agent of every request received, in the order of `requests`."""
        return self._log.user_agents

    @property
    def writes(self) -> list[tuple[str, str, str | None, str]]:
        """(method, path, fieldManager or None, User-Agent) of every request but the GETs: who
        a real API server's audit log and managedFields would name for each change."""
        return self._log.writes

    def wait_for_request(
        self, method: str, path_regex: str, timeout: float = 5.0
    ) -> tuple[str, str]:
        """The first recorded request matching, waiting up to `timeout` seconds for it."""
        return self._log.wait_for(method, path_regex, timeout)

    # -- seeding and inspection --------------------------------------------------------------------

    def seed_deployment(
        self,
        namespace: str,
        name: str,
        *,
        images: Sequence[str],
        replicas: int = 3,
        labels: dict[str, str] | None = None,
        container: str = "app",
    ) -> dict[str, JSON]:
        """A deployment rolled through `images` in order: revision N runs images[N-1], each
        rolled out completely, like a real cluster after several releases (`kube_seed`)."""
        with self._lock:
            return seed_deployment(
                self._store, self._settle, namespace, name, images, replicas, labels, container
            )

    def seed_rollout(self, namespace: str, name: str, *, images: Sequence[str], **kw: Any) -> JSON:
        """An Argo Rollout released through `images`, each promoted (`kube_rollouts`)."""
        with self._lock:
            return self._rollouts.seed(namespace, name, images=list(images), **kw)

    def seed_service(
        self, namespace: str, name: str, selector: dict[str, str], port: int = 80
    ) -> dict[str, JSON]:
        with self._lock:
            return seed_service(self._store, namespace, name, selector, port)

    def seed_namespace(self, name: str) -> None:
        """A namespace, as `kubectl create namespace` makes it (objects need theirs first)."""
        with self._lock:
            self._store.ensure_namespace(name)

    def install_crd(
        self,
        group: str,
        versions: Sequence[str],
        plural: str,
        kind: str,
        *,
        namespaced: bool = True,
    ) -> None:
        """Serve a custom resource, as installing its CustomResourceDefinition does (Istio's
        and Argo Rollouts' come installed)."""
        with self._lock:
            self._store.discovery.install(
                ApiResource(group, tuple(versions), plural, kind, namespaced)
            )

    def get_object(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, JSON] | None:
        """An object as stored (e.g. `get_object("apps/v1", "deployments", "shop", "web")`)."""
        group, _, version = api_version.rpartition("/")
        with self._lock:
            found = self._store.find(self._store.resource(group, version, plural), namespace, name)
            return None if found is None else dict(found)

    @property
    def controller_passes(self) -> int:
        """How many times the controllers went over the whole cluster (none while nothing is
        written and nothing is due: a never-ready deployment or a timed pause is always due)."""
        with self._lock:
            return self._passes

    @property
    def resource_version(self) -> str:
        """The cluster's latest resourceVersion: it moves with every stored write, and only then
        (a dry run leaves it alone)."""
        with self._lock:
            self._run_controllers()
            return self._store.resource_version

    def _settle(self, namespace: str, name: str) -> None:
        deployment = self._store.get(DEPLOYMENTS, namespace, name)
        self._deployments.reconcile_replica_sets(deployment, is_settled=True)
        self._run_controllers()

    def _run_controllers(self, *, force: bool = False) -> None:
        """Run the controllers, unless nothing was written since the last run and nothing waits
        on the clock: a full pass costs O(objects), and idle clusters are read far more often
        than written (benchmarks/engine_overhead.py with 50 deployments)."""
        is_unchanged = self._store.resource_version == self._synced_version
        if not force and is_unchanged and not self._is_waiting_on_clock():
            return
        self._passes += 1
        synced_at, before = self._clock(), self._store.resource_version
        self._deployments.sync()
        self._rollouts.sync()
        self._jobs.sync()
        # A pass that wrote something may have made work for the next one (a new ReplicaSet
        # to scale, a status to roll up): it counts as synced only from where it started, so
        # the loop runs until a pass writes nothing, and then rests.
        self._synced_version, self._synced_clock = before, synced_at

    def _is_waiting_on_clock(self) -> bool:
        """Something is due at a later clock time, or fell due since the last pass."""
        d = self._deployments
        return (
            bool(d.never_ready)
            or any(ready_at > self._synced_clock for ready_at in d._ready_at.values())
            or self._jobs.has_pending()
            or self._rollouts.is_waiting_on_clock()
        )

    def _wall_now(self) -> str:
        moment = datetime.fromtimestamp(self._wall_offset + self._clock(), UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _tick_forever(self) -> None:
        while not self._stopping.wait(self._tick_seconds):
            try:
                with self._lock:  # only when something changed or is due: a pass is O(objects)
                    self._run_controllers()
            except Exception:
                log.exception("KubeSimulator controllers failed")

    # -- request handling --------------------------------------------------------------------------

    def _serve(
        self, method: str, raw_path: str, content_type: str, body: bytes, user_agent: str = ""
    ) -> Answer:
        url = urlsplit(raw_path)
        if self._latency_seconds:
            time.sleep(self._latency_seconds)  # injected network latency, not a wait for state
        with self._lock:
            self._log.record(method, raw_path, user_agent)
            try:
                self._run_controllers()
                injected = self._injections.take(method, url.path)
                if injected is not None:
                    return injected
                query = parse_qs(url.query)
                answer = self._rest.answer(method, url.path, query, content_type, body)
                if isinstance(answer.body, WatchRequest):
                    events = watch_events(
                        answer.body,
                        self._lock,
                        self._run_controllers,
                        self._stopping,
                        self._tick_seconds,
                    )
                    return Answer(200, events, {})
                if method != "GET":
                    # The controllers react to a write at once, so a rollout starts (and its
                    # clocks run) from the write, not from whenever the next request comes.
                    self._run_controllers()
                return answer
            except KubeError as error:
                return Answer(error.code, error.status(), error.headers)
            except Exception as error:
                # A simulator bug shows up as the API server's InternalError, and in the log.
                log.exception("KubeSimulator failed on %s %s", method, raw_path)
                failure = KubeError(500, "InternalError", f"Internal error occurred: {error}")
                return Answer(500, failure.status(), {})
