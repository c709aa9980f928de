"""The catalog's ``auto_rollback:`` section (issue 14): what it resolves into, how a service's
section merges with the defaults, and every way to get it wrong as a ``file:line`` error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.catalog.load import Catalog, parse_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.rollback.triggers import Comparison, ConfirmTimeout, GuardConfig, Trigger
from tests.test_cli import run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<message>.+)$")

SIGNALS = {"error_rate": "sum(errors)", "latency_p95_seconds": "p95(latency)"}


def service(name: str = "checkout", *, health: bool = True, section: str = "") -> str:
    """A service with two signals (no user_sessions_per_min, no db_up) and its auto_rollback."""
    lines = [f"  {name}:", f"    deployment: {name}-api", "    signals:"]
    lines += [f"      {k}: {q}" for k, q in SIGNALS.items()]
    if health:
        lines.append(f"    health_url: http://{name}.shop.svc/health")
    if section:
        lines += ["    auto_rollback:", *("      " + ln for ln in section.splitlines())]
    return "\n".join(lines) + "\n"


def catalog(*services: str, defaults: str = "") -> str:
    head = "defaults:\n  channel: C0DEPLOYS\n"
    if defaults:
        head += "  auto_rollback:\n" + "".join(f"    {ln}\n" for ln in defaults.splitlines())
    return head + "services:\n" + "".join(services)


def triggers(*items: str, enabled: bool = True) -> str:
    return f"enabled: {str(enabled).lower()}\ntriggers:\n" + "".join(f"  - {i}\n" for i in items)


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text)
    return caught.value.errors


def marked_line(text: str) -> int:
    (line,) = [n for n, ln in enumerate(text.splitlines(), 1) if ln.rstrip().endswith("# <-")]
    return line


def guard(text: str, name: str = "checkout") -> GuardConfig:
    svc = parse_catalog(text).get(name)
    assert svc is not None
    return svc.guard


# --- what a trigger resolves into -------------------------------------------------------------

RESOLVED = [
    pytest.param(
        "{metric: error_rate, threshold: 0.01, comparison: greater_than, duration_seconds: 120}",
        Trigger("error_rate", threshold=0.01, duration_seconds=120, query="sum(errors)"),
        id="absolute metric",
    ),
    pytest.param(
        "{metric: latency_p95_seconds, factor: 5, relative_to: baseline, duration_seconds: 300}",
        Trigger("latency_p95_seconds", factor=5, duration_seconds=300, query="p95(latency)"),
        id="relative to the baseline",
    ),
    pytest.param(
        "{metric: latency_p95_seconds, factor: 2, duration_seconds: 60}",
        Trigger("latency_p95_seconds", factor=2, duration_seconds=60, query="p95(latency)"),
        id="factor alone is relative to the baseline",
    ),
    pytest.param(
        "{metric: health_check_failures, threshold: 3, consecutive: true}",
        Trigger("health_check_failures", threshold=0.5, consecutive=3, query=None),
        id="health probe: failures in a row",
    ),
    pytest.param(
        "{metric: health_check_failures, duration_seconds: 90}",
        Trigger("health_check_failures", threshold=0.5, duration_seconds=90, query=None),
        id="health probe: failing for a while",
    ),
    pytest.param(
        "{query: 'sum(rate(auth_failures_total[5m]))', threshold: 5, duration_seconds: 60}",
        Trigger(
            "query 1", threshold=5, duration_seconds=60, query="sum(rate(auth_failures_total[5m]))"
        ),
        id="raw query, default name",
    ),
    pytest.param(
        "{query: 'up', name: auth_failures, threshold: 1, comparison: less_than,"
        " duration_seconds: 60}",
        Trigger(
            "auth_failures", Comparison.LESS_THAN, threshold=1, duration_seconds=60, query="up"
        ),
        id="raw query, own name, less_than",
    ),
    pytest.param(
        "{metric: error_rate, name: error_rate_x3, factor: 3, duration_seconds: 60}",
        Trigger("error_rate_x3", factor=3, duration_seconds=60, query="sum(errors)"),
        id="metric with its own name",
    ),
]


@pytest.mark.parametrize(("item", "expected"), RESOLVED)
def test_a_trigger_resolves(item: str, expected: Trigger) -> None:
    assert guard(catalog(service(section=triggers(item)))).triggers == (expected,)


def test_raw_queries_are_numbered_in_order() -> None:
    items = [
        "{query: a, threshold: 1, duration_seconds: 60}",
        "{metric: error_rate, threshold: 1, duration_seconds: 60}",
        "{query: b, name: named, threshold: 1, duration_seconds: 60}",
        "{query: c, threshold: 1, duration_seconds: 60}",
    ]
    names = [t.name for t in guard(catalog(service(section=triggers(*items)))).triggers]
    assert names == ["query 1", "error_rate", "named", "query 3"]


def test_no_section_is_a_disabled_guard() -> None:
    assert guard(catalog(service())) == GuardConfig()


def test_every_setting_resolves() -> None:
    section = (
        "enabled: true\nwatch_minutes: 45\ninterval_seconds: 10\nbaseline_minutes: 60\n"
        "require_manual_confirmation: true\nconfirm_timeout_seconds: 120\n"
        "on_confirm_timeout: keep\nmax_per_day: 0\n"
        "safety_checks: {verify_previous_version_healthy: false, verify_rollback_tested: true}\n"
        "triggers:\n  - {metric: error_rate, threshold: 0.01, duration_seconds: 120}\n"
    )
    assert guard(catalog(service(section=section))) == GuardConfig(
        is_enabled=True,
        watch_minutes=45,
        interval_seconds=10,
        baseline_minutes=60,
        requires_confirmation=True,
        confirm_timeout_seconds=120,
        on_confirm_timeout=ConfirmTimeout.KEEP,
        max_per_day=0,
        triggers=(
            Trigger("error_rate", threshold=0.01, duration_seconds=120, query="sum(errors)"),
        ),
        verify_previous_version_healthy=False,
        verify_rollback_tested=True,
    )


# --- a service's section and the defaults -----------------------------------------------------

DEFAULTS = (
    "watch_minutes: 20\nmax_per_day: 1\n"
    "safety_checks: {verify_rollback_tested: true}\n"
    "triggers:\n  - {metric: error_rate, threshold: 0.05, duration_seconds: 60}\n"
)
DEFAULT_TRIGGER = Trigger("error_rate", threshold=0.05, duration_seconds=60, query="sum(errors)")

MERGES = [
    pytest.param(
        "",
        GuardConfig(
            watch_minutes=20,
            max_per_day=1,
            triggers=(DEFAULT_TRIGGER,),
            verify_rollback_tested=True,
        ),
        id="no section: the defaults",
    ),
    pytest.param(
        "enabled: true\nwatch_minutes: 10\n",
        GuardConfig(
            is_enabled=True,
            watch_minutes=10,
            max_per_day=1,
            triggers=(DEFAULT_TRIGGER,),
            verify_rollback_tested=True,
        ),
        id="keys override one by one, the default triggers are kept",
    ),
    pytest.param(
        triggers("{metric: latency_p95_seconds, threshold: 2, duration_seconds: 30}"),
        GuardConfig(
            is_enabled=True,
            watch_minutes=20,
            max_per_day=1,
            triggers=(
                Trigger(
                    "latency_p95_seconds", threshold=2, duration_seconds=30, query="p95(latency)"
                ),
            ),
            verify_rollback_tested=True,
        ),
        id="triggers replace the default list whole",
    ),
    pytest.param(
        "safety_checks: {verify_previous_version_healthy: false}\n",
        GuardConfig(
            watch_minutes=20,
            max_per_day=1,
            triggers=(DEFAULT_TRIGGER,),
            verify_previous_version_healthy=False,
            verify_rollback_tested=True,
        ),
        id="safety_checks merge key by key",
    ),
]


@pytest.mark.parametrize(("section", "expected"), MERGES)
def test_a_service_section_overrides_the_defaults(section: str, expected: GuardConfig) -> None:
    assert guard(catalog(service(section=section), defaults=DEFAULTS)) == expected


def test_enabled_under_defaults_guards_every_service() -> None:
    text = catalog(
        service("checkout"),
        service("search", section="enabled: false\n"),
        defaults="enabled: true\n" + DEFAULTS.split("\n", 2)[2],
    )
    parsed = parse_catalog(text)
    assert {n: s.guard.is_enabled for n, s in parsed.services.items()} == {
        "checkout": True,
        "search": False,
    }


def test_the_merge_of_other_sections_is_unchanged() -> None:
    default = "  channel: C0DEPLOYS\n  approval: {min_approvals: 1, expiry_minutes: 45}\n"
    text = catalog(service()).replace("  channel: C0DEPLOYS\n", default, 1)
    text += "    approval: {min_approvals: 1}\n"
    approval = parse_catalog(text).services["checkout"].approval
    assert (approval.min_approvals, approval.expiry_minutes, approval.two_person_rule) == (
        1,
        45,
        True,
    )


# --- every way to get it wrong: file:line and what to do -------------------------------------

OK = "{metric: error_rate, threshold: 0.01, duration_seconds: 60}"


def one(item: str, **kw: bool) -> str:
    """A catalog with one trigger, marked on the trigger's line."""
    return catalog(service(section=triggers(item + "  # <-"), **kw))


AT = "services.checkout.auto_rollback"
ERRORS = [
    pytest.param(
        one("{metric: eror_rate, threshold: 0.01, duration_seconds: 60}"),
        f"{AT}.triggers.0.metric: unknown metric 'eror_rate' (did you mean error_rate? known:"
        " error_rate, latency_p95_seconds, user_sessions_per_min, db_up, health_check_failures;",
        id="unknown metric lists the known ones",
    ),
    pytest.param(
        one("{metric: user_sessions_per_min, threshold: 1, duration_seconds: 60}"),
        f"{AT}.triggers.0: metric user_sessions_per_min reads signals.user_sessions_per_min, and"
        " checkout defines no such signal (add it under services.checkout.signals",
        id="a signal the service does not define",
    ),
    pytest.param(
        one("{metric: error_rate, duration_seconds: 60}"),
        f"{AT}.triggers.0: missing threshold:",
        id="absolute without threshold",
    ),
    pytest.param(
        one("{metric: error_rate, relative_to: baseline, duration_seconds: 60}"),
        f"{AT}.triggers.0: relative_to: baseline needs factor:",
        id="relative without factor",
    ),
    pytest.param(
        one("{metric: error_rate, threshold: 0.1, factor: 2, duration_seconds: 60}"),
        f"{AT}.triggers.0: threshold: and factor: together",
        id="threshold and factor",
    ),
    pytest.param(
        one(
            "{metric: health_check_failures, threshold: 3, consecutive: true, duration_seconds: 9}"
        ),
        f"{AT}.triggers.0: duration_seconds: and consecutive: together",
        id="duration and consecutive",
    ),
    pytest.param(
        one("{metric: error_rate, threshold: 0.01}"),
        f"{AT}.triggers.0: missing duration_seconds: how long the condition must hold",
        id="neither duration nor consecutive",
    ),
    pytest.param(
        one("{metric: health_check_failures, threshold: 3}"),
        f"{AT}.triggers.0: missing duration_seconds: how long the condition must hold before the"
        " trigger fires (or consecutive: true with threshold: failed probes in a row)",
        id="health probe without duration or consecutive",
    ),
    pytest.param(
        one("{metric: health_check_failures, threshold: 3, consecutive: true}", health=False),
        f"{AT}.triggers.0: health_check_failures probes the service's health_url, and checkout"
        " has none (add health_url: to services.checkout)",
        id="health probe without health_url",
    ),
    pytest.param(
        one("{metric: error_rate, threshold: 3, consecutive: true}"),
        f"{AT}.triggers.0: consecutive: true counts failed health probes in a row, so it only goes"
        " with metric: health_check_failures",
        id="consecutive on a metric",
    ),
    pytest.param(
        one("{metric: health_check_failures, threshold: 2.5, consecutive: true}"),
        f"{AT}.triggers.0: threshold: with consecutive: true is the number of failed probes",
        id="failures in a row not a whole number",
    ),
    pytest.param(
        one("{metric: health_check_failures, threshold: 3, duration_seconds: 60}"),
        f"{AT}.triggers.0: health_check_failures with duration_seconds: fires when the probe keeps"
        " failing that long, so it takes no threshold:",
        id="health probe: duration with a count",
    ),
    pytest.param(
        one("{metric: health_check_failures, factor: 2, duration_seconds: 60}"),
        f"{AT}.triggers.0: health_check_failures cannot be relative",
        id="health probe relative",
    ),
    pytest.param(
        one(
            "{metric: health_check_failures, threshold: 3, consecutive: true,"
            " comparison: less_than}"
        ),
        f"{AT}.triggers.0: health_check_failures counts failures: comparison must be greater_than",
        id="health probe less_than",
    ),
    pytest.param(
        one("{metric: error_rate, query: up, threshold: 1, duration_seconds: 60}"),
        f"{AT}.triggers.0: metric: and query: together",
        id="metric and query",
    ),
    pytest.param(
        one("{threshold: 1, duration_seconds: 60}"),
        f"{AT}.triggers.0: a trigger needs metric:",
        id="neither metric nor query",
    ),
    pytest.param(
        one("{query: ' ', threshold: 1, duration_seconds: 60}"),
        f"{AT}.triggers.0.query: the query is empty",
        id="empty query",
    ),
    pytest.param(
        one("{metric: error_rate, treshold: 0.01, duration_seconds: 60}"),
        f"{AT}.triggers.0.treshold: unknown key (did you mean threshold?)",
        id="unknown key in a trigger",
    ),
    pytest.param(
        one("{metric: error_rate, threshold: 0.01, comparison: above, duration_seconds: 60}"),
        f"{AT}.triggers.0.comparison: must be 'greater_than' or 'less_than'",
        id="unknown comparison",
    ),
    pytest.param(
        one("{metric: error_rate, threshold: 0.01, duration_seconds: 0}"),
        f"{AT}.triggers.0.duration_seconds: must be greater than 0",
        id="zero duration",
    ),
    pytest.param(
        catalog(service(section="enabled: true\nwatch_minute: 10  # <-\n" + triggers(OK)[14:])),
        f"{AT}.watch_minute: unknown key (did you mean watch_minutes?)",
        id="unknown key in the section",
    ),
    pytest.param(
        catalog(service(section="safety_checks: {verify_rollback_test: true}  # <-\n")),
        f"{AT}.safety_checks.verify_rollback_test: unknown key"
        " (did you mean verify_rollback_tested?)",
        id="unknown key in safety_checks",
    ),
    pytest.param(
        catalog(service(section="interval_seconds: 2  # <-\n")),
        f"{AT}.interval_seconds: must be greater than or equal to 5",
        id="interval under 5 s",
    ),
    pytest.param(
        catalog(service(section="on_confirm_timeout: ignore  # <-\n")),
        f"{AT}.on_confirm_timeout: must be 'rollback' or 'keep'",
        id="unknown on_confirm_timeout",
    ),
    pytest.param(
        catalog(service(section="enabled: true  # <-\n")),
        f"{AT}.enabled: enabled: true but services.checkout has no triggers, so nothing would ever"
        " fire",
        id="enabled without triggers",
    ),
    pytest.param(
        catalog(service(section=triggers(OK, OK + "  # <-"))),
        f"{AT}.triggers.1: a second trigger named 'error_rate': give one of them its own name:",
        id="two triggers of one name",
    ),
    pytest.param(
        catalog(service(), defaults="trigers: []  # <-"),
        "defaults.auto_rollback.trigers: unknown key (did you mean triggers?)",
        id="unknown key under defaults",
    ),
    pytest.param(
        catalog(service(), defaults="enabled: true  # <-"),
        "defaults.auto_rollback.enabled: enabled: true but services.checkout has no triggers",
        id="enabled under defaults without triggers",
    ),
    pytest.param(
        catalog(
            service(),
            defaults=triggers(
                "{metric: db_up, threshold: 1, comparison: less_than, duration_seconds: 60}  # <-"
            ),
        ),
        "defaults.auto_rollback.triggers.0: metric db_up reads signals.db_up, and services.checkout"
        " inherits this trigger but defines no such signal (add it under services.checkout.signals,"
        " or give checkout its own auto_rollback: triggers: or enabled: false)",
        id="an inherited trigger reading a signal the service lacks",
    ),
    pytest.param(
        catalog(
            service(health=False),
            defaults=triggers(
                "{metric: health_check_failures, threshold: 2, consecutive: true}  # <-"
            ),
        ),
        "defaults.auto_rollback.triggers.0: health_check_failures probes the service's health_url,"
        " and services.checkout inherits this trigger but has none (add health_url: to"
        " services.checkout, or give checkout its own",
        id="an inherited health probe without health_url",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_an_error_names_file_line_and_what_to_do(text: str, expected: str) -> None:
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{marked_line(text)}: {expected}"), error


def test_a_disabled_service_is_not_blamed_for_inherited_triggers() -> None:
    section = triggers("{metric: db_up, threshold: 1, duration_seconds: 60}", enabled=False)
    parsed = parse_catalog(catalog(service(), defaults=section))
    assert parsed.services["checkout"].guard.triggers == ()  # nothing to read, nothing guarded


def test_a_disabled_service_is_blamed_for_its_own_triggers() -> None:
    item = "{metric: db_up, threshold: 1, duration_seconds: 60}  # <-"
    text = catalog(service(section=triggers(item, enabled=False)))
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{marked_line(text)}: {AT}.triggers.0: metric db_up")


def test_every_problem_of_a_trigger_is_in_one_error() -> None:
    (error,) = errors_of(one("{metric: error_rate, consecutive: true}"))
    assert "missing threshold:" in error and "consecutive: true counts" in error


# every problem of BROKEN; not 21: its defaults are invalid, so its triggers cannot be told
BROKEN_LINES = [4, 12, 13, 14, 17, 22, 27]
BROKEN = """\
defaults:
  channel: C0DEPLOYS
  auto_rollback:
    watch_minutes: 0                               # 4: not positive
services:
  checkout:
    deployment: checkout-api
    signals: {error_rate: sum(errors)}
    auto_rollback:
      enabled: true
      triggers:
        - {metric: eror_rate, threshold: 1, duration_seconds: 60}       # 12: unknown metric
        - {metric: error_rate, duration_seconds: 60}                    # 13: no threshold
        - {metric: health_check_failures, threshold: 3, consecutive: true}   # 14: no health_url
  search:
    deployment: search-api
    replicas: 2                                    # 17: unknown key
  payments:
    deployment: payments-api
    auto_rollback:
      enabled: true                                # 21: (inherits from invalid defaults)
      trigers: []                                  # 22: unknown key
  profile:
    deployment: profile-api
    auto_rollback:
      triggers:
        - {metric: latency_p95_seconds, threshold: 1, duration_seconds: 60}   # 27: no signal
"""


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(BROKEN)
    lines = [int(m["line"]) for m in (ERROR_LINE.match(e) for e in errors) if m is not None]
    assert lines == BROKEN_LINES, errors


def test_check_config_reports_them_all_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    proc = run_cli("check-config", str(path), env={})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert [int(m["line"]) for m in map(ERROR_LINE.match, lines) if m] == BROKEN_LINES
    assert all(line.startswith(f"{path}:") for line in lines), lines


# --- the repository's example -----------------------------------------------------------------


def test_the_example_guards_checkout() -> None:
    example = REPO_ROOT / "rollback.example.yaml"
    parsed: Catalog = parse_catalog(example.read_text(encoding="utf-8"), str(example))
    checkout = parsed.services["checkout"].guard
    assert checkout.is_enabled
    assert [t.name for t in checkout.triggers] == [
        "error_rate",
        "latency_p95_seconds",
        "health_check_failures",
        "auth_failures",
    ]
    assert not parsed.services["search"].guard.is_enabled
