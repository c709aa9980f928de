"""The storage layer's own errors: what callers above it catch instead of SQLAlchemy's."""

from __future__ import annotations


class StorageError(Exception):
    """A database operation failed."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or refused the connection (down, restarting, out of
    connections, locked for longer than the wait): nothing was stored by this call. What to
    tell a person: try again in a minute; check DATABASE_URL and /healthz."""


class DatabaseNotMigrated(StorageError):
    """The database answers but lacks the bot's tables (never migrated, or migrated by an older
    release): nothing was stored. Its text says which database and what to do."""

    def __init__(self, where: str, table: str) -> None:
        super().__init__(
            f"the database at {where} has no rollback-bot tables (no table `{table}`):"
            " run `rollback-bot migrate`"
        )


class DatabaseBehind(DatabaseNotMigrated):
    """The database has the bot's tables, but from an older release: migrations of this code
    have not run on it yet."""

    def __init__(self, where: str, at: str | None, head: str) -> None:
        StorageError.__init__(
            self,
            f"the database at {where} is at migration {at or '(none)'}, this release needs"
            f" {head}: run `rollback-bot migrate`",
        )
