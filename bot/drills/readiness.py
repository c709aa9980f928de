"""The readiness checks besides the target and the permissions: the whole plan as a server-side
dry run, Prometheus answering what the plan's gates and the guard read, the on-call ladder and
the service channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.adapters.prometheus import PrometheusAPI
from bot.adapters.slack.web import SlackClient, SlackError
from bot.catalog.fields import E164
from bot.catalog.load import Service
from bot.drills.checks import Check, failed, ok, unknown
from bot.execution.dry_run import describe_plan
from bot.notify.blocks import plural
from bot.rollback.plan import Plan
from bot.runtime.logs import mask_phone
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.deps import Deps

MAX_LISTED = 5  # problems named in one line; the rest are counted


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


def dry_run_check(deps: Deps, service: Service, plan: Plan, target: str | None) -> Check:
    """Every step described as ``/rollback run --dry-run`` does: reads, and each write sent with
    ``dryRun=All`` (Jobs included), so admission, validation and RBAC answer now."""
    name = "Dry run"
    problems: list[str] = []
    describe_plan(deps, service, plan, target, problems=problems)
    if problems:
        return failed(
            name,
            _listed(problems),
            f"`/rollback run {service.name} --dry-run` shows every step; fix what it names.",
        )
    steps = plural(len(plan.steps), "step")
    return ok(name, f"{steps} pass; every write accepted as a server-side dry run")


def plan_queries(service: Service, plan: Plan) -> dict[str, str]:
    """What the plan's metric gates and the guard's triggers read: name → PromQL."""
    found: dict[str, str] = {}
    for n, s in enumerate(plan.steps, 1):
        if s.kind == "prometheus_gate":
            found[f"step {n} ({s.name})"] = str(s.params["query"])
        elif s.kind == "shift_traffic" and s.params.get("gate_query"):
            found[f"step {n} ({s.name}) gate"] = str(s.params["gate_query"])
    if service.guard.is_enabled:
        for t in service.guard.triggers:
            if t.query is not None:
                found[f"guard trigger {t.name}"] = t.query
    return found


def prometheus_check(prometheus: PrometheusAPI | None, service: Service, plan: Plan) -> Check:
    name = "Prometheus"
    queries = plan_queries(service, plan)
    if not queries:
        return ok(name, "neither the plan's gates nor the guard read a metric")
    if prometheus is None:
        return unknown(
            name,
            f"PROMETHEUS_URL is not set: {len(queries)} signals cannot be read",
            "Set PROMETHEUS_URL: a gate that cannot read its metric fails the rollback.",
        )
    blind = []
    for what, promql in queries.items():
        result = prometheus.query(promql)
        if result.value is None:
            blind.append(f"{what}: {result.note or 'no value'}")
    if blind:
        return failed(
            name,
            f"{len(blind)} of {len(queries)} signals unanswered: {_listed(blind)}",
            "Fix the queries in the catalog (signals:, triggers:) or the metrics they read.",
        )
    return ok(name, f"{plural(len(queries), 'signal')} answered: {', '.join(queries)}")


def oncall_check(settings: Settings, service: Service) -> Check:
    """Numbers in E.164 form and SMS paging configured (no Twilio Lookup: nothing is sent)."""
    name = "On-call ladder"
    ladder = service.spec.oncall
    if not ladder:
        return failed(
            name,
            f"{service.name} has no on-call ladder: a failed rollback pages nobody",
            f"Add oncall: (name, phone, after_minutes) to services.{service.name}.",
        )
    bad = [c.name for c in ladder if not E164.match(c.phone)]  # never the number itself
    if bad:
        return failed(
            name, "numbers not in E.164 form: " + ", ".join(bad), "Write them as +15550100001."
        )
    if not settings.is_sms_enabled:
        return failed(
            name,
            f"{len(ladder)} levels, but SMS paging is not configured",
            "Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER.",
        )
    levels = ", ".join(f"{c.name} ({mask_phone(c.phone)}, +{c.after_minutes} min)" for c in ladder)
    return ok(name, f"{len(ladder)} levels, SMS paging configured: {levels}")


def channel_check(slack: SlackClient, service: Service) -> Check:
    """The channel the rollback reports to exists, is not archived, and has the bot in it."""
    name = "Channel"
    try:
        info = slack.conversations_info(channel=service.channel).get("channel") or {}
    except SlackError as exc:
        return failed(
            name,
            f"channel {service.channel}: Slack answered `{exc.error}`",
            f"Check channel: of {service.name} in the catalog, and invite the bot to it.",
        )
    except Exception as exc:  # Slack unreachable: cannot be told, not "fine"
        return unknown(name, f"Slack did not answer ({type(exc).__name__})", "Run it again.")
    if info.get("is_archived"):
        return failed(
            name, f"channel {service.channel} is archived", "Name another channel: in the catalog."
        )
    if not info.get("is_member"):
        return failed(
            name,
            f"the bot is not a member of channel {service.channel}",
            "Invite it with `/invite @rollback-bot` in that channel.",
        )
    return ok(name, f"channel {service.channel} exists and the bot is a member")
