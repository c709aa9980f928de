"""The storage tests' ``db_url``: each rehearsal test that asks for it runs on SQLite and on
PostgreSQL (a fresh schema)."""

from __future__ import annotations

from tests.storage.conftest import db_url

__all__ = ["db_url"]
