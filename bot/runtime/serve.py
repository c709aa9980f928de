"""``rollback-bot serve``: build the app, resume what a previous process left running, start the
scheduler, and serve Slack over HTTP (or Socket Mode, with HTTP beside it for /healthz,
/metrics and Twilio's webhooks) until interrupted."""

from __future__ import annotations

import logging
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from bot.adapters.slack.socket_mode import (
    SocketModeConnection,
    SocketModeRefused,
    connect_socket_mode,
)
from bot.app import BotApp, build_app
from bot.rollback.policy import all_approver_groups
from bot.runtime.event_log import RollbackEventLog
from bot.runtime.scheduler import start_scheduler
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import ConfigurationError, Settings

log = logging.getLogger("rollback-bot")


def serve(settings: Settings, *, host: str, port: int | None, is_socket_mode: bool) -> int:
    """Serve until interrupted (``port`` None: $PORT)."""
    if not settings.is_sms_enabled:
        log.warning("TWILIO_* is not set: SMS paging is DISABLED, on-call will not be paged")
    if is_socket_mode and settings.slack_app_token is None:
        raise ConfigurationError("--socket-mode needs SLACK_APP_TOKEN (xapp-…)")
    bot = build_app(settings)
    bot.deps.engine.listeners.append(RollbackEventLog())  # a rollback's start and end, at INFO
    resumed = bot.deps.engine.resume_all()
    if resumed:
        log.warning("resumed rollbacks left running by a previous process: %s", resumed)
    scheduler = _scheduler(settings, bot)
    watcher = bot.guard.watch_releases()  # a release's round comes at once, not at the tick
    port = settings.port if port is None else port
    server = HttpServer(WebApp(bot), host, port, settings.rollback_bot_http_threads)
    connection = None
    try:
        if is_socket_mode:
            server.start()
            connection = _connect(settings, bot)
            threading.Event().wait()  # as handler.start() does; the handler's threads serve
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if connection is not None:
            connection.close()
            server.stop()
        watcher.stop()
        scheduler.shutdown(wait=False)
        bot.close()
    return 0


def _scheduler(settings: Settings, bot: BotApp) -> BackgroundScheduler:
    deps = bot.deps
    return start_scheduler(
        deps.engine,
        deps.due,
        resume_every_seconds=settings.rollback_bot_lease_seconds / 2,
        due_every_seconds=settings.rollback_bot_tick_seconds,
        refresh_groups=lambda: deps.groups.refresh(all_approver_groups(deps.catalog)),
        groups_every_seconds=deps.groups.ttl / 2,
        guard_round=lambda: deps.work.submit("guard round", bot.guard.tick, lane="bulk"),
        guard_evaluate=lambda: deps.work.submit(
            "guard evaluations", bot.guard.evaluate_due, lane="bulk"
        ),
    )


def _connect(settings: Settings, bot: BotApp) -> SocketModeConnection:
    """Socket Mode's connection (HTTP still serves beside it)."""
    assert settings.slack_app_token is not None  # checked by serve
    try:
        connection = connect_socket_mode(bot.bolt, settings.slack_app_token.get_secret_value())
    except SocketModeRefused as exc:
        raise ConfigurationError(
            "cannot open a Socket Mode connection with SLACK_APP_TOKEN at"
            f" {settings.slack_api_url}: {exc}"
        ) from None
    log.info("connected to Slack in Socket Mode")
    return connection
