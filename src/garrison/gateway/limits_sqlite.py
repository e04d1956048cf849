"""Limit counters in a SQLite file, shared by the worker processes of one host.

Each reserve and each settle is one short ``BEGIN IMMEDIATE`` transaction (WAL journal,
``synchronous=NORMAL``, a busy timeout), which SQLite serializes across processes; the arithmetic is
the one in :mod:`garrison.gateway.limits`. This module talks to SQLite through the standard ``sqlite3``
module rather than through :mod:`garrison.store`: a limits backend is a counter service, not
persistence, and one prepared statement per counter is what keeps it at tens of microseconds. It is
the one place outside the store that writes SQL.

Calls run on the event loop's thread: a transaction takes microseconds, and waiting for another
worker's lock is bounded by ``busy_timeout_ms``. The file holds nothing worth keeping; deleting it
while the gateway is stopped resets every counter. Use a local disk (SQLite locking on network file
systems is unreliable).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from garrison.gateway.limits import (
    BUDGETS,
    Charge,
    LimitExceeded,
    LimitKind,
    LimitsBackendError,
    Quota,
    Reservation,
    budget,
    gcra,
    needs_settle,
    new_reservation_id,
    refund,
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gcra (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS budget (key TEXT PRIMARY KEY, start REAL NOT NULL, used REAL NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS lease (key TEXT NOT NULL, rid TEXT NOT NULL, expires REAL NOT NULL,"
    " PRIMARY KEY (key, rid)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS lease_expiry ON lease (key, expires)",
    "CREATE TABLE IF NOT EXISTS pending (rid TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID",
)


class SQLiteBackend:
    """See :class:`garrison.gateway.limits.LimitBackend`. Opens the file on first use and after errors."""

    _SWEEP_EVERY = 4096

    def __init__(
        self,
        path: str | Path,
        *,
        lease_s: float = 300.0,
        busy_timeout_ms: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._lease_s = lease_s
        self._busy_ms = busy_timeout_ms
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._ops = 0

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_ms / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, retrying while another process holds it: SQLite answers "database is
        locked" at once here, without waiting for the busy timeout, when several workers open a new
        file together."""
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def _fail(self, exc: BaseException, what: str) -> LimitsBackendError:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        return LimitsBackendError(
            f"limits backend SQLite file {self.path} failed during {what}: {exc}",
            hint="check that the file's directory exists and is writable by the gateway",
        )

    async def reserve(self, charges: Sequence[Charge]) -> Reservation:
        """See :meth:`garrison.gateway.limits.LimitBackend.reserve`."""
        try:
            conn = self._conn or self._connect()
            self._conn = conn
            return self._reserve(conn, charges)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "reserve") from exc

    def _reserve(self, conn: sqlite3.Connection, charges: Sequence[Charge]) -> Reservation:
        rid = new_reservation_id()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()
            expires = now + self._lease_s
            windows: list[float] = []
            quotas: list[Quota] = []
            writes: list[tuple[str, tuple[object, ...]]] = []
            for charge in charges:
                if charge.kind is LimitKind.RATE:
                    row = conn.execute("SELECT tat FROM gcra WHERE key = ?", (charge.key,)).fetchone()
                    ok, tat, remaining, reset, retry = gcra(row[0] if row else 0.0, now, charge)
                    windows.append(0.0)
                    writes.append(("INSERT OR REPLACE INTO gcra (key, tat) VALUES (?, ?)", (charge.key, tat)))
                elif charge.kind is LimitKind.CONCURRENCY:
                    conn.execute("DELETE FROM lease WHERE key = ? AND expires <= ?", (charge.key, now))
                    held = conn.execute("SELECT count(*) FROM lease WHERE key = ?", (charge.key,)).fetchone()[
                        0
                    ]
                    ok = held + charge.amount <= charge.limit
                    remaining = max(0.0, charge.limit - held - (charge.amount if ok else 0))
                    reset, retry = 0.0, 1.0
                    windows.append(0.0)
                    writes.append(
                        ("INSERT INTO lease (key, rid, expires) VALUES (?, ?, ?)", (charge.key, rid, expires))
                    )
                else:
                    row = conn.execute(
                        "SELECT start, used FROM budget WHERE key = ?", (charge.key,)
                    ).fetchone()
                    start, used = (row[0], row[1]) if row else (0.0, 0.0)
                    ok, start, used, remaining, reset, retry = budget(start, used, now, charge)
                    windows.append(start)
                    writes.append(
                        (
                            "INSERT OR REPLACE INTO budget (key, start, used) VALUES (?, ?, ?)",
                            (charge.key, start, used),
                        )
                    )
                if not ok:
                    conn.execute("COMMIT")  # keeps the expired leases it removed; changes nothing else
                    raise LimitExceeded(charge, remaining=remaining, reset_s=reset, retry_after_s=retry)
                quotas.append(Quota(remaining=remaining, reset_s=reset))
            for sql, params in writes:
                conn.execute(sql, params)
            if needs_settle(charges):
                conn.execute("INSERT INTO pending (rid, expires) VALUES (?, ?)", (rid, expires))
            self._ops += 1
            if self._ops % self._SWEEP_EVERY == 0:
                conn.execute("DELETE FROM pending WHERE expires <= ?", (now,))
                conn.execute("DELETE FROM gcra WHERE tat <= ?", (now,))
            conn.execute("COMMIT")
        except LimitExceeded:
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return Reservation(id=rid, charges=tuple(charges), windows=tuple(windows), quotas=tuple(quotas))

    async def settle(self, reservation: Reservation, actual: Mapping[str, float] | None = None) -> None:
        """See :meth:`garrison.gateway.limits.LimitBackend.settle`."""
        if not needs_settle(reservation.charges):
            return
        try:
            conn = self._conn or self._connect()
            self._conn = conn
            self._settle(conn, reservation, actual)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "settle") from exc

    def _settle(
        self, conn: sqlite3.Connection, reservation: Reservation, actual: Mapping[str, float] | None
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()
            gone = conn.execute("DELETE FROM pending WHERE rid = ? AND expires > ?", (reservation.id, now))
            if gone.rowcount:
                for charge, start in zip(reservation.charges, reservation.windows, strict=True):
                    if charge.kind is LimitKind.CONCURRENCY:
                        conn.execute(
                            "DELETE FROM lease WHERE key = ? AND rid = ?", (charge.key, reservation.id)
                        )
                    elif charge.kind in BUDGETS and (back := refund(charge.amount, actual, charge.key)):
                        conn.execute(
                            "UPDATE budget SET used = max(0.0, used - ?) WHERE key = ? AND start = ?",
                            (back, charge.key, start),
                        )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
