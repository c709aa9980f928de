"""``drills:`` in the catalog: defaults and per-service keys, resolved key by key, and every
mistake reported by check-config as ``file:line: path: message``."""

from __future__ import annotations

import pytest

from bot.catalog.load import parse_catalog
from bot.catalog.yaml_lines import CatalogError


def _catalog(defaults: str = "", **services: str) -> str:
    lines = ["defaults:", "  channel: C0DEPLOYS"]
    if defaults:
        lines.append(f"  drills: {defaults}")
    lines.append("services:")
    for name, drills in services.items():
        lines += [f"  {name}:", f"    deployment: {name}-api"]
        if drills:
            lines.append(f"    drills: {drills}")
    return "\n".join(lines) + "\n"


def _errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "rollback.yaml")
    return caught.value.errors


def test_a_service_overrides_the_defaults_key_by_key() -> None:
    catalog = parse_catalog(
        _catalog('{schedule: weekly, day: tue, at: "10:00"}', checkout='{at: "06:30"}', search="")
    )
    checkout, search = catalog.services["checkout"].drills, catalog.services["search"].drills
    assert (checkout.schedule, checkout.day, checkout.at) == ("weekly", "tue", "06:30")
    assert (search.schedule, search.day, search.at) == ("weekly", "tue", "10:00")
    assert checkout.fresh_days == 14 and checkout.period_days == 7


def test_without_drills_nothing_is_scheduled() -> None:
    drills = parse_catalog(_catalog(checkout="")).services["checkout"].drills
    assert drills.schedule is None and drills.fresh_days == 14


def test_monthly_drills_and_their_freshness() -> None:
    drills = parse_catalog(_catalog(checkout="{schedule: monthly, day: 1, max_age_days: 40}"))
    assert drills.services["checkout"].drills.fresh_days == 40


def test_mistakes_are_reported_with_file_and_line() -> None:
    errors = _errors(
        _catalog(
            "{schedule: weekly}",
            checkout="{day: 15}",
            search='{schedule: monthly, at: "25:00"}',
            other="{schedule: daily}",
            more="{schedule: weekly, day: someday}",
            last="{max_age_days: 0}",
        )
    )
    assert errors == [
        "rollback.yaml:7: services.checkout.drills: day: 15 is a day of the month, and a weekly"
        " drill needs mon … sun (services.checkout)",
        "rollback.yaml:10: services.search.drills.at: '25:00' is not a time of day: use HH:MM,"
        ' e.g. "10:00"',
        "rollback.yaml:13: services.other.drills.schedule: must be 'weekly' or 'monthly'",
        "rollback.yaml:16: services.more.drills.day: 'someday' is not a day: use mon … sun, or"
        " 1 … 28 (monthly)",
        "rollback.yaml:19: services.last.drills.max_age_days: must be greater than 0",
    ]
