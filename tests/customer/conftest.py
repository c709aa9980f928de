"""The storage fixtures (SQLite and PostgreSQL) for the customer update tests."""

from __future__ import annotations

from tests.storage.conftest import db_url, engine, migrated_engine, now, repo

__all__ = ["db_url", "engine", "migrated_engine", "now", "repo"]
