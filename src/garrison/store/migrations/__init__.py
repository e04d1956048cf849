"""Alembic migrations of the store. Run through :meth:`garrison.store.Store.open`, not by hand."""
