"""Initial schema: assets, scan runs, the assets of each run, findings, the event log and its head.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_GENESIS_HASH = "0" * 64


def upgrade() -> None:
    """Create every table and seed the event log's head (position 0, the genesis hash)."""
    op.create_table(
        "assets",
        sa.Column("id", _BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("locator", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("format", sa.String(length=64), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.UniqueConstraint("identity", name="uq_assets_identity"),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("tool_version", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count_info", sa.Integer(), nullable=False),
        sa.Column("count_low", sa.Integer(), nullable=False),
        sa.Column("count_medium", sa.Integer(), nullable=False),
        sa.Column("count_high", sa.Integer(), nullable=False),
        sa.Column("count_critical", sa.Integer(), nullable=False),
        sa.Column("baselined", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("skipped", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('complete', 'incomplete')", name="ck_scan_runs_status"),
        sa.PrimaryKeyConstraint("id", name="pk_scan_runs"),
    )
    op.create_index("ix_scan_runs_started_at", "scan_runs", ["started_at"])
    op.create_table(
        "run_assets",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("locator", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name="fk_run_assets_asset_id_assets"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scan_runs.id"], name="fk_run_assets_run_id_scan_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_run_assets"),
    )
    op.create_index("ix_run_assets_asset_id", "run_assets", ["asset_id"])
    op.create_table(
        "findings",
        sa.Column("id", _BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_kind", sa.String(length=32), nullable=False),
        sa.Column("asset_locator", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("rule_name", sa.String(length=128), nullable=False),
        sa.Column("rule_title", sa.Text(), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("confidence", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detector", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("baselined", sa.Boolean(), nullable=False),
        sa.CheckConstraint("severity BETWEEN 0 AND 4", name="ck_findings_severity"),
        sa.CheckConstraint("confidence BETWEEN 0 AND 2", name="ck_findings_confidence"),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name="fk_findings_asset_id_assets"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scan_runs.id"], name="fk_findings_run_id_scan_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    op.create_index("ix_findings_run_id_severity", "findings", ["run_id", "severity"])
    op.create_index("ix_findings_asset_id", "findings", ["asset_id"])
    op.create_index("ix_findings_rule_id", "findings", ["rule_id"])
    op.create_index("ix_findings_fingerprint", "findings", ["fingerprint"])
    op.create_table(
        "events",
        sa.Column("seq", _BIG_KEY, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_type", "events", ["type"])
    event_head = op.create_table(
        "event_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_event_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_event_head"),
    )
    op.bulk_insert(event_head, [{"id": 1, "seq": 0, "hash": _GENESIS_HASH}])


def downgrade() -> None:
    """Drop every table (the data goes with them)."""
    op.drop_table("event_head")
    op.drop_index("ix_events_type", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_findings_fingerprint", table_name="findings")
    op.drop_index("ix_findings_rule_id", table_name="findings")
    op.drop_index("ix_findings_asset_id", table_name="findings")
    op.drop_index("ix_findings_run_id_severity", table_name="findings")
    op.drop_table("findings")
    op.drop_index("ix_run_assets_asset_id", table_name="run_assets")
    op.drop_table("run_assets")
    op.drop_index("ix_scan_runs_started_at", table_name="scan_runs")
    op.drop_table("scan_runs")
    op.drop_table("assets")
