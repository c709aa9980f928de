"""rollback-bot: assess a service's health and roll back a bad release from Slack.

Commands: serve (the Slack app), console (try it locally, no Slack needed), check-config
(validate the catalog), migrate (create or upgrade the database)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.catalog.load import Catalog, load_catalog
from bot.catalog.regions import context_warnings
from bot.catalog.staging_checks import staging_context_errors
from bot.catalog.yaml_lines import CatalogError
from bot.runtime.logs import setup_logging
from bot.settings import ConfigurationError, Settings, load_settings

ENVIRONMENT = """\
environment (an empty value means unset; README, "Configuration", has the details):
  SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET   required by serve
  SLACK_APP_TOKEN                         serve --socket-mode (xapp-…)
  SLACK_API_URL                           default https://slack.com/api/
  DATABASE_URL                            default sqlite:///rollback-bot.db
  ROLLBACK_CONFIG                         the catalog file, default rollback.yaml
  PROMETHEUS_URL                          unset: every signal is reported unknown
  KUBECONFIG                              unset: ~/.kube/config, in-cluster in a pod
  TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER
                                          SMS paging (unset: disabled, logged loudly)
  TWILIO_API_URL                          default https://api.twilio.com
  PUBLIC_URL                              the bot's external base URL (review links)
  ALERTMANAGER_TOKEN                      POST /alertmanager's bearer token (unset: off, 404)
  ALERTMANAGER_SERVICE_LABEL              the alert label naming the service, default service
  PORT                                    HTTP port of serve, default 3000
  ROLLBACK_BOT_LOG_LEVEL                  DEBUG, INFO (default), WARNING, ERROR, CRITICAL
  ROLLBACK_BOT_HTTP_THREADS, ROLLBACK_BOT_WORKERS, ROLLBACK_BOT_QUERY_TIMEOUT_SECONDS,
  ROLLBACK_BOT_LEASE_SECONDS, ROLLBACK_BOT_TICK_SECONDS   tuning (see README)
A value that cannot work stops the command with exit code 2 and a line naming the variable."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rollback-bot",
        description=__doc__,
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot (HTTP mode, or Socket Mode)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 3000")
    serve.add_argument("--socket-mode", action="store_true", help="needs SLACK_APP_TOKEN")
    console = sub.add_parser("console", help="local chat with the bot, no Slack needed")
    console.add_argument("--demo", action="store_true", help="built-in simulators and catalog")
    console.add_argument("--script", metavar="FILE", help="read the lines from FILE and exit")
    check = sub.add_parser(
        "check-config", help="validate the catalog file (exit 1: problems, all listed)"
    )
    check.add_argument("file", nargs="?", default=None, help="default: $ROLLBACK_CONFIG")
    sub.add_parser("migrate", help="apply database migrations")
    return p


def _check_config(settings: Settings, path: str | None) -> int:
    target = path or settings.rollback_config
    from bot.notify import template_check  # why: 0.3 s, check-config only

    try:
        catalog = load_catalog(target)
    except CatalogError as exc:  # the template overrides are checked too: all errors at once
        for line in [*exc.errors, *_template_errors_in(target, exc.errors)]:
            print(line, file=sys.stderr)
        return 1
    if template_errors := template_check.validate_templates(catalog):
        for line in template_errors:
            print(line, file=sys.stderr)
        return 1
    if staging_errors := _staging_context_errors(catalog, settings.kubeconfig):
        for line in staging_errors:
            print(line, file=sys.stderr)
        return 1
    for warning in [*catalog.warnings, *_region_context_warnings(catalog, settings.kubeconfig)]:
        print(warning, file=sys.stderr)
    print(f"{target}: OK, {len(catalog.services)} services: {', '.join(catalog.names)}")
    return 0


def _region_context_warnings(catalog: Catalog, kubeconfig: str | None) -> list[str]:
    """Regions naming a context the kubeconfig lacks (in a pod there is none to read)."""
    if not any(r.context for s in catalog.services.values() for r in s.regions):
        return []
    from bot.adapters.kube.contexts import kubeconfig_contexts  # why: 0.5 s, regions only

    known = kubeconfig_contexts(kubeconfig)
    if known is None:
        where = kubeconfig or "~/.kube/config"
        return [
            f"{catalog.source}:1: warning: cannot read the kubeconfig ({where}) to check"
            " the regions' contexts"
        ]
    return [
        w
        for s in catalog.services.values()
        for w in context_warnings(catalog.source, s.name, s.regions, known)
    ]


def _staging_context_errors(catalog: Catalog, kubeconfig: str | None) -> list[str]:
    """A staging: target that is production once an absent context reads as the kubeconfig's
    current one (parse_catalog compares the names as written)."""
    if not catalog.staging_lines:
        return []
    from bot.adapters.kube.contexts import kubeconfig_current_context  # why: 0.5 s, as above

    current = kubeconfig_current_context(kubeconfig)
    return staging_context_errors(catalog, catalog.staging_lines, current)


def _template_errors_in(path: str, known: list[str]) -> list[str]:
    """Template problems of a catalog that did not load (not already among ``known``)."""
    from bot.notify.template_check import validate_templates_in_yaml  # why: as above

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # the catalog's own errors already say the file cannot be read
    return [e for e in validate_templates_in_yaml(path, text) if e not in known]


def _migrate(settings: Settings) -> int:
    from storage.db import current_revision, make_engine, migrate  # why: 0.25 s, not for --help

    engine = make_engine(settings.database_url)
    migrate(engine)
    print(f"database at revision {current_revision(engine)}")
    engine.dispose()
    return 0


def _startup_problems(settings: Settings, args: argparse.Namespace) -> list[str]:
    """What stops the command before it starts, all at once (each line names a variable)."""
    problems = []
    if args.command == "serve":
        if settings.slack_bot_token is None or settings.slack_signing_secret is None:
            problems.append("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must both be set")
        if args.socket_mode and settings.slack_app_token is None:
            problems.append("--socket-mode needs SLACK_APP_TOKEN (xapp-…)")
    reads_config = args.command == "serve" or (args.command == "console" and not args.demo)
    if (reads_config or (args.command == "check-config" and args.file is None)) and not Path(
        settings.rollback_config
    ).is_file():
        problems.append(
            f"ROLLBACK_CONFIG={settings.rollback_config!r} is not allowed: no such file"
            " (set it to the catalog file)"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        for line in str(exc).splitlines():
            print(f"rollback-bot: {line}", file=sys.stderr)
        return 2
    # the console is a chat: only problems go to the log there
    setup_logging("WARNING" if args.command == "console" else settings.rollback_bot_log_level)
    if problems := _startup_problems(settings, args):
        for line in problems:
            print(f"rollback-bot: {line}", file=sys.stderr)
        return 2
    try:
        if args.command == "check-config":
            return _check_config(settings, args.file)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "serve":
            from bot.runtime.serve import serve  # why: the whole app (1 s), serve only

            return serve(settings, host=args.host, port=args.port, is_socket_mode=args.socket_mode)
        from bot.console import run_console  # why: the app and simulators (1 s), console only

        return run_console(settings, is_demo=args.demo, script=args.script)
    except (ConfigurationError, CatalogError) as exc:
        print(f"rollback-bot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
