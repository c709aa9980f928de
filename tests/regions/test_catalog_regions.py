"""``regions:`` and ``waves:`` in the catalog: resolution, file:line errors, and check-config's
warning about contexts the kubeconfig lacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.catalog.load import PlanError, parse_catalog
from bot.catalog.yaml_lines import CatalogError
from bot.rollback.command import UsageError, parse_command
from bot.sim.kubeconfig import kubeconfig_text

HEAD = """defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
services:
  checkout:
    namespace: shop
    deployment: checkout-api
"""
REGIONS = """    regions:
      - {name: eu-west-1, context: eu}
      - {name: us-east-1, context: us, deployment: co-api, sla_minutes: 20}
      - {name: ap-south-1, context: ap, namespace: shop-ap}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "r.yaml")
    return caught.value.errors


def test_regions_resolve_with_the_service_defaults_and_one_wave_each() -> None:
    service = parse_catalog(HEAD + REGIONS, "r.yaml").get("checkout")
    assert service is not None
    assert service.waves == (("eu-west-1",), ("us-east-1",), ("ap-south-1",))
    us = service.in_region("us-east-1")
    assert (us.context, us.namespace, us.spec.deployment, us.sla_minutes) == (
        "us",
        "shop",
        "co-api",
        20,
    )
    ap = service.in_region("ap-south-1")
    assert (ap.namespace, ap.spec.deployment, ap.sla_minutes) == ("shop-ap", "checkout-api", 15)
    assert service.only_regions(("ap-south-1", "eu-west-1")).waves == (
        ("eu-west-1",),
        ("ap-south-1",),
    )


def test_written_waves_are_kept_and_narrowed_by_region() -> None:
    text = HEAD + REGIONS + "    waves: [[eu-west-1], [us-east-1, ap-south-1]]\n"
    service = parse_catalog(text, "r.yaml").get("checkout")
    assert service is not None
    assert service.waves == (("eu-west-1",), ("us-east-1", "ap-south-1"))
    assert service.only_regions(("ap-south-1",)).waves == (("ap-south-1",),)
    with pytest.raises(PlanError, match="checkout has no region mars-1"):
        service.only_regions(("mars-1",))


def test_wave_mistakes_are_errors_with_their_line() -> None:
    text = HEAD + REGIONS + "    waves:\n      - [eu-west-1, eu-west-1]\n      - [us-east-2]\n"
    found = errors(text)
    assert "r.yaml:13: services.checkout.waves: eu-west-1 is in two waves" in found
    assert (
        "r.yaml:14: services.checkout.waves: wave 2 names 'us-east-2', which is not in regions:"
        " (eu-west-1, us-east-1, ap-south-1)" in found
    )
    assert any(e.startswith("r.yaml:10: ") and "us-east-1 is in no wave" in e for e in found)
    assert any(e.startswith("r.yaml:11: ") and "ap-south-1 is in no wave" in e for e in found)


def test_region_fields_are_checked() -> None:
    text = HEAD + (
        "    regions:\n"
        "      - {name: EU_West, context: eu}\n"
        "      - {name: us-east-1, prometheus_url: prom:9090, sla_minutes: 0, colour: red}\n"
        "      - {name: us-east-1}\n"
    )
    found = "\n".join(errors(text))
    assert "r.yaml:9:" in found and "region name 'EU_West' must be lowercase" in found
    assert "prometheus_url must be an http:// or https:// URL" in found
    assert "r.yaml:11: services.checkout.regions: us-east-1 is listed twice" in found


def test_a_single_cluster_service_refuses_the_region_option() -> None:
    service = parse_catalog(HEAD, "r.yaml").get("checkout")
    assert service is not None and service.regions == () and service.region is None
    assert service.only_regions(None) is service
    with pytest.raises(PlanError, match="runs in one cluster"):
        service.only_regions(("eu-west-1",))


def test_the_region_option_parses() -> None:
    cmd = parse_command("run checkout --immediate --region eu-west-1,us-east-1 bad release")
    assert cmd.regions == ("eu-west-1", "us-east-1") and cmd.reason == "bad release"
    assert parse_command("plan checkout --region us-east-1 why").regions == ("us-east-1",)
    assert parse_command("assess checkout --region eu-west-1").regions == ("eu-west-1",)
    assert parse_command("run checkout --immediate why").regions is None
    with pytest.raises(UsageError, match="is not a list of regions"):
        parse_command("run checkout --region EU! why")
    with pytest.raises(UsageError, match="`--region` needs a value"):
        parse_command("run checkout --immediate --region")


def test_check_config_warns_about_contexts_missing_from_the_kubeconfig(tmp_path: Path) -> None:
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(HEAD + REGIONS, encoding="utf-8")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text({"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLBACK_", "KUBE"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(catalog)],
        env={**env, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        f"{catalog}:11: warning: services.checkout.regions: ap-south-1's context 'ap' is not in"
        " the kubeconfig (it has: eu, us)"
    )
    assert "OK, 1 services: checkout" in proc.stdout
