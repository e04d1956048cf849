"""The store's tables, as SQLAlchemy 2 typed declarative models.

The migration in ``migrations/versions`` creates exactly these tables; a test compares the two.
Everything a report needs to be rebuilt is kept: assets by identity, runs, the assets each run
scanned (with the locator it had in that run), findings (baselined ones flagged), the event
log with its head, and the gateway's API keys (only their hashes).

Text that takes part in the event chain's hash (``events.occurred_at`` and ``events.data``) is
stored as plain ``TEXT`` exactly as it was hashed, so no database renormalises it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from garrison.store.types import UTCDateTime

#: Constraint and index names, fixed so the hand-written migration and the models agree.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: A 64-bit key that is still SQLite's ``INTEGER PRIMARY KEY`` (the rowid) on SQLite.
BigKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every store table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AssetRow(Base):
    """An asset, once per identity (content digest where it has content, else ``kind:locator``)."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    identity: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    locator: Mapped[str] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class ScanRunRow(Base):
    """One stored scan: its identity, times, outcome and counts."""

    __tablename__ = "scan_runs"
    __table_args__ = (CheckConstraint("status IN ('complete', 'incomplete')", name="status"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    tool_version: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    count_info: Mapped[int] = mapped_column(Integer, default=0)
    count_low: Mapped[int] = mapped_column(Integer, default=0)
    count_medium: Mapped[int] = mapped_column(Integer, default=0)
    count_high: Mapped[int] = mapped_column(Integer, default=0)
    count_critical: Mapped[int] = mapped_column(Integer, default=0)
    baselined: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[str] = mapped_column(Text)
    skipped: Mapped[str] = mapped_column(Text)


class RunAssetRow(Base):
    """An asset a run scanned, in the run's order, with the kind and locator it had there."""

    __tablename__ = "run_assets"

    run_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("scan_runs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    locator: Mapped[str] = mapped_column(Text)


class FindingRow(Base):
    """One finding of one run. The asset's kind and locator are kept as they were in that run."""

    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 0 AND 4", name="severity"),
        CheckConstraint("confidence BETWEEN 0 AND 2", name="confidence"),
        Index("ix_findings_run_id_severity", "run_id", "severity"),
    )

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), ForeignKey("scan_runs.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assets.id"), index=True)
    asset_kind: Mapped[str] = mapped_column(String(32))
    asset_locator: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[str] = mapped_column(String(32), index=True)
    rule_name: Mapped[str] = mapped_column(String(128))
    rule_title: Mapped[str] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(SmallInteger)
    confidence: Mapped[int] = mapped_column(SmallInteger)
    message: Mapped[str] = mapped_column(Text)
    detector: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    location: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    baselined: Mapped[bool] = mapped_column(Boolean, default=False)


class EventRow(Base):
    """One record of the tamper-evident event log."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class EventHeadRow(Base):
    """The single row holding the log's last position and hash, updated with every append."""

    __tablename__ = "event_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ApiKeyRow(Base):
    """One gateway API key: never the key itself, only its SHA-256 and a non-secret prefix."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(64))
    roles: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_from: Mapped[str | None] = mapped_column(String(32))
