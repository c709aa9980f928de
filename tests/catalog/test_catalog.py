"""``rollback.yaml``: the contract's example loads, defaults resolve, errors say ``file:line``.

In the error tables the line the error must point at is marked with a ``# <-`` comment.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.catalog.load import load_catalog, parse_catalog
from bot.catalog.spec import UserGroup
from bot.catalog.yaml_lines import CatalogError
from bot.rollback.assess import Signal, Thresholds

# every logger whose level setup_logging sets (root included)
CONFIGURED_LOGGERS = ("", "httpx", "alembic", "waitress.queue")

REPO_ROOT = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<message>.+)$")

# Copied from CONTRACT.md, "Catalog (`rollback.yaml`) — the minimum every version accepts".
CONTRACT_EXAMPLE = """\
defaults:
  channel: C0DEPLOYS            # progress and notifications
  sla_minutes: 15
services:
  checkout:
    context: prod-eu            # kube context (optional)
    namespace: shop
    deployment: checkout-api
    strategy: undo              # undo | blue-green | canary | http
    health_url: http://checkout.shop.svc/health
    signals:                    # PromQL; a missing signal is skipped
      error_rate: sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="checkout"}[5m]))
      latency_p95_seconds: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[5m])))
      user_sessions_per_min: sum(rate(user_sessions_total{service="checkout"}[5m])) * 60
      db_up: min(pg_up{service="checkout"})
    approvers: [U0APPROVER1, U0APPROVER2]   # Slack user ids; `usergroup: S…` also accepted
    responders: [U0ONCALL1]                 # may run immediate rollbacks without approval
    oncall:
      - {name: Primary on-call, phone: "+15550100001"}
      - {name: Secondary, phone: "+15550100002", after_minutes: 5}
    channel: C0CHECKOUT
"""  # noqa: E501  (the contract's PromQL lines are long)


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def marked_line(text: str) -> int:
    """The 1-based line that carries the ``# <-`` marker."""
    (line,) = [n for n, ln in enumerate(text.splitlines(), 1) if ln.rstrip().endswith("# <-")]
    return line


def errors_of(text: str, source: str = "rollback.yaml") -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, source)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


# --- what loads -------------------------------------------------------------------------------


def test_contract_example_loads() -> None:
    catalog = parse_catalog(CONTRACT_EXAMPLE)
    assert catalog.names == ["checkout"]
    svc = catalog.services["checkout"]
    assert svc.name == "checkout"
    assert svc.channel == "C0CHECKOUT"  # the service's own channel beats defaults.channel
    assert svc.namespace == "shop"
    assert svc.context == "prod-eu"
    assert svc.sla_minutes == 15
    assert svc.thresholds == Thresholds()
    assert svc.spec.deployment == "checkout-api"
    assert svc.spec.strategy == "undo"
    assert svc.spec.health_url == "http://checkout.shop.svc/health"
    assert set(svc.signals) == {
        Signal.ERROR_RATE,
        Signal.LATENCY_P95,
        Signal.USER_SESSIONS,
        Signal.DB_UP,
    }
    assert svc.signals[Signal.DB_UP] == 'min(pg_up{service="checkout"})'
    assert svc.signals[Signal.ERROR_RATE].startswith("sum(rate(http_requests_total{")
    assert svc.spec.approvers == ["U0APPROVER1", "U0APPROVER2"]
    assert svc.spec.responders == ["U0ONCALL1"]
    assert [(c.name, c.phone, c.after_minutes) for c in svc.spec.oncall] == [
        ("Primary on-call", "+15550100001", 0),
        ("Secondary", "+15550100002", 5),
    ]


def test_contract_example_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    catalog = load_catalog(path)
    assert catalog.source == str(path)
    assert catalog.names == ["checkout"]


def test_defaults_when_nothing_is_set() -> None:
    catalog = parse_catalog(
        yaml_text("""
        services:
          checkout:
            deployment: checkout-api
            channel: C0CHECKOUT
        """)
    )
    svc = catalog.services["checkout"]
    assert (svc.channel, svc.namespace, svc.context, svc.sla_minutes) == (
        "C0CHECKOUT",
        "default",
        None,
        15,
    )
    assert svc.health_timeout_seconds == 5.0
    assert svc.thresholds == Thresholds()
    assert svc.spec.strategy == "undo"
    assert svc.signals == {}
    assert (svc.spec.approvers, svc.spec.responders, svc.spec.oncall) == ([], [], [])


DEFAULTED = yaml_text("""
    defaults:
      channel: C0DEPLOYS
      sla_minutes: 20
      namespace: prod
      context: ctx-defaults
      health_timeout_seconds: 3
    services:
      inherits:
        deployment: a
      overrides:
        deployment: b
        channel: C0OWN
        sla_minutes: 5
        namespace: own
        context: ctx-own
        health_timeout_seconds: 1.5
    """)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param("inherits", ("C0DEPLOYS", 20, "prod", "ctx-defaults", 3.0), id="inherits"),
        pytest.param("overrides", ("C0OWN", 5, "own", "ctx-own", 1.5), id="overrides"),
    ],
)
def test_service_settings_override_defaults(
    service: str, expected: tuple[str, int, str, str, float]
) -> None:
    svc = parse_catalog(DEFAULTED).services[service]
    assert (
        svc.channel,
        svc.sla_minutes,
        svc.namespace,
        svc.context,
        svc.health_timeout_seconds,
    ) == expected


# (defaults.thresholds, service thresholds, resolved Thresholds)
THRESHOLDS = [
    pytest.param("{}", "{}", Thresholds(), id="none set -> the seed matrix"),
    pytest.param(
        "{error_rate: {critical: 0.2}}",
        "{}",
        Thresholds(error_rate_critical=0.2),
        id="defaults override the matrix",
    ),
    pytest.param(
        "{}",
        "{latency_p95_seconds: {medium: 0.5}}",
        Thresholds(latency_p95_medium=0.5),
        id="service overrides the matrix",
    ),
    pytest.param(
        "{error_rate: {critical: 0.2, high: 0.08}, latency_p95_seconds: {high: 3}}",
        "{error_rate: {critical: 0.3}, user_sessions_per_min: {high: 0.5}}",
        Thresholds(
            error_rate_critical=0.3,
            error_rate_high=0.08,
            latency_p95_high=3.0,
            user_sessions_high=0.5,
        ),
        id="service beats defaults which beat the matrix, key by key",
    ),
    pytest.param(
        "{latency_p95_seconds: {critical: 8, high: 4, medium: 2}}",
        "{latency_p95_seconds: {high: 3}}",
        Thresholds(latency_p95_critical=8.0, latency_p95_high=3.0, latency_p95_medium=2.0),
        id="service overrides one latency row, keeps the other two from defaults",
    ),
]


@pytest.mark.parametrize(("defaults", "service", "expected"), THRESHOLDS)
def test_thresholds_resolve(defaults: str, service: str, expected: Thresholds) -> None:
    text = yaml_text(f"""
        defaults:
          channel: C0DEPLOYS
          thresholds: {defaults}
        services:
          checkout:
            deployment: checkout-api
            thresholds: {service}
          plain:
            deployment: plain-api
        """)
    catalog = parse_catalog(text)
    assert catalog.services["checkout"].thresholds == expected
    # a service without thresholds gets the defaults' (no service override)
    base = parse_catalog(text.replace(f"thresholds: {service}", "thresholds: {}")).services
    assert catalog.services["plain"].thresholds == base["checkout"].thresholds


def test_approvers_accept_user_ids_and_usergroups() -> None:
    catalog = parse_catalog(
        yaml_text("""
        defaults: {channel: C0DEPLOYS}
        services:
          checkout:
            deployment: checkout-api
            approvers: [U0APPROVER1, W0ENTERPRISE, {usergroup: S0SRETEAM}]
            responders: [U0ONCALL1, W0ONCALL2]
        """)
    )
    spec = catalog.services["checkout"].spec
    assert spec.approvers == ["U0APPROVER1", "W0ENTERPRISE", UserGroup(usergroup="S0SRETEAM")]
    assert spec.responders == ["U0ONCALL1", "W0ONCALL2"]


STRATEGY_SECTION = {
    "undo": "",
    "blue-green": "    blue_green: {service: web, stable: blue, candidate: web-green}\n",
    "canary": "    canary: {deployment: web-canary, traffic: {name: web}}\n",
    "http": "    http_rollback: {url: 'https://deploy.example.com/rollback'}\n",
}


@pytest.mark.parametrize("strategy", ["undo", "blue-green", "canary", "http"])
def test_every_strategy_of_the_contract_is_accepted(strategy: str) -> None:
    text = HEAD + f"    strategy: {strategy}\n" + STRATEGY_SECTION[strategy]
    assert parse_catalog(text).services["checkout"].spec.strategy == strategy


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "http"])
def test_a_strategy_without_its_section_is_an_error(strategy: str) -> None:
    text = HEAD + f"    strategy: {strategy}  # <-\n"
    (error,) = errors_of(text)
    section = {"blue-green": "blue_green", "canary": "canary", "http": "http_rollback"}[strategy]
    assert error == (
        f"rollback.yaml:{marked_line(text)}: services.checkout: strategy {strategy} needs a"
        f" {section}: section (or phases:), see rollback.example.yaml"
    )


def test_lookup_is_case_insensitive_and_names_are_sorted() -> None:
    catalog = parse_catalog(
        "defaults: {channel: C0D}\n"
        "services:\n  search: {deployment: s}\n  checkout: {deployment: c}\n"
    )
    assert catalog.names == ["checkout", "search"]
    found = catalog.get("Checkout")
    assert found is not None and found.name == "checkout"
    assert catalog.get("payments") is None


# --- errors, one per file, on the right line ---------------------------------------------------

HEAD = "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    deployment: checkout-api\n"

# (the file, marked on the line the error must name, what the error says after "file:line: ")
ERRORS = [
    pytest.param(
        HEAD + "bogus: 1  # <-\n",
        "bogus: unknown key",
        id="unknown key at top level",
    ),
    pytest.param(
        "defaults:\n  channel: C0DEPLOYS\n  colour: red  # <-\nservices:\n  a: {deployment: a}\n",
        "defaults.colour: unknown key",
        id="unknown key in defaults",
    ),
    pytest.param(
        HEAD + "    replicas: 3  # <-\n",
        "services.checkout.replicas: unknown key",
        id="unknown key in a service",
    ),
    pytest.param(
        HEAD + "    thresholds:\n      error_rate:\n"
        "        critical: 0.2\n        warning: 0.1  # <-\n",
        "services.checkout.thresholds.error_rate.warning: unknown key",
        id="unknown key in thresholds",
    ),
    pytest.param(
        HEAD + "    thresholds:\n      db_up: {critical: 1}  # <-\n",
        "services.checkout.thresholds.db_up: unknown key",
        id="threshold for a signal without thresholds",
    ),
    pytest.param(
        HEAD + "    timezone: Mars/Olympus  # <-\n",
        "services.checkout.timezone: 'Mars/Olympus' is not a time zone: use an IANA name like"
        " Europe/Berlin",
        id="unknown time zone",
    ),
    pytest.param(
        HEAD + "    namespace: first\n    namespace: second  # <-\n",
        "duplicate key 'namespace'",
        id="duplicate key in a service",
    ),
    pytest.param(
        HEAD + "  checkout:  # <-\n    deployment: again\n",
        "duplicate key 'checkout'",
        id="duplicate service",
    ),
    pytest.param(
        HEAD + "    strategy: rolling  # <-\n",
        "services.checkout.strategy: must be 'undo', 'blue-green', 'canary' or 'http'",
        id="bad strategy",
    ),
    pytest.param(
        HEAD + "    signals:\n      error_rate: up\n      errors: rate(x[5m])  # <-\n",
        "services.checkout.signals.errors: must be 'error_rate', 'latency_p95_seconds',"
        " 'user_sessions_per_min' or 'db_up'",
        id="bad signal name",
    ),
    pytest.param(
        HEAD + "    signals:\n      error_rate: up\n      db_up:  # <-\n",
        "services.checkout.signals.db_up: must be text, not nothing",
        id="signal without a query",
    ),
    pytest.param(
        HEAD + "    oncall:\n      - {name: A, phone: '+15550100001'}\n"
        "      - {name: B, phone: '555-0100', after_minutes: 5}  # <-\n",
        "services.checkout.oncall.1.phone: phone must be in E.164 form, e.g. +15550100001",
        id="bad phone",
    ),
    pytest.param(
        HEAD + "    oncall:\n      - name: A\n        phone: +15550100001  # <-\n",
        "services.checkout.oncall.0.phone: must be text, not the number 15550100001",
        id="unquoted phone (YAML reads a number)",
    ),
    pytest.param(
        HEAD + "    oncall:  # <-\n      - {name: A, phone: '+15550100001', after_minutes: 5}\n"
        "      - {name: B, phone: '+15550100002'}\n",
        "services.checkout.oncall: oncall levels must be listed in order of after_minutes",
        id="out-of-order oncall ladder",
    ),
    pytest.param(
        HEAD + "    oncall:\n      - {name: A, phone: '+15550100001', after_minutes: -1}  # <-\n",
        "services.checkout.oncall.0.after_minutes: must be greater than or equal to 0",
        id="negative after_minutes",
    ),
    pytest.param(
        HEAD + "    approvers:\n      - U0APPROVER1\n      - alice  # <-\n",
        "services.checkout.approvers.1: 'alice' is not a Slack user id (U… or W…)",
        id="bad user id in approvers",
    ),
    pytest.param(
        HEAD + "    responders:\n      - C0CHANNEL  # <-\n",
        "services.checkout.responders.0: 'C0CHANNEL' is not a Slack user id (U… or W…)",
        id="bad user id in responders",
    ),
    pytest.param(
        HEAD + "    responders:\n      - {usergroup: S0SRETEAM}  # <-\n",
        "services.checkout.responders.0: must be text, not a mapping",
        id="usergroup is not accepted as a responder",
    ),
    pytest.param(
        HEAD + "    approvers:\n      - U0APPROVER1\n      - {usergroup: X}  # <-\n",
        "services.checkout.approvers.1.usergroup: 'X' is not a Slack user group id (S…)",
        id="usergroup X refused",
    ),
    pytest.param(
        HEAD + "    approvers:\n      - {usergroup: U0APPROVER1}  # <-\n",
        "services.checkout.approvers.0.usergroup: 'U0APPROVER1' is not a Slack user group id",
        id="usergroup with a user id refused",
    ),
    pytest.param(
        HEAD + "    channel: deploys  # <-\n",
        "services.checkout.channel: 'deploys' is not a Slack channel id (C… or G…)",
        id="channel name instead of id",
    ),
    pytest.param(
        "defaults:\n  channel: '#deploys'  # <-\nservices:\n  a: {deployment: a}\n",
        "defaults.channel: '#deploys' is not a Slack channel id (C… or G…)",
        id="bad defaults channel",
    ),
    pytest.param(
        HEAD + "    health_url: checkout.shop.svc/health  # <-\n",
        "services.checkout.health_url: health_url must be an http:// or https:// URL",
        id="health_url without scheme",
    ),
    pytest.param(
        "defaults: {channel: C0D}\nservices:\n  checkout:  # <-\n    namespace: shop\n",
        "services.checkout.deployment: missing (required)",
        id="service without deployment",
    ),
    pytest.param(
        HEAD + "    thresholds:\n      error_rate: {critical: 10}  # <-\n",
        "services.checkout.thresholds.error_rate.critical: must be less than or equal to 1",
        id="error rate threshold given in percent",
    ),
    pytest.param(
        HEAD + "    sla_minutes: 0  # <-\n",
        "services.checkout.sla_minutes: must be greater than 0",
        id="sla_minutes 0",
    ),
    pytest.param(
        "defaults:  # <-\n  channel: C0DEPLOYS\n",
        "services: missing (required)",
        id="no services section",
    ),
    pytest.param(
        "defaults:\n  channel: C0DEPLOYS\nservices: {}  # <-\n",
        "services: must not be empty",
        id="no services",
    ),
    pytest.param(
        "# a comment first\n\nservices:  # <-\n  checkout:\n    deployment: checkout-api\n",
        "catalog: no channel for checkout: set defaults.channel or channel",
        id="no channel anywhere",
    ),
    pytest.param(
        HEAD + "    namespace: shop: eu  # <-\n",
        "invalid YAML: mapping values are not allowed here",
        id="invalid YAML: mapping in a plain value",
    ),
    pytest.param(
        HEAD + "    approvers: [U0APPROVER1\n    namespace: shop  # <-\n",
        "invalid YAML: expected ',' or ']'",
        id="invalid YAML: unclosed flow list",
    ),
    pytest.param(
        "defaults:\n  channel: C0DEPLOYS\nservices:\n\tcheckout: {deployment: a}  # <-\n",
        "invalid YAML: found character '\\t' that cannot start any token",
        id="invalid YAML: tab indentation",
    ),
    pytest.param(
        HEAD + "---  # <-\nservices: {}\n",
        "invalid YAML: but found another document",
        id="invalid YAML: two documents",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_error_names_file_and_line(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert errors[0].startswith(f"rollback.yaml:{marked_line(text)}: {expected}"), errors
    assert all(ERROR_LINE.match(e) for e in errors), errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "rollback.yaml:1: the catalog is empty", id="empty file"),
        pytest.param("# nothing here\n\n", "rollback.yaml:1: the catalog is empty", id="comments"),
        pytest.param(
            "- checkout\n- search\n",
            "rollback.yaml:1: the catalog must be a mapping with a services: section",
            id="a list",
        ),
        pytest.param(
            "checkout\n",
            "rollback.yaml:1: the catalog must be a mapping with a services: section",
            id="a scalar",
        ),
    ],
)
def test_file_that_is_not_a_catalog(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_source_name_is_used_in_errors() -> None:
    (error,) = errors_of(HEAD + "bogus: 1\n", source="deploy/prod.yaml")
    assert error.startswith("deploy/prod.yaml:6: bogus: ")


def test_several_errors_are_all_reported() -> None:
    text = yaml_text("""
        defaults:
          channel: C0DEPLOYS
          flavour: vanilla            # 3: unknown key
        services:
          checkout:
            deployment: checkout-api
            strategy: rolling         # 7: bad strategy
            namespace: a
            namespace: b              # 9: duplicate key
            approvers:
              - alice                 # 11: bad user id
            oncall:
              - {name: A, phone: "0100"}   # 13: bad phone
          search:
            deployment: search-api
            signals: {errors: up}     # 16: bad signal name
        """)
    errors = errors_of(text)
    by_line = {
        int(m["line"]): m["message"] for m in (ERROR_LINE.match(e) for e in errors) if m is not None
    }
    assert len(errors) == len(by_line) == 6, errors
    assert by_line[3].startswith("defaults.flavour: unknown key")
    assert by_line[7].startswith("services.checkout.strategy: ")
    assert by_line[9] == "duplicate key 'namespace'"
    assert by_line[11].startswith("services.checkout.approvers.0: 'alice'")
    assert by_line[13].startswith("services.checkout.oncall.0.phone: phone must be in E.164")
    assert by_line[16].startswith("services.search.signals.errors: ")


# --- the file itself --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert caught.value.errors == [f"{path}:1: cannot read the catalog: No such file or directory"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    (error,) = caught.value.errors
    assert error.startswith(f"{tmp_path}:1: cannot read the catalog: ")


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(HEAD + "    strategy: rolling\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    (error,) = caught.value.errors
    assert error.startswith(f"{path}:6: services.checkout.strategy: ")


# --- YAML the mapper cannot turn into data: reported, never a traceback --------------------------

# A catalog error must be a CatalogError with file:line lines, whatever the YAML holds.
ODD_YAML = [
    pytest.param(
        HEAD + "    channel: !secret deploys  # <-\n",
        id="custom tag",
    ),
    pytest.param(
        "base: &base {deployment: checkout-api}\n"
        "defaults: {channel: C0DEPLOYS}\nservices:\n  checkout:\n    <<: *base  # <-\n",
        id="merge key",
    ),
    pytest.param(
        HEAD + "    ? [a, b]  # <-\n    : 1\n",
        id="complex key",
    ),
]


@pytest.mark.parametrize("text", ODD_YAML)
def test_odd_yaml_is_reported_not_raised(text: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text)
    (error,) = caught.value.errors
    assert ERROR_LINE.match(error)
    assert error.startswith(f"rollback.yaml:{marked_line(text)}: ")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_bytes(b"# caf\xe9 team\n" + CONTRACT_EXAMPLE.encode())
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    (error,) = caught.value.errors
    assert error.startswith(f"{path}:1: ")


def test_empty_query_points_at_the_query() -> None:
    text = HEAD + "    signals:\n      error_rate: up\n      db_up: '  '  # <-\n"
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{marked_line(text)}: services.checkout.signals.db_up")
    assert "the query is empty" in error


def test_empty_query_is_refused() -> None:
    (error,) = errors_of(HEAD + "    signals:\n      error_rate: up\n      db_up: ''\n")
    assert re.match(r"rollback\.yaml:\d+: services\.checkout\.signals\.db_up", error)
    assert "the query is empty" in error


def test_bad_service_name_is_refused() -> None:
    (error,) = errors_of(HEAD + "  Check_Out:\n    deployment: x\n")
    assert re.match(r"rollback\.yaml:\d+: services", error)
    assert "service name 'Check_Out' must be lowercase letters, digits and dashes" in error


def test_bad_service_name_points_at_the_name() -> None:
    text = HEAD + "  Check_Out:  # <-\n    deployment: x\n"
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{marked_line(text)}: services")
    assert "service name 'Check_Out' must be lowercase" in error


# --- rollback-bot check-config -------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``setup_logging`` reconfigures process-wide loggers; put them back for the other tests."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in CONFIGURED_LOGGERS}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK, 1 services: checkout\n"
    assert err == ""


@pytest.mark.usefixtures("root_logging")
def test_check_config_reports_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(HEAD + "    strategy: rolling\n    replicas: 3\n", encoding="utf-8")
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    for line in lines:
        m = ERROR_LINE.match(line)
        assert m is not None and m["file"] == str(path), line
    assert {int(m["line"]) for m in map(ERROR_LINE.match, lines) if m} == {6, 7}


@pytest.mark.usefixtures("root_logging")
def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}:1: cannot read the catalog: No such file or directory\n"


@pytest.mark.usefixtures("root_logging")
def test_check_config_defaults_to_rollback_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    monkeypatch.setenv("ROLLBACK_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: OK")


CONTEXTS = ("prod-eu", "prod-us", "prod-ap")


@pytest.mark.usefixtures("root_logging")
def test_check_config_on_the_repository_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = REPO_ROOT / "rollback.example.yaml"
    kubeconfig = tmp_path / "kubeconfig"  # with the contexts the example's regions name
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod-eu\nclusters:\n"
        + "".join(f"- {{name: {c}, cluster: {{server: 'https://{c}'}}}}\n" for c in CONTEXTS)
        + "users:\n- {name: bot, user: {token: t}}\ncontexts:\n"
        + "".join(f"- {{name: {c}, context: {{cluster: {c}, user: bot}}}}\n" for c in CONTEXTS),
        encoding="utf-8",
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["check-config", str(example)]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert out.startswith(f"{example}: OK")
    assert err == ""


@pytest.mark.usefixtures("root_logging")
def test_check_config_with_a_custom_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(HEAD + "    channel: !secret deploys\n", encoding="utf-8")
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:6: ")


def test_contradictory_thresholds_are_refused() -> None:
    text = HEAD + "    thresholds:\n      error_rate: {high: 0.2}  # <-\n"
    (error,) = errors_of(text)
    assert error == (
        f"rollback.yaml:{marked_line(text)}: services.checkout.thresholds:"
        " error_rate: high is above critical"
    )


def test_threshold_override_inherits_the_rest() -> None:
    text = HEAD + "    thresholds:\n      latency_p95_seconds: {high: 1.5}\n"
    t = parse_catalog(text).services["checkout"].thresholds
    assert (t.latency_p95_medium, t.latency_p95_high, t.latency_p95_critical) == (1.0, 1.5, 5.0)


@pytest.mark.parametrize(
    ("approvers", "approval", "warned"),
    [
        ("[U0APPROVER1, U0APPROVER2]", "{min_approvals: 2}", True),  # two-person rule: 1 left
        ("[U0APPROVER1, U0APPROVER2]", "{min_approvals: 2, two_person_rule: false}", False),
        ("[U0APPROVER1, U0APPROVER2, U0APPROVER3]", "{min_approvals: 2}", False),
        ("[U0APPROVER1, {usergroup: S0SRE}]", "{min_approvals: 3}", False),  # group size unknown
    ],
)
def test_approvals_that_can_never_be_met_are_a_warning(
    approvers: str, approval: str, warned: bool
) -> None:
    text = (
        "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    deployment: checkout-api\n"
        f"    approvers: {approvers}\n    approval: {approval}\n"
    )
    warnings = [w for w in parse_catalog(text, "t.yaml").warnings if "approval needs" in w]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith("t.yaml:6: warning: services.checkout:")


@pytest.mark.parametrize(
    ("approvers", "approval"),
    [
        ("[U0APPROVER1]", "{min_approvals: 3}"),  # 3 votes, one person
        ("[U0APPROVER1, U0APPROVER2]", "{min_approvals: 3, two_person_rule: false}"),
        ("[U0APPROVER1, U0APPROVER1]", "{min_approvals: 2}"),  # the same person twice
    ],
)
def test_approvals_no_request_can_ever_get_are_an_error(approvers: str, approval: str) -> None:
    text = (
        "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    deployment: checkout-api\n"
        f"    approvers: {approvers}  # <-\n    approval: {approval}\n"
    )
    (error,) = errors_of(text)
    assert error.startswith("rollback.yaml:6: services.checkout: approval needs ")
    assert "so no planned rollback can ever be approved" in error


def test_approvals_set_under_defaults_are_checked_per_service() -> None:
    text = (
        "defaults:\n  channel: C0DEPLOYS\n  approval: {min_approvals: 2}\nservices:\n"
        "  checkout:\n    deployment: checkout-api\n    approvers: [U0APPROVER1]\n"
    )
    (error,) = errors_of(text)
    assert error.startswith("rollback.yaml:7: services.checkout: approval needs 2 approvals but")
    assert "only 1 approver is listed" in error


def test_an_inverted_default_threshold_is_reported_where_it_is_written() -> None:
    text = (
        "defaults:\n  channel: C0DEPLOYS\n  thresholds:\n    error_rate: {high: 0.5}  # <-\n"
        "services:\n  checkout: {deployment: checkout-api}\n  search: {deployment: search-api}\n"
    )
    assert errors_of(text) == [
        f"rollback.yaml:{marked_line(text)}: defaults.thresholds: error_rate: high is above"
        " critical"
    ]


def test_a_service_that_overrides_the_inverted_signal_is_not_blamed_for_the_default() -> None:
    text = (
        "defaults:\n  channel: C0DEPLOYS\n  thresholds:\n    error_rate: {high: 0.5}\n"
        "services:\n  checkout:\n    deployment: checkout-api\n"
        "    thresholds: {error_rate: {critical: 0.6}}\n"
        "  search:\n    deployment: search-api\n    thresholds:\n"
        "      latency_p95_seconds: {high: 9}  # <-\n"
    )
    assert errors_of(text) == [
        "rollback.yaml:4: defaults.thresholds: error_rate: high is above critical",
        f"rollback.yaml:{marked_line(text)}: services.search.thresholds: latency_p95_seconds:"
        " needs medium ≤ high ≤ critical",
    ]


def test_every_problem_is_reported_at_once() -> None:
    """Not batch by batch: a typo elsewhere must not hide the semantic problems."""
    text = (
        "defaults:\n  channel: C0DEPLOYS\n"
        "services:\n"
        "  checkout:\n    deployment: checkout-api\n    replicas: 3\n"  # 6: unknown key
        "  web:\n    deployment: web\n    strategy: blue-green\n"  # 9: no blue_green:
        "  pay:\n    deployment: pay\n    approvers: [U0APPROVER1]\n"  # 12: impossible
        "    approval: {min_approvals: 3}\n"
        "  search:\n    deployment: search\n    thresholds:\n"
        "      error_rate: {high: 0.9}\n"  # 17: inverted
    )
    lines = [int(e.split(":")[1]) for e in errors_of(text)]
    assert lines == [6, 9, 12, 17]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "    aprovers: [U0APPROVER1]", "unknown key (did you mean approvers?)", id="svc"
        ),
        pytest.param(
            "    thresholds: {error_rate: {critcal: 0.2}}",
            "unknown key (did you mean critical?)",
            id="nested",
        ),
        pytest.param(
            "    colour: red",
            "unknown key (allowed here: context, namespace, deployment",
            id="nothing close: the allowed keys",
        ),
    ],
)
def test_an_unknown_key_suggests_the_allowed_one(line: str, message: str) -> None:
    (error,) = errors_of(HEAD + line + "\n")
    assert error.split(": ", 2)[2].startswith(message), error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "defaults: {channel: C0D}\nservices:\n  checkout: [checkout-api]\n",
            "services.checkout: must be a mapping of keys (key: value), not a list",
            id="service as a list",
        ),
        pytest.param(
            "defaults: {channel: C0D}\nservices:\n  checkout:\n",
            "services.checkout: must be a mapping of keys (key: value), not nothing",
            id="empty service",
        ),
        pytest.param(
            HEAD + "    approval: {min_approvals: two}\n",
            "services.checkout.approval.min_approvals: must be a whole number, not 'two'",
            id="word for a number",
        ),
    ],
)
def test_errors_use_plain_words_not_pydantic_ones(text: str, message: str) -> None:
    (error,) = errors_of(text)
    assert error.split(": ", 1)[1] == message
    assert "Input should" not in error and "instance of" not in error
