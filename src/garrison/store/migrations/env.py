"""Alembic environment for the store: online only, on a connection the store hands over.

The store passes its open connection in ``config.attributes["connection"]`` and owns the
transaction; running ``alembic`` from the command line against this folder is not supported.
"""

from __future__ import annotations

from alembic import context

from garrison.store.models import Base


def run_migrations() -> None:
    """Run the pending migrations on the connection the store passed in."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        raise RuntimeError(
            "garrison's migrations run through garrison.store.Store.open(url), which passes a connection"
        )
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
