"""The catalog's ``staging:`` target: what it resolves to, and ``file:line`` errors for bad ones."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.catalog.load import parse_catalog, staging_key
from bot.catalog.yaml_lines import CatalogError
from bot.rehearsal.plan import plan_rehearsal
from bot.rollback.safety import Refusal
from bot.sim.kubeconfig import kubeconfig_text


def catalog(service_extra: str, *, strategy: str = "undo") -> str:
    head = textwrap.dedent(
        f"""\
        defaults:
          channel: C0DEPLOYS
          context: prod-eu
        services:
          checkout:
            namespace: shop
            deployment: checkout-api
            strategy: {strategy}
            health_url: http://checkout.shop.svc/health
            signals:
              error_rate: sum(rate(errors[5m]))
            responders: [U0ONCALL1]
            oncall:
              - {{name: Primary, phone: "+15550100001"}}
            point_of_no_return: {{revision: 7, reason: schema v12}}
        """
    )
    return head + textwrap.indent(textwrap.dedent(service_extra), "    ")


STAGING_LINE = 16  # where catalog() puts the service's extra lines


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "rollback.yaml")
    return caught.value.errors


def test_the_contract_example_resolves_to_a_staging_twin() -> None:
    text = catalog("staging: {context: staging, namespace: shop, deployment: checkout-api}\n")
    found = parse_catalog(text)
    twin = found.target_of("checkout@staging")
    assert twin is not None and twin.name == staging_key("checkout") == "checkout@staging"
    assert (twin.context, twin.namespace, twin.spec.deployment) == (
        "staging",
        "shop",
        "checkout-api",
    )
    # what watches or protects production is not carried over
    assert twin.spec.health_url is None and twin.spec.signals == {}
    assert twin.spec.point_of_no_return is None and twin.spec.oncall == []
    assert not twin.notifications.incident_channel and not twin.guard.is_enabled
    # who may act and the SLA are the service's
    assert twin.spec.responders == ["U0ONCALL1"] and twin.sla_minutes == 15
    # production resolves as before; get() never hands out the twin
    assert found.target_of("checkout") is found.get("checkout")
    assert found.get("checkout@staging") is None
    assert found.target_of("checkout@prod") is None and found.target_of("nope@staging") is None


def test_left_out_keys_are_production_s_and_the_health_url_is_staging_s() -> None:
    text = catalog(
        "staging:\n  namespace: shop-staging\n  health_url: http://checkout.staging/health\n"
    )
    twin = parse_catalog(text).target_of("checkout@staging")
    assert twin is not None
    assert (twin.context, twin.namespace, twin.spec.deployment) == (
        "prod-eu",
        "shop-staging",
        "checkout-api",
    )
    assert twin.spec.health_url == "http://checkout.staging/health"


def test_a_service_without_staging_has_no_twin() -> None:
    found = parse_catalog(catalog(""))
    checkout = found.get("checkout")
    assert checkout is not None and checkout.staging_twin() is None
    assert found.target_of("checkout@staging") is None


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        (
            "staging: {namespace: shop}\n",
            0,
            "services.checkout.staging: names production (context prod-eu, namespace shop);"
            " give the staging context or namespace",
        ),
        (
            "staging: {}\n",
            0,
            "services.checkout.staging: names production",
        ),
        (
            "staging:\n  context: staging\n  namespace: Shop_Staging\n",
            2,
            "'Shop_Staging' is not a namespace name",
        ),
        (
            "staging:\n  context: staging\n  deployment: Checkout API\n",
            2,
            "'Checkout API' is not a Deployment name",
        ),
        (
            "staging:\n  context: staging\n  health_url: checkout.staging/health\n",
            2,
            "health_url must be an http:// or https:// URL",
        ),
        (
            "staging:\n  context: staging\n  cluster: eu\n",
            2,
            "cluster",
        ),
        (
            "staging:\n  context: ''\n",
            1,
            "context",
        ),
    ],
)
def test_a_bad_staging_block_is_an_error_at_its_line(extra: str, line: int, message: str) -> None:
    line += STAGING_LINE  # the table gives it from the staging: line
    errors = errors_of(catalog(extra))
    assert any(e.startswith(f"rollback.yaml:{line}: ") and message in e for e in errors), errors


def test_blue_green_canary_and_http_services_may_be_rehearsed() -> None:
    blue_green = catalog(
        "blue_green: {service: checkout, stable: blue, candidate: checkout-green}\n"
        "staging: {context: staging}\n",
        strategy="blue-green",
    )
    canary = catalog(
        "canary: {deployment: checkout-canary, traffic: {name: checkout}}\n"
        "staging: {context: staging}\n",
        strategy="canary",
    )
    http = catalog(
        "http_rollback: {url: 'http://deploy/rollback'}\nstaging:\n  context: staging\n"
        "  http: {url: 'http://deploy.staging/rollback', forward_url: 'http://deploy.staging/fwd'}\n",
        strategy="http",
    )
    for text in (blue_green, canary, http):
        assert parse_catalog(text).target_of("checkout@staging") is not None
    twin = parse_catalog(http).target_of("checkout@staging")
    assert twin is not None and twin.spec.http_rollback is not None
    assert twin.spec.http_rollback.url == "http://deploy.staging/rollback"  # never production's


def test_an_http_service_needs_the_staging_api_s_endpoints() -> None:
    text = catalog(
        "http_rollback: {url: 'http://deploy/rollback'}\nstaging: {context: staging}\n",
        strategy="http",
    )
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{STAGING_LINE + 1}: services.checkout.staging: ")
    assert "a rehearsal never calls production's http_rollback" in error
    assert "staging.http: {url: <rollback>, forward_url: <roll-forward>" in error


def test_the_staging_api_needs_its_roll_forward_endpoint() -> None:
    text = catalog(
        "http_rollback: {url: 'http://deploy/rollback'}\nstaging:\n  context: staging\n"
        "  http: {url: 'http://deploy.staging/rollback'}\n",
        strategy="http",
    )
    errors = errors_of(text)
    assert any(
        e.startswith(f"rollback.yaml:{STAGING_LINE + 3}: ") and "forward_url" in e for e in errors
    ), errors


def test_staging_http_on_a_service_without_the_http_plan_is_an_error() -> None:
    text = catalog(
        "staging:\n  context: staging\n"
        "  http: {url: 'http://deploy.staging/rollback', forward_url: 'http://deploy.staging/f'}\n"
    )
    (error,) = errors_of(text)
    assert error == (
        f"rollback.yaml:{STAGING_LINE + 2}: services.checkout.staging.http: only the built-in"
        " plan of strategy http calls a deployment API, and checkout uses strategy undo:"
        " remove staging.http"
    )


def test_custom_phases_with_a_step_that_cannot_be_rolled_forward_name_it() -> None:
    text = catalog(
        "phases:\n"
        "  application:\n"
        "    - {kind: set_image, container: app, image: 'shop/checkout:v1'}\n"
        "    - {kind: http_request, url: 'http://deploy/rollback'}\n"
        "staging: {context: staging}\n"
    )
    (error,) = errors_of(text)
    assert error.startswith(
        f"rollback.yaml:{STAGING_LINE + 3}: services.checkout.phases.application[1]: step"
        " http_request cannot be rolled forward after a rehearsal"
    )
    assert "remove staging: or this step" in error
    # without the step, the same phases may be rehearsed
    without = "".join(line + "\n" for line in text.splitlines() if "http_request" not in line)
    assert parse_catalog(without).target_of("checkout@staging") is not None


def test_check_config_exits_1_with_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rollback.yaml"
    path.write_text(catalog("staging: {namespace: shop}\n"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr()
    assert f"{path}:{STAGING_LINE}: services.checkout.staging: names production" in err.err


def test_staging_naming_a_production_region_is_an_error_at_its_line() -> None:
    text = catalog(
        """\
        regions:
          - {name: eu, context: prod-eu}
          - {name: us, context: prod-us}
        staging: {context: prod-us}
        """
    )
    assert errors_of(text) == [
        f"rollback.yaml:{STAGING_LINE + 3}: services.checkout.staging: names production region"
        " us (context prod-us, namespace shop); give the staging context or namespace"
    ]


def test_check_config_reads_an_absent_context_as_the_kubeconfig_s_current_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # production leaves its context out (the kubeconfig's current one), staging names it
    text = catalog("staging: {context: staging}\n").replace("  context: prod-eu\n", "", 1)
    assert parse_catalog(text).target_of("checkout@staging") is not None  # names differ
    path, kubeconfig = tmp_path / "rollback.yaml", tmp_path / "kubeconfig"
    path.write_text(text, encoding="utf-8")
    kubeconfig.write_text(kubeconfig_text({"staging": "http://127.0.0.1:1"}), encoding="utf-8")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{path}:{STAGING_LINE - 1}: services.checkout.staging: names production (context"
        " staging, the kubeconfig's current context, namespace shop)"
    ) in err
    # another current context: the same catalog is fine
    kubeconfig.write_text(kubeconfig_text({"prod-eu": "http://127.0.0.1:1"}), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0


def test_a_rehearsal_refuses_a_staging_that_is_production_s_current_context() -> None:
    text = catalog("staging: {context: staging}\n").replace("  context: prod-eu\n", "", 1)
    svc = parse_catalog(text).services["checkout"]
    twin = svc.staging_twin()
    assert twin is not None
    with pytest.raises(Refusal, match="staging: target names production") as refused:
        plan_rehearsal(None, svc, twin, None, current_context="staging")  # type: ignore[arg-type]
    assert "fix staging: in the catalog" in str(refused.value)


PROD_API = (
    "http_rollback: {url: 'https://deploy.prod/rollback', status_url: 'https://status.prod/s'}\n"
    "staging:\n  context: staging\n  http:\n"
    "    url: 'https://deploy.staging/rollback'\n"
    "    status_url: 'https://deploy.staging/status'\n"
)


def test_staging_http_on_production_s_host_is_an_error_at_its_key() -> None:
    text = catalog(
        PROD_API + "    forward_url: 'https://DEPLOY.prod:443/other/forward'\n", strategy="http"
    )
    assert errors_of(text) == [
        f"rollback.yaml:{STAGING_LINE + 6}: services.checkout.staging.http.forward_url:"
        " https://deploy.prod:443 is the host of production's deployment API"
        " (http_rollback.url), and a rehearsal never calls production: give the staging"
        " deployment API's endpoints"
    ]
    # another port of that host is another API
    other = catalog(
        PROD_API + "    forward_url: 'https://deploy.prod:8443/forward'\n", strategy="http"
    )
    assert parse_catalog(other).target_of("checkout@staging") is not None


def test_a_rehearsal_refuses_staging_http_on_production_s_host() -> None:
    text = catalog(
        PROD_API + "    forward_url: 'https://deploy.staging/forward'\n", strategy="http"
    )
    svc = parse_catalog(text).services["checkout"]
    assert svc.spec.staging is not None and svc.spec.staging.http is not None
    at_prod = svc.spec.staging.http.model_copy(update={"status_url": "https://status.prod/x"})
    staging = svc.spec.staging.model_copy(update={"http": at_prod})
    svc = replace(svc, spec=svc.spec.model_copy(update={"staging": staging}))
    twin = svc.staging_twin()
    assert twin is not None
    with pytest.raises(Refusal) as refused:
        plan_rehearsal(None, svc, twin, None)  # type: ignore[arg-type]  # refused before reading
    assert str(refused.value).startswith(
        "checkout's staging.http.status_url: https://status.prod:443 is the host of production's"
        " deployment API (http_rollback.status_url)"
    )


def test_staging_on_an_argo_rollout_is_accepted_other_staging_errors_stay() -> None:
    text = catalog("workload: {kind: Rollout}\nstaging: {context: staging}\n")
    twin = parse_catalog(text, "rollback.yaml").target_of("checkout@staging")
    assert twin is not None and twin.workload_kind == "Rollout" and twin.context == "staging"
    # a custom phase's abort is rehearsed too (left out: nothing to abort on a Healthy Rollout)
    phases = (
        "phases:\n  stop_traffic:\n    - {kind: rollout_abort}\n  application:\n"
        "    - {kind: rollout_undo}\n    - {kind: wait_rollout}\n"
    )
    parse_catalog(catalog("workload: {kind: Rollout}\nstaging: {context: staging}\n" + phases))
    (error,) = errors_of(catalog("workload: {kind: Rollout}\nstaging: {context: prod-eu}\n"))
    assert error.startswith(
        f"rollback.yaml:{STAGING_LINE + 1}: services.checkout.staging: names production"
    )
