"""What a person is told when something no listener caught goes wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.notify.reply import DATABASE_DOWN, internal_error_text
from handlers.errors import _what
from storage.errors import DatabaseNotMigrated, DatabaseUnavailable


def test_an_internal_error_names_its_kind_and_what_to_do_but_no_details() -> None:
    text = internal_error_text(KeyError("secret-token-abc"), "the button `approval_approve`")
    assert "internal error (KeyError)" in text
    assert "the button `approval_approve`" in text
    assert "`/rollback status`" in text
    assert "secret-token-abc" not in text  # the message of the exception stays in the log


def test_a_database_error_says_the_database_is_unreachable() -> None:
    error = DatabaseUnavailable("OperationalError: unable to open database file")
    assert internal_error_text(error) == DATABASE_DOWN


def test_a_database_without_tables_says_what_to_do_instead() -> None:
    error = DatabaseNotMigrated("sqlite:///bot.db", "rollbacks")
    text = internal_error_text(error)
    assert "the database at sqlite:///bot.db has no rollback-bot tables" in text
    assert "run `rollback-bot migrate`" in text and text != DATABASE_DOWN


def test_the_repository_turns_an_unreachable_database_into_the_bots_own_error() -> None:
    """Callers above storage catch ``DatabaseUnavailable``, never SQLAlchemy's errors."""
    from storage.db import make_engine
    from storage.repository import Repository

    # nothing listens on port 1: the connection is refused
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    try:
        with pytest.raises(DatabaseUnavailable):
            Repository(engine).record_delivery("k", datetime.now(UTC))
    finally:
        engine.dispose()


def test_what_was_being_handled() -> None:
    assert (
        _what({"command": "/rollback", "text": "run checkout --immediate bad release"})
        == "`/rollback run`"
    )
    click = {"type": "block_actions", "actions": [{"action_id": "approval_reject"}]}
    assert _what(click) == "the button `approval_reject`"
    assert _what({"type": "view_submission"}) == "the form"
    assert _what({}) == "this request"
