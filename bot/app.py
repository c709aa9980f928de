"""Composition root: ``build_app(settings)`` wires storage, adapters, handlers and web routes."""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.prometheus import PrometheusAPI
from bot.adapters.slack.lookups import UserGroupMembers
from bot.adapters.slack.web import slack_web_client
from bot.approvals import request as approval_request
from bot.approvals import start as approval_start
from bot.assessment import service as assessment_service
from bot.assessment.signals import SignalReader
from bot.catalog.load import Catalog, load_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.customer import drafts as customer_drafts
from bot.deps import Clock, Deps, utcnow
from bot.drills import schedule as drill_schedule
from bot.execution.contracts import worker_name
from bot.execution.engine import Engine
from bot.guard import watch as guard_watch
from bot.guard.watch import Guard
from bot.notify import notifications
from bot.notify.progress import SlackProgress
from bot.notify.template_check import validate_templates
from bot.paging import acks as page_acks
from bot.paging import ladder as paging_ladder
from bot.rehearsal import report as rehearsal_report
from bot.review import publish as review_publish
from bot.rollback.lifecycle import DueKind
from bot.runtime.bolt import bolt_app
from bot.runtime.due import DueWorkRunner
from bot.runtime.metrics import Metrics
from bot.runtime.work import BackgroundWork
from bot.settings import ConfigurationError, Settings
from handlers import (
    actions,
    alertmanager,
    commands,
    customer,
    delivery,
    errors,
    home,
    twilio,
    views,
)
from storage.db import make_engine, migrate
from storage.repository import Repository

if TYPE_CHECKING:  # the Bolt app is built in bot.runtime.bolt, the one place importing slack_bolt
    from slack_bolt import App

log = logging.getLogger(__name__)


@dataclass
class BotApp:
    bolt: App
    deps: Deps
    guard: Guard

    def close(self) -> None:
        self.deps.engine.shutdown()
        self.deps.due.shutdown()
        self.deps.work.shutdown()
        for close in reversed(self.deps.closers):
            close()


def build_app(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    clock: Clock = utcnow,
    run_migrations: bool = True,
    kube: KubernetesClient | None = None,
) -> BotApp:
    """Build the Bolt app and its dependencies. Calls ``auth.test`` once (token check)."""
    if settings.slack_signing_secret is None or settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must both be set")
    catalog = catalog or load_catalog(settings.rollback_config)
    if template_errors := validate_templates(catalog):  # a broken template fails at start
        raise CatalogError(template_errors)
    deps = build_deps(settings, catalog, clock, run_migrations=run_migrations, kube=kube)
    bolt = bolt_app(settings, deps)
    deps.slack_team_url = str(deps.slack.auth_test().get("url") or "https://slack.com/")
    # Slack's surfaces (handlers/) and the workflows (their due work, rollback listeners, routes):
    delivery.install(bolt, deps)  # first: a repeated delivery reaches no listener
    commands.install(bolt, deps)
    actions.install(bolt, deps)
    views.install(bolt, deps)
    customer.install(bolt, deps)
    home.install(bolt, deps)
    errors.install(bolt, deps)
    twilio.install(deps)
    alertmanager.install(deps)
    page_acks.install(deps)
    deps.due.register(
        DueKind.ROLLBACK_FINISHED, lambda item: deps.engine.tell_finished(int(item.payload["id"]))
    )
    deps.due.register(
        DueKind.ROLLBACK_STARTED, lambda item: deps.engine.tell_started(int(item.payload["id"]))
    )
    deps.engine.kick_due_work = deps.kick_due_work
    approval_request.install(deps)
    approval_start.install(deps)
    assessment_service.install(deps)
    notifier = notifications.install(deps)
    deps.metrics.watch_rollbacks(deps.repo, catalog, deps.engine)
    review_publish.install(deps)
    customer_drafts.install(deps, notifier.incident_hooks)
    paging_ladder.install(deps)
    rehearsal_report.install(deps)
    guard = guard_watch.install(deps)
    drill_schedule.install(deps)
    # The kubernetes client's pydantic models are hundreds of thousands of long-lived objects;
    # every full garbage collection would walk them all and stall requests (seen as a 3x worse
    # ack p99 in benchmarks/ack_latency.py). Freezing moves what exists now out of the GC's way.
    gc.freeze()
    return BotApp(bolt=bolt, deps=deps, guard=guard)


def build_deps(
    settings: Settings,
    catalog: Catalog,
    clock: Clock,
    *,
    run_migrations: bool = True,
    kube: KubernetesClient | None = None,
) -> Deps:
    """Storage, adapters and the worker pools; nothing talks to Slack yet."""
    assert settings.slack_bot_token is not None  # checked by build_app
    engine = make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    metrics = Metrics()
    http = HttpClient.pooled()
    probe_pool = ThreadPoolExecutor(
        max_workers=settings.rollback_bot_workers * 5, thread_name_prefix="probe"
    )
    prometheus_url, timeout = settings.prometheus_url, settings.rollback_bot_query_timeout_seconds
    prometheus = PrometheusAPI(prometheus_url, http.shared, timeout) if prometheus_url else None
    if prometheus is None:
        log.warning("PROMETHEUS_URL is not set: every PromQL signal will be reported unknown")
    slack = slack_web_client(settings.slack_bot_token, settings.slack_api_url)
    repo = Repository(engine)
    kube = kube or KubernetesClient(kubeconfig=settings.kubeconfig)
    progress = SlackProgress(slack, repo, catalog, clock)
    lease = settings.rollback_bot_lease_seconds
    return Deps(
        settings=settings,
        catalog=catalog,
        repo=repo,
        reader=SignalReader(prometheus, http, probe_pool),
        work=BackgroundWork(settings.rollback_bot_workers, metrics.background_failures.inc),
        metrics=metrics,
        slack=slack,
        kube=kube,
        engine=Engine(
            repo=repo,
            catalog=catalog,
            kube=kube,
            http=http,
            prometheus=prometheus,
            clock=clock,
            progress=progress,
            lease_seconds=lease,
        ),
        due=DueWorkRunner(repo, clock, worker_name(), lease_seconds=lease),
        groups=UserGroupMembers(slack),
        clock=clock,
        closers=[
            engine.dispose,
            http.close,
            kube.close,
            lambda: probe_pool.shutdown(wait=False),
            progress.close,  # first (closers run in reverse): it still reads the database
        ],
    )
