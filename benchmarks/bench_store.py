"""Findings written to the store per second, in batches, beside a raw-driver floor in the same run.

Garrison's store goes through SQLAlchemy Core with its own schema (assets, runs, findings with
JSON location and evidence). The floor is the same rows written with the bare DB-API driver
(``sqlite3.executemany``; psycopg ``executemany`` for PostgreSQL) into a table of the same shape:
what no ORM-level layer can beat. The ratio says what Garrison's layer costs.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_store.py [--findings N]``.
PostgreSQL is measured too when ``GARRISON_BENCH_PG_URL`` is set (``.ci/postgres.sh`` starts one).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from common import summary, write_results
from garrison.core.assets import Asset, AssetKind
from garrison.core.evidence import Observation, OpcodeRef
from garrison.core.findings import Finding, Location
from garrison.core.results import ScanReport
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.store import Store

RULE = Rule(
    id="GAR-BEN-001",
    name="benchmark-rule-hit",
    title="Benchmark finding",
    severity=Severity.HIGH,
    description="Synthetic finding for the store benchmark.",
    remediation="None needed.",
    cwe=("CWE-502",),
)


def make_findings(n: int) -> list[Finding]:
    assets = [
        Asset(
            kind=AssetKind.FILE,
            locator=f"models/m{i}.pt",
            digest=f"sha256:{i:064x}",
            size=1000 + i,
            format="pytorch-zip",
        )
        for i in range(50)
    ]
    return [
        Finding.create(
            rule=RULE,
            asset=assets[i % 50],
            detector="bench",
            message=f"global os.system number {i}",
            location=Location(member="archive/data.pkl", offset=i * 17),
            evidence=(
                OpcodeRef(index=i, offset=i * 17, opcode="STACK_GLOBAL", argument=f"os.system{i}"),
                Observation(name="content-format", actual="pickle", expected="safetensors"),
            ),
        )
        for i in range(n)
    ]


def garrison_writer(url: str, findings: list[Finding], batch: int) -> float:
    with Store.open(url) as store:
        now = datetime.now(UTC)
        assets = tuple({f.asset.locator: f.asset for f in findings}.values())
        report = ScanReport(
            run_id=os.urandom(16).hex(),
            target="bench",
            tool_version="bench",
            started_at=now,
            finished_at=now,
            assets=assets,
        )
        store.save_report(report)
        start = time.perf_counter()
        for i in range(0, len(findings), batch):
            store.add_findings(report.run_id, findings[i : i + batch])
        return time.perf_counter() - start


def _rows(findings: list[Finding]) -> list[tuple[object, ...]]:
    return [
        (
            f.rule.id,
            f.rule.name,
            f.rule.title,
            int(f.severity),
            int(f.confidence),
            f.message,
            f.detector,
            f.fingerprint,
            json.dumps(f.location.to_dict()),
            json.dumps([e.to_dict() for e in f.evidence]),
            f.asset.locator,
        )
        for f in findings
    ]


RAW_TABLE = (
    "CREATE TABLE raw_findings (id INTEGER PRIMARY KEY, rule_id TEXT, rule_name TEXT, rule_title TEXT, "
    "severity INTEGER, confidence INTEGER, message TEXT, detector TEXT, fingerprint TEXT, location TEXT, "
    "evidence TEXT, asset TEXT)"
)
RAW_INSERT = (
    "INSERT INTO raw_findings (rule_id, rule_name, rule_title, severity, confidence, message, detector, "
    "fingerprint, location, evidence, asset) VALUES ({})"
)


def sqlite_floor(path: Path, findings: list[Finding], batch: int) -> float:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(RAW_TABLE)
    con.execute("CREATE INDEX ix_fp ON raw_findings (fingerprint)")
    sql = RAW_INSERT.format(", ".join("?" * 11))
    start = time.perf_counter()
    for i in range(0, len(findings), batch):
        with con:
            con.executemany(sql, _rows(findings[i : i + batch]))
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def pg_floor(url: str, findings: list[Finding], batch: int) -> float:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as con:
        con.execute("DROP TABLE IF EXISTS raw_findings")
        con.execute(RAW_TABLE.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))
        con.execute("CREATE INDEX ix_fp ON raw_findings (fingerprint)")
        con.commit()
        sql = RAW_INSERT.format(", ".join(["%s"] * 11))
        start = time.perf_counter()
        for i in range(0, len(findings), batch):
            with con.cursor() as cur:
                cur.executemany(sql, _rows(findings[i : i + batch]))
            con.commit()
        elapsed = time.perf_counter() - start
        con.execute("DROP TABLE raw_findings")
        con.commit()
    return elapsed


def reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as con:
        con.execute(text("DROP SCHEMA public CASCADE"))
        con.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def measure(repeat: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    findings = make_findings(args.findings)
    rows, data = [], {}
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("GARRISON_BENCH_PG_URL") else [])
    for backend in backends:
        for batch in (1, 100, 1000, 10_000):
            n = min(len(findings), 2000) if batch == 1 else len(findings)
            subset = findings[:n]

            def ours(subset: list[Finding] = subset, batch: int = batch, backend: str = backend) -> float:
                if backend == "sqlite":
                    with tempfile.TemporaryDirectory() as tmp:
                        return garrison_writer(f"sqlite:///{tmp}/g.db", subset, batch)
                url = os.environ["GARRISON_BENCH_PG_URL"]
                reset_pg(url)
                return garrison_writer(url, subset, batch)

            def floor(subset: list[Finding] = subset, batch: int = batch, backend: str = backend) -> float:
                if backend == "sqlite":
                    with tempfile.TemporaryDirectory() as tmp:
                        return sqlite_floor(Path(tmp) / "raw.db", subset, batch)
                return pg_floor(os.environ["GARRISON_BENCH_PG_URL"], subset, batch)

            ours_t = measure(args.repeat, ours)
            floor_t = measure(args.repeat, floor)
            ours_rate = [n / t for t in ours_t]
            floor_rate = [n / t for t in floor_t]
            ratio = statistics.median(ours_rate) / statistics.median(floor_rate)
            data[f"{backend}/{batch}"] = {
                "findings": n,
                "garrison_per_s": summary(ours_rate),
                "driver_floor_per_s": summary(floor_rate),
                "ratio": ratio,
            }
            rows.append(
                [
                    backend,
                    str(batch),
                    str(n),
                    f"{statistics.median(ours_rate):,.0f}",
                    f"{min(ours_rate):,.0f}–{max(ours_rate):,.0f}",
                    f"{statistics.median(floor_rate):,.0f}",
                    f"{ratio:.2f}",
                ]
            )
    write_results(
        "store",
        "Store write throughput",
        [
            "backend",
            "batch",
            "findings",
            "garrison findings/s (median)",
            "range",
            "raw driver findings/s",
            "garrison / raw",
        ],
        rows,
        [
            f"Median of {args.repeat} runs; one transaction per batch; batch 1 writes 2,000 findings, "
            f"the others {args.findings:,}. The raw-driver floor writes the same rows with executemany "
            "into one table of the same columns and no foreign keys; Garrison also checks the run "
            "exists, links assets and serialises location and evidence as JSON."
        ],
        data,
    )


if __name__ == "__main__":
    main()
