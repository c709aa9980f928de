"""``/rollback drill <service> [--rehearse] [--to N] [reason]`` parses; other flags are refused."""

from __future__ import annotations

import pytest

from bot.rollback.command import Command, UsageError, parse_command


def test_rehearse_with_a_target_and_a_reason() -> None:
    assert parse_command("drill Checkout --rehearse --to 41 weekly test") == Command(
        "drill", service="checkout", target_revision="41", reason="weekly test", rehearse=True
    )


def test_a_plain_drill_is_not_a_rehearsal() -> None:
    assert parse_command("drill checkout") == Command("drill", service="checkout")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("drill", "`/rollback drill` needs a service name"),
        ("drill --rehearse", "`/rollback drill` needs a service name"),
        ("drill checkout --immediate", "`--immediate` is not an option of `/rollback drill`"),
        ("drill checkout --to", "`--to` needs a value"),
        ("drill checkout --rehearse --to 'a b'", "is not a revision"),
    ],
)
def test_malformed_drills_say_what_was_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem.replace("(", r"\(")):
        parse_command(text)


def test_a_misspelt_flag_gets_the_one_meant() -> None:
    with pytest.raises(UsageError) as caught:
        parse_command("drill checkout --rehears")
    assert caught.value.suggestion == "--rehearse"


def test_rehearse_belongs_to_drill_only() -> None:
    with pytest.raises(UsageError, match="`--rehearse` is not an option of `/rollback run`"):
        parse_command("run checkout --rehearse")
