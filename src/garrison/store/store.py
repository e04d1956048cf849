"""The findings store: scan runs, their findings, and the tamper-evident event log."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from garrison.core.errors import GarrisonError, StorageError, UsageError
from garrison.core.eventlog import ChainVerdict, LogRecord, verify_chain
from garrison.core.events import Event, utc_now
from garrison.core.findings import Finding
from garrison.core.registry import Registry
from garrison.core.results import ScanReport
from garrison.core.severity import Severity
from garrison.store import chain
from garrison.store.connection import create_store_engine, mask_url, migrate, writing
from garrison.store.models import ApiKeyRow, Base
from garrison.store.queries import (
    ASSETS,
    FINDINGS,
    RUN_ASSETS,
    RUNS,
    RunSummary,
    finding_query,
    glob_clause,
    insert_many,
    newest_first,
    run_summary,
    upsert_assets,
)
from garrison.store.rows import (
    COUNT_COLUMNS,
    RuleResolver,
    StoredApiKey,
    api_key_row,
    errors_json,
    finding_row,
    rebuild_api_key,
    rebuild_asset,
    rebuild_errors,
    rebuild_finding,
    rebuild_skipped,
    skipped_json,
)

API_KEYS = Base.metadata.tables[ApiKeyRow.__tablename__]

#: Records read per query while verifying the event log.
_VERIFY_PAGE = 5_000


class Store:
    """Scan runs, findings and the event log in one SQLite file or a PostgreSQL database.

    Open it with :meth:`Store.open`; use it as a context manager or call :meth:`close`. Every
    method is one transaction; any database failure is raised as ``StorageError``.
    """

    def __init__(self, engine: Engine, *, shown_url: str) -> None:
        """Wrap an engine whose schema is already at head. Use :meth:`open` instead."""
        self._engine = engine
        self._shown_url = shown_url

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating and migrating if needed) the store at ``url``.

        ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/garrison.db`` (parent folders are
        created) or ``postgresql+psycopg://user:password@host/db``. Raises ``StorageError``
        naming the URL, with any password masked, when the store cannot be opened.
        """
        shown = mask_url(url)
        engine = create_store_engine(url)
        if engine.dialect.name not in ("sqlite", "postgresql"):
            engine.dispose()
            raise StorageError(
                f"cannot open the store at {shown}: {engine.dialect.name} is not supported",
                hint="use a sqlite:/// path or a postgresql+psycopg:// URL",
            )
        try:
            migrate(engine, shown)
        except GarrisonError:
            engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise StorageError(
                f"cannot open the store at {shown}: {_reason(exc)}",
                hint="check that the database exists, is reachable and that you may write to it",
            ) from None
        except Exception as exc:  # Alembic raises its own error types; say what failed all the same
            engine.dispose()
            raise StorageError(f"cannot migrate the store at {shown}: {_reason(exc)}") from exc
        return cls(engine, shown_url=shown)

    @property
    def url(self) -> str:
        """The store's URL with any password masked."""
        return self._shown_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools and tests that need raw access)."""
        return self._engine

    def close(self) -> None:
        """Release every connection. The store cannot be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- runs and findings ---------------------------------------------------------------------

    def save_report(self, report: ScanReport) -> None:
        """Store a whole scan in one transaction and record a ``scan.completed`` event.

        Assets are upserted by identity, then the run, the assets it scanned, its findings
        (baselined ones flagged) and the event are written. On any failure nothing is kept.
        """
        counts = report.severity_counts()
        completed = Event(
            type="scan.completed",
            actor="garrison",
            subject=report.run_id,
            data={
                "target": report.target,
                "counts": {s.label: n for s, n in counts.items()},
                "complete": report.complete,
            },
            occurred_at=report.finished_at,
        )
        with self._writing(f"save scan run {report.run_id}") as connection:
            every_asset = [*report.assets, *(f.asset for f in (*report.findings, *report.baselined))]
            asset_ids = upsert_assets(
                connection, every_asset, first_seen=report.started_at, last_seen=report.finished_at
            )
            connection.execute(
                insert(RUNS),
                {
                    "id": report.run_id,
                    "target": report.target,
                    "tool_version": report.tool_version,
                    "schema_version": report.schema_version,
                    "started_at": report.started_at,
                    "finished_at": report.finished_at,
                    "status": "complete" if report.complete else "incomplete",
                    **{COUNT_COLUMNS[s]: n for s, n in counts.items()},
                    "baselined": len(report.baselined),
                    "errors": errors_json(report.errors),
                    "skipped": skipped_json(report.skipped),
                },
            )
            if report.assets:
                connection.execute(
                    insert(RUN_ASSETS),
                    [
                        {
                            "run_id": report.run_id,
                            "position": i,
                            "asset_id": asset_ids[a.identity],
                            "kind": a.kind.value,
                            "locator": a.locator,
                        }
                        for i, a in enumerate(report.assets)
                    ],
                )
            rows = [
                finding_row(f, run_id=report.run_id, asset_id=asset_ids[f.asset.identity], baselined=False)
                for f in report.findings
            ]
            rows += [
                finding_row(f, run_id=report.run_id, asset_id=asset_ids[f.asset.identity], baselined=True)
                for f in report.baselined
            ]
            insert_many(connection, FINDINGS, rows)
            chain.append(connection, [completed])

    def add_findings(self, run_id: str, findings: Sequence[Finding]) -> int:
        """Add ``findings`` to the stored run ``run_id`` in one batch; return the rows written."""
        if not findings:
            return 0
        now = utc_now()
        with self._writing(f"add findings to scan run {run_id}") as connection:
            self._require_run(connection, run_id)
            asset_ids = upsert_assets(connection, (f.asset for f in findings), first_seen=now, last_seen=now)
            rows = [
                finding_row(f, run_id=run_id, asset_id=asset_ids[f.asset.identity], baselined=False)
                for f in findings
            ]
            insert_many(connection, FINDINGS, rows)
            added = dict.fromkeys(Severity, 0)
            for finding in findings:
                added[finding.severity] += 1
            connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(
                    {RUNS.c[COUNT_COLUMNS[s]]: RUNS.c[COUNT_COLUMNS[s]] + n for s, n in added.items() if n}
                )
            )
        return len(rows)

    def list_runs(self, limit: int = 20) -> list[RunSummary]:
        """The ``limit`` most recent runs, newest first."""
        with self._reading("list scan runs") as connection:
            rows = connection.execute(newest_first(select(RUNS)).limit(limit)).mappings().all()
        return [run_summary(row) for row in rows]

    def load_report(self, run_id: str, registry: Registry) -> ScanReport:
        """Rebuild the :class:`ScanReport` of a stored run.

        ``run_id`` is a full id, ``"latest"`` for the newest run, or a prefix naming one run.

        Rules come from ``registry``; a rule it no longer knows is replaced by a stand-in built
        from the stored id, name, title and severity. Raises ``UsageError`` for an unknown run.
        """
        rules = RuleResolver(registry)
        with self._reading(f"load scan run {run_id}") as connection:
            resolved = self._resolve_run(connection, run_id)
            run = connection.execute(select(RUNS).where(RUNS.c.id == resolved)).mappings().one()
            asset_rows = connection.execute(
                select(
                    RUN_ASSETS.c.kind,
                    RUN_ASSETS.c.locator,
                    ASSETS.c.digest,
                    ASSETS.c.size,
                    ASSETS.c.format,
                )
                .join(ASSETS, ASSETS.c.id == RUN_ASSETS.c.asset_id)
                .where(RUN_ASSETS.c.run_id == resolved)
                .order_by(RUN_ASSETS.c.position)
            ).all()
            finding_rows = connection.execute(
                finding_query().where(FINDINGS.c.run_id == resolved).order_by(FINDINGS.c.id)
            ).mappings()
            findings: list[Finding] = []
            baselined: list[Finding] = []
            for row in finding_rows:
                (baselined if row["baselined"] else findings).append(rebuild_finding(row, rules=rules))
        try:
            errors, skipped = rebuild_errors(run["errors"]), rebuild_skipped(run["skipped"])
            assets = tuple(
                rebuild_asset(kind=r.kind, locator=r.locator, digest=r.digest, size=r.size, fmt=r.format)
                for r in asset_rows
            )
        except (ValueError, TypeError) as exc:
            raise StorageError(f"stored scan run {resolved} cannot be read back: {exc}") from None
        return ScanReport(
            run_id=run["id"],
            target=run["target"],
            tool_version=run["tool_version"],
            started_at=run["started_at"],
            finished_at=run["finished_at"],
            assets=assets,
            findings=tuple(findings),
            errors=errors,
            skipped=skipped,
            baselined=tuple(baselined),
            schema_version=run["schema_version"],
        )

    def query_findings(
        self,
        *,
        registry: Registry,
        run_id: str = "latest",
        min_severity: Severity | None = None,
        rule_ids: Collection[str] | None = None,
        asset_glob: str | None = None,
        limit: int | None = None,
    ) -> list[Finding]:
        """Findings of one run (not the baselined ones), most severe first, then in report order.

        ``run_id`` is resolved as in :meth:`load_report` (full id, ``"latest"`` or a unique prefix).

        ``rule_ids`` are exact ids; ``asset_glob`` is matched against the whole asset locator
        with :func:`fnmatch.fnmatchcase` semantics (``*`` also matches ``/``). Filtering happens in
        SQL; only a glob with a ``[...]`` class is finished in Python.
        """
        rules = RuleResolver(registry)
        with self._reading(f"query findings of scan run {run_id}") as connection:
            resolved = self._resolve_run(connection, run_id)
            query = finding_query().where(FINDINGS.c.run_id == resolved, FINDINGS.c.baselined.is_(False))
            if min_severity is not None:
                query = query.where(FINDINGS.c.severity >= int(min_severity))
            if rule_ids is not None:
                query = query.where(FINDINGS.c.rule_id.in_(sorted(set(rule_ids))))
            in_python = asset_glob is not None and "[" in asset_glob
            if asset_glob is not None and not in_python:
                query = query.where(glob_clause(connection, asset_glob))
            query = query.order_by(FINDINGS.c.severity.desc(), FINDINGS.c.id)
            if limit is not None and not in_python:
                query = query.limit(limit)
            result: list[Finding] = []
            for row in connection.execute(query).mappings():
                if in_python and not fnmatch.fnmatchcase(row["asset_locator"], asset_glob or ""):
                    continue
                result.append(rebuild_finding(row, rules=rules))
                if limit is not None and len(result) >= limit:
                    break
        return result

    # -- events --------------------------------------------------------------------------------

    def append_events(self, events: Sequence[Event]) -> list[LogRecord]:
        """Chain ``events`` after the log's head and store them in one transaction.

        Safe with concurrent writers, in this process or others: appends are serialised on the
        head (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
        """
        with self._writing("append events") as connection:
            return chain.append(connection, events)

    def append_new_events(self, events: Sequence[Event]) -> list[LogRecord]:
        """Like :meth:`append_events`, leaving out events whose id the log already holds.

        For replaying a journal after a crash: a batch stored just before the crash is not stored
        twice. The ids are checked inside the write transaction (on SQLite under its write lock).
        """
        from garrison.store.models import Base as _Base
        from garrison.store.models import EventRow

        table = _Base.metadata.tables[EventRow.__tablename__]
        with self._writing("append events") as connection:
            known: set[str] = set()
            ids = [e.id for e in events]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(table.c.event_id).where(table.c.event_id.in_(chunk))
                known.update(connection.execute(query).scalars())
            return chain.append(connection, [e for e in events if e.id not in known])

    def event_records(self, limit: int | None = None, after_seq: int | None = None) -> list[LogRecord]:
        """Stored log records in ``seq`` order, after ``after_seq`` if given, at most ``limit``."""
        with self._reading("read events") as connection:
            return chain.read_records(connection, after_seq=after_seq, limit=limit)

    def verify_events(self) -> ChainVerdict:
        """Check the whole event log against its chain and head, from one consistent snapshot."""
        with self._reading("verify the event log", snapshot=True) as connection:
            head = chain.read_head(connection)
            records: list[LogRecord] = []
            while True:
                after = records[-1].seq if records else None
                page = chain.read_records(connection, after_seq=after, limit=_VERIFY_PAGE)
                records.extend(page)
                if len(page) < _VERIFY_PAGE:
                    break
        return verify_chain(records, head)

    # -- gateway API keys ----------------------------------------------------------------------

    def add_api_key(self, key: StoredApiKey, events: Sequence[Event] = ()) -> None:
        """Store a new API key and append ``events`` (its audit trail) in one transaction."""
        with self._writing(f"add API key {key.id}") as connection:
            connection.execute(insert(API_KEYS), api_key_row(key))
            if events:
                chain.append(connection, events)

    def revoke_api_key(self, key_id: str, *, at: datetime, events: Sequence[Event] = ()) -> StoredApiKey:
        """Revoke ``key_id`` from ``at`` (earlier revocations stand) and append ``events``, atomically.

        Returns the key as stored afterwards. Raises ``UsageError`` for an unknown id.
        """
        with self._writing(f"revoke API key {key_id}") as connection:
            current = self._require_api_key(connection, key_id)
            if current.revoked_at is None or current.revoked_at > at:
                connection.execute(update(API_KEYS).where(API_KEYS.c.id == key_id).values(revoked_at=at))
            if events:
                chain.append(connection, events)
            return self._require_api_key(connection, key_id)

    def rotate_api_key(
        self, old_id: str, successor: StoredApiKey, *, revoke_at: datetime, events: Sequence[Event] = ()
    ) -> None:
        """Store ``successor``, revoke ``old_id`` from ``revoke_at`` and append ``events``, atomically."""
        with self._writing(f"rotate API key {old_id}") as connection:
            current = self._require_api_key(connection, old_id)
            connection.execute(insert(API_KEYS), api_key_row(successor))
            if current.revoked_at is None or current.revoked_at > revoke_at:
                connection.execute(
                    update(API_KEYS).where(API_KEYS.c.id == old_id).values(revoked_at=revoke_at)
                )
            if events:
                chain.append(connection, events)

    def api_keys(self) -> list[StoredApiKey]:
        """Every stored API key (revoked and expired ones included), oldest first."""
        with self._reading("list API keys") as connection:
            rows = connection.execute(select(API_KEYS).order_by(API_KEYS.c.created_at, API_KEYS.c.id))
            return [rebuild_api_key(row) for row in rows.mappings()]

    def api_key(self, key_id: str) -> StoredApiKey | None:
        """The stored API key with this id, or ``None``."""
        with self._reading(f"read API key {key_id}") as connection:
            row = connection.execute(select(API_KEYS).where(API_KEYS.c.id == key_id)).mappings().first()
            return None if row is None else rebuild_api_key(row)

    def api_key_by_hash(self, key_hash: str) -> StoredApiKey | None:
        """The stored API key whose SHA-256 is ``key_hash``, or ``None``."""
        with self._reading("look up an API key") as connection:
            row = connection.execute(select(API_KEYS).where(API_KEYS.c.hash == key_hash)).mappings().first()
            return None if row is None else rebuild_api_key(row)

    # -- helpers -------------------------------------------------------------------------------

    @contextmanager
    def _writing(self, action: str) -> Iterator[Connection]:
        with self._guard(action), writing(self._engine) as connection:
            yield connection

    @contextmanager
    def _reading(self, action: str, *, snapshot: bool = False) -> Iterator[Connection]:
        with self._guard(action), self._engine.connect() as connection:
            if snapshot and connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise StorageError(
                f"could not {action} in the store at {self._shown_url}: a stored record conflicts "
                f"({_reason(exc)})",
                hint="a scan run with this id may already be stored",
            ) from None
        except SQLAlchemyError as exc:
            raise StorageError(
                f"could not {action} in the store at {self._shown_url}: {_reason(exc)}"
            ) from None

    def _resolve_run(self, connection: Connection, run_id: str) -> str:
        """The full id of ``latest``, of an exact id, or of the one run an id prefix names."""
        if run_id == "latest":
            found = connection.execute(newest_first(select(RUNS.c.id)).limit(1)).scalar_one_or_none()
            if found is None:
                raise UsageError(
                    f"no scan run is stored in {self._shown_url} yet",
                    hint="run 'garrison scan PATH --save' first",
                )
            return str(found)
        exact = connection.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).scalar_one_or_none()
        if exact is not None:
            return str(exact)
        matches = (
            connection.execute(
                select(RUNS.c.id)
                .where(func.substr(RUNS.c.id, 1, len(run_id)) == run_id)
                .order_by(RUNS.c.id)
                .limit(3)
            )
            .scalars()
            .all()
            if run_id
            else []
        )
        if len(matches) == 1:
            return str(matches[0])
        if matches:
            raise UsageError(
                f"scan run id {run_id!r} is ambiguous: it starts "
                + ", ".join(repr(m) for m in matches[:2])
                + (" and more" if len(matches) > 2 else ""),
                hint="give more characters of the id; garrison runs lists them",
            )
        raise UsageError(f"no scan run {run_id!r} in the store", hint="garrison runs lists them")

    def _require_api_key(self, connection: Connection, key_id: str) -> StoredApiKey:
        row = connection.execute(select(API_KEYS).where(API_KEYS.c.id == key_id)).mappings().first()
        if row is None:
            raise UsageError(f"no API key {key_id!r} in the store", hint="garrison keys list shows them")
        return rebuild_api_key(row)

    def _require_run(self, connection: Connection, run_id: str) -> None:
        if connection.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).scalar_one_or_none() is None:
            raise UsageError(f"no scan run {run_id!r} in the store", hint="garrison runs lists them")


def _reason(exc: BaseException) -> str:
    """The database's own words for a failure, without the SQL statement or its parameters."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
