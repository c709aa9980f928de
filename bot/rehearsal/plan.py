"""A rehearsal's plan: the service's own rollback plan pointed at staging, then the roll-forward
that puts back what it changed, in reverse order (``bot.rehearsal.forward``).

Staging is read once here, before anything is stored; every write is pinned to that read (a
deploy to staging in between stops the rehearsal). Production's checks give way to the staging
health check; strategy http calls the staging deployment API (``staging.http``), never production's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, UndoPlan
from bot.catalog.load import PlanError, Service
from bot.catalog.staging_checks import names_production, production_endpoint
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.traffic import traffic_weights
from bot.rehearsal.forward import (
    INVERSES,
    Inverted,
    StagingState,
    forward_step,
    traffic_key,
    written,
)
from bot.rehearsal.rollout import (
    only_deployments,
    pin_starts,
    refuse_mid_update,
    rollout_title,
    without_abort,
)
from bot.rehearsal.undo_plan import (
    forward_health,
    health_steps,
    read_undo,
    rehearsal_steps,
    where,
)
from bot.rollback.plan import Plan, StepSpec, custom_plan, step
from bot.rollback.rehearsable import (
    NOTHING_TO_UNDO,
    PRODUCTION_CHECKS,
    TRAFFIC,
    why_not_rehearsable,
)
from bot.rollback.safety import Refusal

__all__ = ["Rehearsal", "plan_rehearsal", "where"]


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal will do: its plan, the undo it rehearses (from → to) when it rolls a
    deployment back, what its rollback changes in staging and the steps with nothing to undo."""

    plan: Plan
    undo: UndoPlan | None = None
    changes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    title: str = ""  # "the blue-green rollback": what the start reply says it rehearses

    @property
    def what(self) -> str:
        """``the blue-green rollback (Service web version=green → version=blue; …)``."""
        title = self.title or f"the {self.plan.strategy} rollback"
        return f"{title} ({'; '.join(self.changes)})" if self.changes else title


def plan_rehearsal(
    kube: KubernetesClient,
    service: Service,
    twin: Service,
    target: str | None,
    *,
    current_context: str | None = None,
) -> Rehearsal:
    """Read staging once and plan the rehearsal of ``service`` on its staging ``twin``, or
    :class:`Refusal` saying why it cannot run. ``current_context``: the kubeconfig's, which a
    target without a context uses (None: unknown)."""
    if why := names_production(service, twin, current_context):
        raise Refusal(
            f"{service.name}'s staging: target {why}. A rehearsal never touches production:"
            " fix staging: in the catalog"
        )
    s = service.spec
    is_http = s.strategy == "http" and s.phases is None
    is_rollout = twin.workload_kind == "Rollout"
    if s.strategy == "undo" and s.phases is None and not is_rollout:
        undo = read_undo(kube, twin, twin.spec.deployment, target)
        plan = Plan("undo", tuple(rehearsal_steps(twin, undo)))
        return Rehearsal(pin_starts(plan, {twin.spec.deployment: undo}), undo)
    steps = [] if is_http else rollback_steps(service, twin)
    notes: tuple[str, ...] = ()
    if target and not any(x.kind == "rollout_undo" for x in steps):
        raise Refusal(
            f"`--to` picks the revision a rollout undo goes back to, and {service.name}'s"
            f" rollback (strategy {s.strategy}) has none: leave `--to` out"
        )
    if is_http:
        return _http_rehearsal(service, twin)
    kube = kube.reading_once()  # staging is read once
    if is_rollout:  # from a fully promoted Rollout only: nothing to abort
        steps, notes = without_abort(steps, twin, refuse_mid_update(kube, twin, steps))
    state = read_state(kube, twin, steps, target)
    r = rehearsal_of(s.strategy, twin, steps, state)
    r = replace(r, plan=pin_starts(r.plan, state.undos))  # each undo: where it starts from too
    title = "its own phases" if s.phases is not None else r.title
    if is_rollout:
        title = rollout_title(twin, title)
    return replace(r, title=title, notes=(*r.notes, *notes))


def rollback_steps(service: Service, twin: Service) -> list[StepSpec]:
    """The production plan's steps, pointed at staging: a built-in plan as the twin builds it,
    custom phases with production's deployment name replaced by staging's."""
    s = service.spec
    if s.phases is None:
        try:
            return list(twin.plan().steps)
        except PlanError as exc:
            raise Refusal(str(exc)) from None
    plan = custom_plan(s.strategy, {p: [x.as_dict() for x in v] for p, v in s.phases.items()})
    for x in plan.steps:
        if why := why_not_rehearsable(x.kind):
            raise Refusal(
                f"{x.name}: {why} (phase {x.phase}). Remove that step from {service.name}'s"
                " phases: (`check-config` names its line), or remove staging: to stop"
                " rehearsing this service"
            )
    return [_in_staging(x, s.deployment, twin.spec.deployment) for x in plan.steps]


def _in_staging(s: StepSpec, production: str, staging: str) -> StepSpec:
    """Production's Deployment renamed to staging's (in a snapshot, that Deployment only: a
    Service or ConfigMap of the same name keeps its name)."""
    params = dict(s.params)
    if params.get("deployment") == production:
        params["deployment"] = staging
    if s.kind == "snapshot":  # the Rollout of a Rollout service too
        params["objects"] = [
            [o[0], staging, *o[2:]]
            if len(o) > 1 and o[0] in ("Deployment", "Rollout") and o[1] == production
            else o
            for o in params["objects"]
        ]
    return replace(s, params=params)


def read_state(
    kube: KubernetesClient, twin: Service, steps: list[StepSpec], target: str | None
) -> StagingState:
    """One read of what the steps will change in staging (each object read once)."""
    t = KubeTarget(twin.context, twin.namespace)  # kube: a reading-once view
    canary = twin.spec.canary.deployment if twin.spec.canary is not None else None
    state = StagingState(canary=canary)
    try:
        for s in steps:
            state = _read_one(kube, t, twin, s, state, target)
        state = _read_deployments(kube, t, _named(twin, steps, canary), state)
    except KubeError as exc:
        raise Refusal(f"cannot plan the rollback in staging ({where(twin)}): {exc}") from None
    except StepFailed as exc:
        raise Refusal(f"cannot plan the rollback in staging: {exc}") from None
    return state


def _named(twin: Service, steps: list[StepSpec], canary: str | None) -> list[str]:
    """The Deployments a traffic step may send traffic to: those the plan names, the canary."""
    named = [str(s.params["deployment"]) for s in steps if s.params.get("deployment")]
    bg = twin.spec.blue_green
    return only_deployments(twin, steps, [*named, *(x for x in (canary, bg and bg.candidate) if x)])


def _read_deployments(
    kube: KubernetesClient, t: KubeTarget, names: list[str], state: StagingState
) -> StagingState:
    """Their label selectors and replica counts, read once (traffic must not go back to a
    Deployment without pods)."""
    infos = {n: kube.deployment(t, n) for n in names}
    return replace(
        state,
        labels={n: dict(i.selector) for n, i in infos.items()},
        replicas={**{n: i.replicas for n, i in infos.items()}, **state.replicas},
    )


def _read_one(
    kube: KubernetesClient,
    t: KubeTarget,
    twin: Service,
    s: StepSpec,
    state: StagingState,
    target: str | None,
) -> StagingState:
    p, name = s.params, str(s.params.get("deployment") or twin.spec.deployment)
    if s.kind == "switch_selector":
        service = str(p["service"])
        return replace(
            state, selectors={**state.selectors, service: kube.service_selector(t, service)}
        )
    if s.kind == "scale":
        return replace(state, replicas={**state.replicas, name: kube.deployment(t, name).replicas})
    if s.kind == "set_image":
        container, images = str(p["container"]), kube.deployment(t, name).images
        if container not in images:
            raise StepFailed(f"deployment {name} has no container {container} in staging")
        return replace(state, images={**state.images, (name, container): images[container]})
    if s.kind == "shift_traffic":
        tr = p["traffic"]
        obj = kube.read_object(t, tr["api_version"], tr["kind"], tr["name"])
        where_ = f"{tr['kind']} {tr['name']} in staging"
        weight = traffic_weights(obj, where_, tr["stable_weight_path"], tr["canary_weight_path"])
        return replace(state, weights={**state.weights, traffic_key(tr): weight[1]})
    if s.kind == "rollout_undo":
        return replace(state, undos={**state.undos, name: read_undo(kube, twin, name, target)})
    return state


def rehearsal_of(
    strategy: str, twin: Service, steps: list[StepSpec], state: StagingState
) -> Rehearsal:
    """Pure: the rehearsal of a rollback plan's steps from the staging state read before it —
    the rollback (production checks dropped, every write pinned, the staging health check),
    then the roll-forward of every change in reverse order and the health check again."""
    back: list[StepSpec] = []
    forth: list[StepSpec] = []
    changes, notes = [], []
    _refuse_written_twice(steps, twin)
    for s in steps:
        if s.kind in PRODUCTION_CHECKS:
            continue  # production's signals and URLs: the staging health check stands in
        if s.kind in NOTHING_TO_UNDO:
            notes.append(f"{s.name}: a restart changes no release, nothing to roll forward")
        inverted = INVERSES[s.kind](s, state, twin.spec.deployment) if s.kind in INVERSES else None
        if inverted is not None:
            _refuse_idle_traffic(s, inverted, state)
            changes += [inverted.change] if inverted.change else []
            forth = [*inverted.forward, *forth]  # put back in reverse order
        back.append(inverted.pinned if inverted is not None else s)
    if not changes:
        raise Refusal(
            "rolling back would change nothing in staging: it already runs what the rollback"
            " goes back to. Deploy a release to roll back from to staging first"
        )
    steps_ = [
        *back,  # in the production plan's own order and phases
        *health_steps("verification", twin, "Health check after the rollback"),
        *_once(forth),
        *forward_health(twin),
    ]
    undo = next(iter(state.undos.values()), None)  # the first one: what the reply names
    return Rehearsal(Plan(strategy, tuple(steps_)), undo, tuple(changes), tuple(notes))


def _refuse_written_twice(steps: list[StepSpec], twin: Service) -> None:
    """Each write is pinned to the state read before the rehearsal: a second write of the same
    thing would be pinned to a value the first one already changed."""
    first: dict[str, str] = {}
    for s in steps:
        what = written(s, twin) if s.kind in INVERSES else None
        if what is None:
            continue
        if what in first:
            raise Refusal(
                f"{s.name} (phase {s.phase}) writes {what} again after {first[what]}: a"
                " rehearsal pins each write to staging as read before it and cannot roll a"
                " second write of it forward. Rehearse a plan that writes it once (merge the"
                " two steps)"
            )
        first[what] = f"{s.name} (phase {s.phase})"


def _once(steps: list[StepSpec]) -> list[StepSpec]:
    """Without a step that repeats the one just before it (a scale back waits for its pods, and
    so does the traffic that goes back to them)."""
    return [
        x
        for i, x in enumerate(steps)
        if i == 0 or (x.kind, x.params) != (steps[i - 1].kind, steps[i - 1].params)
    ]


def _refuse_idle_traffic(s: StepSpec, inverted: Inverted, state: StagingState) -> None:
    """A rollback whose traffic step changes nothing in staging rehearses nothing real."""
    if inverted.change or s.kind not in TRAFFIC:
        return
    if s.kind == "switch_selector":
        service = str(s.params["service"])
        now = ",".join(f"{k}={v}" for k, v in s.params["selector"].items())
        raise Refusal(
            f"Service {service} in staging already selects {now}, the colour the rollback"
            " switches to: there is no candidate colour live in staging to roll back from."
            f" Deploy a candidate colour to staging first (and point {service} at it)"
        )
    key = traffic_key(s.params["traffic"])
    raise Refusal(
        f"{key} in staging sends {state.weights[key]} % to the canary already: the rollback"
        " would change nothing there. Send some traffic to a canary in staging first"
    )


def _http_rehearsal(service: Service, twin: Service) -> Rehearsal:
    """Strategy http: the staging deployment API's rollback endpoint, its status, then its
    roll-forward endpoint and the status again. Production's endpoints are never called."""
    st = service.spec.staging
    h = st.http if st is not None else None
    if h is None:
        raise Refusal(
            f"{service.name} rolls back through a deployment API and its staging: target has"
            " no http: section (the staging API's rollback and roll-forward endpoints), and a"
            " rehearsal never calls production's: add staging.http to the catalog"
        )
    if found := production_endpoint(service):
        key, why = found
        raise Refusal(f"{service.name}'s staging.http.{key}: {why} in the catalog")
    status = [step("verification", "http_check", "Staging API status", url=h.status_url)]
    steps = [
        step(
            "application",
            "http_request",
            "Call the staging API's rollback endpoint",
            url=h.url,
            method=h.method,
        ),
        *(status if h.status_url else []),
        *health_steps("verification", twin, "Health check after the rollback"),
        forward_step(
            "http_request",
            "Call the staging API's roll-forward endpoint",
            url=h.forward_url,
            method=h.forward_method,
        ),
        *([forward_step("http_check", status[0].name, url=h.status_url)] if h.status_url else []),
        *forward_health(twin),
    ]
    return Rehearsal(
        Plan("http", tuple(steps)),
        title="the http rollback through the staging deployment API",
    )
