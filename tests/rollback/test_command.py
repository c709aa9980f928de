"""The `/rollback` grammar of CONTRACT.md: every verb, every flag, every way to get it wrong."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.rollback.command import (
    USAGE,
    VERBS,
    Command,
    UsageError,
    _tokens,
    local_time,
    parse_command,
    parse_window,
)

VALID = [
    # help
    pytest.param("", Command("help"), id="empty text -> help"),
    pytest.param("   ", Command("help"), id="blank text -> help"),
    pytest.param("help", Command("help"), id="help"),
    pytest.param("HELP", Command("help"), id="HELP (verbs are case-insensitive)"),
    # assess
    pytest.param("assess checkout", Command("assess", service="checkout"), id="assess"),
    pytest.param(
        "  assess   Checkout  ", Command("assess", service="checkout"), id="assess Checkout"
    ),
    # plan
    pytest.param("plan checkout", Command("plan", service="checkout"), id="plan"),
    pytest.param(
        "plan checkout --to 41",
        Command("plan", service="checkout", target_revision="41"),
        id="plan --to 41",
    ),
    pytest.param(
        "plan checkout --at 14:30",
        Command("plan", service="checkout", at="14:30"),
        id="plan --at HH:MM",
    ),
    pytest.param(
        "plan checkout --at 2025-03-01T14:30:00Z",
        Command("plan", service="checkout", at="2025-03-01T14:30:00Z"),
        id="plan --at ISO time",
    ),
    pytest.param(
        "plan checkout --to v1.2.3 --at 14:30 bad deploy",
        Command(
            "plan", service="checkout", target_revision="v1.2.3", at="14:30", reason="bad deploy"
        ),
        id="plan --to --at reason",
    ),
    pytest.param(
        "plan checkout bad --at 14:30 deploy --to 41",
        Command("plan", service="checkout", target_revision="41", at="14:30", reason="bad deploy"),
        id="plan flags between reason words",
    ),
    pytest.param(
        'plan checkout "payments failing since 14:00" --at 15:00',
        Command("plan", service="checkout", at="15:00", reason="payments failing since 14:00"),
        id="plan double-quoted reason",
    ),
    # run
    pytest.param("run checkout", Command("run", service="checkout"), id="run"),
    pytest.param(
        "run checkout --immediate",
        Command("run", service="checkout", is_immediate=True),
        id="run --immediate",
    ),
    pytest.param(
        "run checkout --dry-run",
        Command("run", service="checkout", is_dry_run=True),
        id="run --dry-run",
    ),
    pytest.param(
        "run checkout --immediate --to 41 --dry-run db is down",
        Command(
            "run",
            service="checkout",
            target_revision="41",
            reason="db is down",
            is_immediate=True,
            is_dry_run=True,
        ),
        id="run all flags then reason",
    ),
    pytest.param(
        "run checkout db is down --immediate",
        Command("run", service="checkout", reason="db is down", is_immediate=True),
        id="run reason then flag",
    ),
    pytest.param(
        "run checkout 'error storm after 2.4.1' --to checkout-api-2.4.0",
        Command(
            "run",
            service="checkout",
            target_revision="checkout-api-2.4.0",
            reason="error storm after 2.4.1",
        ),
        id="run single-quoted reason, tag revision",
    ),
    pytest.param(
        "run checkout --to sha256:abc.1_2",
        Command("run", service="checkout", target_revision="sha256:abc.1_2"),
        id="run revision with : . _",
    ),
    pytest.param(
        "run checkout -x",
        Command("run", service="checkout", reason="-x"),
        id="run single-dash word is part of the reason",
    ),
    # approve / reject / abort / review
    pytest.param("approve 42", Command("approve", rollback_id=42), id="approve 42"),
    pytest.param("approve #42", Command("approve", rollback_id=42), id="approve #42"),
    pytest.param("approve #0042", Command("approve", rollback_id=42), id="approve #0042"),
    pytest.param("reject 42", Command("reject", rollback_id=42), id="reject 42"),
    pytest.param(
        "reject #42 not during the sale",
        Command("reject", rollback_id=42, reason="not during the sale"),
        id="reject #42 reason",
    ),
    pytest.param(
        'reject 42 "too risky, wait"',
        Command("reject", rollback_id=42, reason="too risky, wait"),
        id="reject quoted reason",
    ),
    pytest.param("abort 7", Command("abort", rollback_id=7), id="abort 7"),
    pytest.param(
        "abort #7 stuck rollout",
        Command("abort", rollback_id=7, reason="stuck rollout"),
        id="abort #7 reason",
    ),
    pytest.param("review 42", Command("review", rollback_id=42), id="review 42"),
    pytest.param("review #42", Command("review", rollback_id=42), id="review #42"),
    # status / history
    pytest.param("status", Command("status"), id="status"),
    pytest.param("status 42", Command("status", rollback_id=42), id="status 42"),
    pytest.param("status #42", Command("status", rollback_id=42), id="status #42"),
    pytest.param("status checkout", Command("status", service="checkout"), id="status service"),
    pytest.param("STATUS Checkout", Command("status", service="checkout"), id="STATUS Checkout"),
    pytest.param("history", Command("history"), id="history"),
    pytest.param("history checkout", Command("history", service="checkout"), id="history service"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parses(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


INVALID = [
    pytest.param("deploy checkout", "unknown subcommand `deploy`", id="unknown subcommand"),
    pytest.param("Rollbak checkout", "unknown subcommand `rollbak`", id="unknown subcommand typo"),
    pytest.param("assess", "`/rollback assess` needs a service name", id="assess: no service"),
    pytest.param("plan", "`/rollback plan` needs a service name", id="plan: no service"),
    pytest.param("run", "`/rollback run` needs a service name", id="run: no service"),
    pytest.param(
        "run --immediate checkout",
        "`/rollback run` needs a service name",
        id="run: flag before the service",
    ),
    pytest.param(
        "assess checkout now",
        "`/rollback assess` takes a service name and optionally --region",
        id="assess: extra word",
    ),
    pytest.param(
        "assess checkout payments",
        "`/rollback assess` takes a service name and optionally --region",
        id="assess: two services",
    ),
    pytest.param(
        "assess checkout --to 41",
        "`/rollback assess` takes a service name and optionally --region",
        id="assess: flag",
    ),
    pytest.param("plan checkout --to", "`--to` needs a value", id="plan --to without value"),
    pytest.param("plan checkout --at", "`--at` needs a value", id="plan --at without value"),
    pytest.param(
        "plan checkout --at --to 41", "`--at` needs a value", id="plan --at followed by a flag"
    ),
    pytest.param("run checkout --to", "`--to` needs a value", id="run --to without value"),
    pytest.param(
        "run checkout --to --immediate", "`--to` needs a value", id="run --to followed by a flag"
    ),
    pytest.param(
        "run checkout --to 1 --to 2", "`--to` is given twice", id="run --to twice (not: the last)"
    ),
    pytest.param(
        "plan checkout --at 10:00 x --at 11:00", "`--at` is given twice", id="plan --at twice"
    ),
    pytest.param(
        "run checkout --at 14:30",
        "`--at` is not an option of `/rollback run`",
        id="run --at not allowed",
    ),
    pytest.param(
        "plan checkout --immediate",
        "`--immediate` is not an option of `/rollback plan`",
        id="plan --immediate not allowed",
    ),
    pytest.param(
        "plan checkout --dry-run",
        "`--dry-run` is not an option of `/rollback plan`",
        id="plan --dry-run not allowed",
    ),
    pytest.param(
        "run checkout --yes",
        "`--yes` is not an option of `/rollback run`",
        id="run unknown flag",
    ),
    pytest.param(
        "run checkout --to=41",
        "`--to=41` is not an option of `/rollback run`",
        id="run --to=value form",
    ),
    pytest.param(
        "run checkout --to 'two words'",
        "`two words` is not a revision",
        id="run --to with a space",
    ),
    pytest.param("run checkout --to ../etc", "`../etc` is not a revision", id="run --to path-like"),
    pytest.param("approve", "`/rollback approve` needs a rollback id", id="approve: no id"),
    pytest.param("reject", "`/rollback reject` needs a rollback id", id="reject: no id"),
    pytest.param("abort", "`/rollback abort` needs a rollback id", id="abort: no id"),
    pytest.param("review", "`/rollback review` needs a rollback id", id="review: no id"),
    pytest.param("approve abc", "`abc` is not a rollback id", id="approve: word"),
    pytest.param("approve #", "`#` is not a rollback id", id="approve: # alone"),
    pytest.param("reject -1", "`-1` is not a rollback id", id="reject: negative"),
    pytest.param(
        "abort 1234567890123", "`1234567890123` is not a rollback id", id="abort: 13 digits"
    ),
    pytest.param(
        "approve 42 now", "`/rollback approve` takes only a rollback id", id="approve: extra"
    ),
    pytest.param(
        "review 42 please", "`/rollback review` takes only a rollback id", id="review: extra"
    ),
    pytest.param(
        "status 42 checkout", "`/rollback status` takes at most one argument", id="status: two"
    ),
    pytest.param(
        "history checkout payments",
        "`/rollback history` takes at most one argument",
        id="history: two",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param('run checkout "db is down', '"db is down', id="unclosed double quote"),
        pytest.param("reject 42 'not now", "'not now", id="unclosed single quote"),
        pytest.param("run checkout it's broken", "it's broken", id="apostrophe in a reason"),
    ],
)
def test_unbalanced_quotes_are_kept_as_typed(text: str, reason: str) -> None:
    # reasons are free text: an apostrophe must not make the command unreadable
    assert parse_command(text).reason == reason


def test_unbalanced_quote_in_a_revision_is_refused() -> None:
    with pytest.raises(UsageError, match="is not a revision"):
        parse_command('run checkout --to "41')


def test_usage_error_is_a_value_error() -> None:
    assert issubclass(UsageError, ValueError)


@pytest.mark.parametrize("verb", VERBS)
def test_usage_shows_every_verb(verb: str) -> None:
    assert f"/rollback {verb}" in USAGE


def test_verbs_are_those_of_the_contract() -> None:
    assert set(VERBS) == {
        "help",
        "assess",
        "plan",
        "run",
        "approve",
        "reject",
        "status",
        "abort",
        "history",
        "review",
        "guard",
        "drill",
    }


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        pytest.param("plan checkout --at 14:30", "--at", id="plan shows --at"),
        pytest.param("plan checkout --to 41", "--to", id="plan shows --to"),
        pytest.param("run checkout --immediate", "--immediate", id="run shows --immediate"),
        pytest.param("run checkout --dry-run", "--dry-run", id="run shows --dry-run"),
    ],
)
def test_usage_documents_every_accepted_flag(text: str, flag: str) -> None:
    verb = text.split()[0]
    (line,) = [ln for ln in USAGE.splitlines() if ln.startswith(f"/rollback {verb} ")]
    assert flag in line
    parse_command(text)  # and the parser accepts it


# --- --at windows in the service's time zone ------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NOW_UTC = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)  # 21:30 in Berlin (CET, UTC+1)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        pytest.param("22:00", UTC, datetime(2026, 11, 23, 22, 0, tzinfo=UTC), id="HH:MM UTC"),
        pytest.param("22:00", BERLIN, datetime(2026, 11, 23, 21, 0, tzinfo=UTC), id="Berlin"),
        pytest.param(
            "21:00", BERLIN, datetime(2026, 11, 24, 20, 0, tzinfo=UTC), id="passed: tomorrow"
        ),
        pytest.param(
            "21:30", BERLIN, datetime(2026, 11, 24, 20, 30, tzinfo=UTC), id="now: tomorrow"
        ),
        pytest.param(
            "2026-11-24T08:00", BERLIN, datetime(2026, 11, 24, 7, 0, tzinfo=UTC), id="naive ISO"
        ),
        pytest.param(
            "2026-11-24T08:00-05:00",
            BERLIN,
            datetime(2026, 11, 24, 13, 0, tzinfo=UTC),
            id="ISO with its own offset",
        ),
    ],
)
def test_window_times_are_read_in_the_service_time_zone(
    text: str, tz: ZoneInfo, expected: datetime
) -> None:
    at = parse_window(text, NOW_UTC, tz)
    assert at == expected and at.tzinfo == UTC


def test_a_window_across_a_daylight_saving_change_keeps_its_wall_time() -> None:
    before_dst_ends = datetime(2026, 10, 24, 21, 0, tzinfo=UTC)  # Berlin 23:00 CEST
    at = parse_window("02:30", before_dst_ends, BERLIN)  # 25 Oct, after clocks went back
    assert at.astimezone(BERLIN).strftime("%H:%M") == "02:30"
    assert local_time(at, BERLIN).startswith("2026-10-25 02:30")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("2026-11-23T21:00", "in the past (it is 2026-11-23 21:30 CET", id="past"),
        pytest.param("2026-12-24T10:00", "more than 7 days away", id="too far"),
        pytest.param("tonight", "use HH:MM (e.g. 22:00, Europe/Berlin)", id="not a time"),
    ],
)
def test_bad_windows_say_why_in_the_service_time_zone(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_window(text, NOW_UTC, BERLIN)


def test_window_times_are_shown_in_local_time_and_utc() -> None:
    at = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    assert local_time(at, BERLIN) == "2026-11-23 22:00 CET (21:00 UTC)"
    assert local_time(at) == "2026-11-23 21:00 UTC"
    summer = datetime(2026, 7, 1, 20, 0, tzinfo=UTC)
    assert local_time(summer, BERLIN) == "2026-07-01 22:00 CEST (20:00 UTC)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("guard checkout", Command("guard", service="checkout")),
        ("guard Checkout OFF", Command("guard", service="checkout", reason="off")),
        ("guard checkout on", Command("guard", service="checkout", reason="on")),
    ],
)
def test_guard_shows_or_switches(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("guard", "needs a service name"),
        ("guard checkout maybe", "`maybe` is not on or off"),
        ("guard checkout on now", "takes a service name and optionally on or off"),
    ],
)
def test_guard_refuses_what_it_cannot_do(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_command(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drill checkout", Command("drill", service="checkout")),
        ("drill Checkout --to 41", Command("drill", service="checkout", target_revision="41")),
        ("drill checkout --to v1.2", Command("drill", service="checkout", target_revision="v1.2")),
    ],
)
def test_drill_parses(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("drill", "`/rollback drill` needs a service name"),
        ("drill --to 3", "`/rollback drill` needs a service name"),
        ("drill checkout --to", "`--to` needs a value"),
        ("drill checkout --to 3 --to 4", "`--to` is given twice"),
        ("drill checkout now", "`now` is not an option of `/rollback drill`"),
        ("drill checkout --tu 3", "`--tu` is not an option of `/rollback drill`"),
    ],
)
def test_drill_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        parse_command(text)


@pytest.mark.parametrize(
    "text",
    [
        "assess checkout",
        "  run   checkout\t--immediate\r\nbad deploy ",
        "plan checkout # not a comment; (a|b) & $x",
        "abort 42 nbsp\u00a0stays\u2003one word",
        "reject 7 it's broken",  # quotes: shlex's own rules, or plain words when unpaired
        'plan checkout "two words" --to v41',
        "run checkout back\\ slash",
        "",
    ],
)
def test_words_are_shlex_words(text: str) -> None:
    """The quick path for text without quotes splits exactly as shlex does."""
    try:
        expected = shlex.split(text)
    except ValueError:
        expected = text.split()
    assert _tokens(text) == expected
