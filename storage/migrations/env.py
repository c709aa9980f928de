"""Alembic environment: target metadata is `SQLModel.metadata` from `storage.models` (and the
guard's tables from `storage.guard_models`).

`storage.db.migrate` passes an open connection in `config.attributes["connection"]`; the `alembic`
command line is supported with `-x url=...` (or `sqlalchemy.url`) for offline/online use.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.customer_models  # registers the customer updates' tables on SQLModel.metadata
import storage.drill_models
import storage.guard_models  # noqa: F401  (registers the guard's tables on SQLModel.metadata)
from storage.db import make_engine, normalize_url
from storage.models import UTCDateTime  # also registers the tables on SQLModel.metadata

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: use storage.db.migrate(engine) or `alembic -x url=...`")
    return normalize_url(url)


def _render_item(type_: str, obj: Any, _autogen: AutogenContext) -> str | Literal[False]:
    """Render `UTCDateTime` as its plain DDL type so migrations never import the models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # the whole upgrade in the one transaction storage.db.migrate holds: Alembic treats
        # SQLite's DDL as non-transactional and would commit after each migration, letting a
        # replica that waited on BEGIN IMMEDIATE run a migration this process is about to run
        transactional_ddl=True,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the connection handed in by `storage.db.migrate`, or a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as new_connection:
            _run_with(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
