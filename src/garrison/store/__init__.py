"""Persistence: scan runs, findings and the tamper-evident event log, in SQLite or PostgreSQL.

The only package that knows SQL. ``Store.open(url)`` creates and migrates the database;
everything else speaks the spine's types (``ScanReport``, ``Finding``, ``Event``).
"""

from garrison.store.queries import RunSummary
from garrison.store.store import Store

__all__ = ["RunSummary", "Store"]
