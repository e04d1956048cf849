"""Queries and statements the store is built from, and the run summary it returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, case, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from garrison.core.assets import Asset
from garrison.core.severity import Severity
from garrison.store.models import AssetRow, Base, FindingRow, RunAssetRow, ScanRunRow
from garrison.store.rows import COUNT_COLUMNS, asset_row

ASSETS = Base.metadata.tables[AssetRow.__tablename__]
RUNS = Base.metadata.tables[ScanRunRow.__tablename__]
RUN_ASSETS = Base.metadata.tables[RunAssetRow.__tablename__]
FINDINGS = Base.metadata.tables[FindingRow.__tablename__]

#: Rows per ``IN (...)`` list, well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One stored scan run, without its findings."""

    run_id: str
    """The run's id (``ScanReport.run_id``)."""
    target: str
    """What was scanned, as the user named it."""
    started_at: datetime
    """When the scan started (aware, UTC)."""
    finished_at: datetime
    """When it finished (aware, UTC)."""
    status: str
    """``complete`` when every asset could be scanned, else ``incomplete``."""
    counts: dict[Severity, int]
    """Findings per severity, every severity present, highest first (baselined ones left out)."""
    findings_total: int
    """Number of findings (baselined ones left out)."""
    baselined: int = 0
    """Number of findings the baseline suppressed."""
    tool_version: str = ""
    """Version of Garrison that ran the scan."""


def upsert_assets(
    connection: Connection, assets: Iterable[Asset], *, first_seen: datetime, last_seen: datetime
) -> dict[str, int]:
    """Insert or refresh ``assets`` by identity; return each identity's row id."""
    latest: dict[str, Asset] = {}
    for asset in assets:
        latest[asset.identity] = asset
    if not latest:
        return {}
    rows = [asset_row(a, seen_at=last_seen) | {"first_seen": first_seen} for a in latest.values()]
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ASSETS)
    new = statement.excluded
    newer = new.last_seen >= ASSETS.c.last_seen
    statement = statement.on_conflict_do_update(
        index_elements=[ASSETS.c.identity],
        set_={
            **{name: case((newer, new[name]), else_=ASSETS.c[name]) for name in _LATEST_FIELDS},
            "first_seen": case(
                (new.first_seen < ASSETS.c.first_seen, new.first_seen), else_=ASSETS.c.first_seen
            ),
        },
    )
    connection.execute(statement, rows)
    ids: dict[str, int] = {}
    identities = list(latest)
    for start in range(0, len(identities), _CHUNK):
        chunk = identities[start : start + _CHUNK]
        for asset_id, identity in connection.execute(
            select(ASSETS.c.id, ASSETS.c.identity).where(ASSETS.c.identity.in_(chunk))
        ):
            ids[identity] = asset_id
    return ids


#: Asset fields that follow the most recent sighting on an upsert.
_LATEST_FIELDS = ("kind", "locator", "digest", "size", "format", "last_seen")


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with one ``executemany`` (pipelined by psycopg, a C loop in ``sqlite3``)."""
    if rows:
        connection.execute(insert(table), rows)


def newest_first(query: Select[Any]) -> Select[Any]:
    """``query`` ordered newest run first."""
    return query.order_by(RUNS.c.started_at.desc(), RUNS.c.finished_at.desc(), RUNS.c.id.desc())


def finding_query() -> Select[Any]:
    """Findings joined with their asset's digest, size and format."""
    return select(FINDINGS, ASSETS.c.digest, ASSETS.c.size, ASSETS.c.format).join(
        ASSETS, ASSETS.c.id == FINDINGS.c.asset_id
    )


def glob_clause(connection: Connection, pattern: str) -> Any:
    """SQL matching a glob with ``*`` and ``?`` only, case-sensitively, on either database."""
    column = FINDINGS.c.asset_locator
    if connection.dialect.name == "sqlite":
        return column.op("GLOB")(pattern)  # case-sensitive; '*' and '?' mean what they mean in fnmatch
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")


def run_summary(row: Any) -> RunSummary:
    """A :class:`RunSummary` from a ``scan_runs`` row."""
    counts = {s: int(row[COUNT_COLUMNS[s]]) for s in sorted(Severity, reverse=True)}
    return RunSummary(
        run_id=row["id"],
        target=row["target"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        counts=counts,
        findings_total=sum(counts.values()),
        baselined=int(row["baselined"]),
        tool_version=row["tool_version"],
    )
