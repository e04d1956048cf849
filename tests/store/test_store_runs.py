"""Saving scan reports, reading them back, listing runs and querying findings."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Engine, text

from garrison.core.assets import AssetKind
from garrison.core.errors import StorageError, UsageError
from garrison.core.eventlog import GENESIS_HASH
from garrison.core.findings import Finding
from garrison.core.registry import Registry
from garrison.core.results import ErrorRecord, SkippedRecord
from garrison.core.severity import Severity
from garrison.store import RunSummary, Store, rows
from garrison.store.rows import RETIRED_RULE_REMEDIATION
from tests.store.factories import RULE_INFO, RULE_PICKLE, RULE_SECRET, T0, asset, finding, make_report

DATA_TABLES = ("assets", "scan_runs", "run_assets", "findings", "events")


def row_counts(raw: Engine) -> dict[str, int]:
    with raw.connect() as connection:
        return {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in DATA_TABLES}


def head_row(raw: Engine) -> tuple[Any, ...]:
    with raw.connect() as connection:
        return tuple(connection.execute(text("SELECT seq, hash FROM event_head")).one())


# -- round trips -------------------------------------------------------------------------------


def test_report_round_trips_exactly(store: Store, registry: Registry) -> None:
    endpoint = asset("https://models.example/v1", digest=None, kind=AssetKind.ENDPOINT)
    report = make_report(
        findings=(
            finding(asset("models/a.pkl")),
            finding(asset("models/a.pkl"), rule=RULE_SECRET, severity=Severity.CRITICAL, member="x!y"),
            finding(endpoint, rule=RULE_INFO, message="probe answered ✓ «quoted»"),
        ),
        baselined=(finding(asset("models/old.pkl"), rule=RULE_SECRET),),
        errors=(ErrorRecord(locator="models/bad.pt", message="truncated zip", detector="pytorch"),),
        skipped=(SkippedRecord(locator="README.md", reason="not a model file"),),
        assets=(asset("models/a.pkl"), endpoint, asset("models/old.pkl")),
    )
    store.save_report(report)
    assert store.load_report(report.run_id, registry) == report
    assert store.load_report("latest", registry) == report


def test_assets_with_the_same_content_keep_their_own_locators(
    store: Store, registry: Registry, raw: Engine
) -> None:
    digest = "sha256:" + "ab" * 32
    a, b = asset("copy/one.pkl", digest=digest), asset("copy/two.pkl", digest=digest)
    report = make_report(findings=(finding(a), finding(b)), assets=(a, b))
    store.save_report(report)
    assert row_counts(raw)["assets"] == 1
    back = store.load_report("latest", registry)
    assert back.assets == (a, b)
    assert [f.asset.locator for f in back.findings] == ["copy/one.pkl", "copy/two.pkl"]


def test_times_come_back_aware_in_utc(store: Store, registry: Registry) -> None:
    eastern = timezone(timedelta(hours=-5))
    report = make_report(started_at=datetime(2026, 3, 1, 7, 30, 0, 999999, tzinfo=eastern))
    store.save_report(report)
    back = store.load_report("latest", registry)
    assert back.started_at.tzinfo is UTC
    assert back.started_at == report.started_at
    assert back.started_at.hour == 12
    [summary] = store.list_runs()
    assert summary.finished_at.tzinfo is UTC
    assert summary.finished_at == report.finished_at


def test_retired_rule_comes_back_as_a_valid_stand_in(store: Store) -> None:
    store.save_report(make_report())
    only_pickle = Registry()
    only_pickle.add_rules([RULE_PICKLE], owner="tests")
    back = store.load_report("latest", only_pickle)
    rules = {f.rule.id: f.rule for f in back.findings}
    assert rules[RULE_PICKLE.id] is RULE_PICKLE
    stand_in = rules[RULE_SECRET.id]
    assert (stand_in.name, stand_in.title, stand_in.severity) == (
        RULE_SECRET.name,
        RULE_SECRET.title,
        RULE_SECRET.severity,
    )
    assert stand_in.remediation == RETIRED_RULE_REMEDIATION
    assert stand_in.cwe == ("CWE-693",)
    empty = store.load_report("latest", Registry())
    assert {f.rule.remediation for f in empty.findings} == {RETIRED_RULE_REMEDIATION}
    assert [f.fingerprint for f in empty.findings] == [f.fingerprint for f in back.findings]


def test_unknown_run_is_a_usage_error_with_a_hint(store: Store, registry: Registry) -> None:
    with pytest.raises(UsageError, match="no scan run") as caught:
        store.load_report("nope", registry)
    assert caught.value.hint == "garrison runs lists them"
    with pytest.raises(UsageError, match="no scan run"):
        store.load_report("latest", registry)
    with pytest.raises(UsageError, match="no scan run"):
        store.query_findings(registry=registry, run_id="nope")
    with pytest.raises(UsageError, match="no scan run"):
        store.add_findings("nope", [finding(asset("x"))])


def test_run_is_found_by_a_unique_prefix(store: Store, registry: Registry) -> None:
    for run_id in ("3f2a9c01", "3f2a77aa", "b1000000", "B1"):
        store.save_report(make_report(run_id))
    assert store.load_report("3f2a9", registry).run_id == "3f2a9c01"
    assert store.load_report("b1", registry).run_id == "b1000000"  # case-sensitive on SQLite too
    assert store.load_report("B1", registry).run_id == "B1"  # an exact id wins over longer ones
    assert len(store.query_findings(registry=registry, run_id="3f2a7")) == 3
    with pytest.raises(UsageError, match="ambiguous") as caught:
        store.load_report("3f2a", registry)
    assert "more characters" in (caught.value.hint or "")
    with pytest.raises(UsageError, match="no scan run '3f2a%'"):
        store.load_report("3f2a%", registry)


def test_saving_a_report_records_a_scan_completed_event(store: Store) -> None:
    report = make_report(errors=(ErrorRecord(locator="b", message="unreadable"),))
    store.save_report(report)
    [record] = store.event_records()
    assert record.seq == 1
    assert record.event.type == "scan.completed"
    assert record.event.actor == "garrison"
    assert record.event.subject == report.run_id
    assert record.event.data == {
        "target": "models/",
        "counts": {"critical": 0, "high": 1, "medium": 1, "low": 0, "info": 1},
        "complete": False,
    }
    assert store.verify_events().intact


# -- atomicity ---------------------------------------------------------------------------------


def test_duplicate_run_id_is_refused_and_changes_nothing(store: Store, raw: Engine) -> None:
    store.save_report(make_report())
    before, head = row_counts(raw), head_row(raw)
    with pytest.raises(StorageError, match="conflicts"):
        store.save_report(make_report(findings=(finding(asset("new/asset.pkl")),)))
    assert row_counts(raw) == before
    assert head_row(raw) == head


def test_constraint_violation_midway_leaves_nothing_behind(store: Store, raw: Engine) -> None:
    good = finding(asset("models/a.pkl"))
    bad = dataclasses.replace(good, severity=cast(Severity, 9))  # violates the findings.severity check
    with pytest.raises(StorageError):
        store.save_report(make_report(findings=(good, good, bad)))
    assert row_counts(raw) == dict.fromkeys(DATA_TABLES, 0)
    assert head_row(raw) == (0, GENESIS_HASH)


def test_failure_after_the_run_row_leaves_nothing_behind(
    store: Store, raw: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real = rows.finding_row

    def failing_finding_row(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr("garrison.store.store.finding_row", failing_finding_row)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.save_report(make_report())
    assert calls == 2
    assert row_counts(raw) == dict.fromkeys(DATA_TABLES, 0)
    monkeypatch.undo()
    store.save_report(make_report())  # the store is still usable afterwards
    assert row_counts(raw)["findings"] == 3


def test_failure_while_chaining_the_event_leaves_nothing_behind(
    store: Store, raw: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_append(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("chain broke")

    monkeypatch.setattr("garrison.store.chain.append", broken_append)
    with pytest.raises(RuntimeError, match="chain broke"):
        store.save_report(make_report())
    assert row_counts(raw) == dict.fromkeys(DATA_TABLES, 0)


# -- assets ------------------------------------------------------------------------------------


def test_assets_are_upserted_with_first_and_last_seen(store: Store, raw: Engine) -> None:
    a = asset("models/a.pkl")
    store.save_report(make_report("r1", started_at=T0, findings=(finding(a),), assets=(a,)))
    moved = dataclasses.replace(a, locator="renamed/a.pkl")
    later = T0 + timedelta(days=3)
    store.save_report(make_report("r2", started_at=later, findings=(finding(moved),), assets=(moved,)))
    store.save_report(make_report("r0", started_at=T0 - timedelta(days=1), findings=(), assets=(a,)))
    with raw.connect() as connection:
        rows = connection.execute(text("SELECT identity, locator FROM assets")).all()
    assert rows == [(a.digest, "renamed/a.pkl")]
    assert store.list_runs()[0].run_id == "r2"
    with store.engine.connect() as connection:
        first, last = connection.execute(text("SELECT first_seen, last_seen FROM assets")).one()
    assert as_utc(first) == T0 - timedelta(days=1)
    assert as_utc(last) == later + timedelta(seconds=2, microseconds=5)


def as_utc(value: datetime | str) -> datetime:
    """A raw timestamp column: SQLite hands back naive UTC text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- listing -----------------------------------------------------------------------------------


def test_list_runs_newest_first_with_counts(store: Store) -> None:
    for day in (2, 0, 1):
        store.save_report(make_report(f"run-{day}", started_at=T0 + timedelta(days=day)))
    store.save_report(
        make_report(
            "run-3",
            started_at=T0 + timedelta(days=3),
            findings=(finding(asset("z"), severity=Severity.CRITICAL),),
            baselined=(finding(asset("y")),),
            errors=(ErrorRecord(locator="q", message="boom"),),
        )
    )
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["run-3", "run-2", "run-1", "run-0"]
    assert store.list_runs(limit=2) == runs[:2]
    newest = runs[0]
    assert isinstance(newest, RunSummary)
    assert newest.status == "incomplete"
    assert runs[1].status == "complete"
    assert list(newest.counts) == sorted(Severity, reverse=True)
    assert newest.counts[Severity.CRITICAL] == 1
    assert newest.findings_total == 1
    assert newest.baselined == 1
    assert runs[1].counts == {
        Severity.CRITICAL: 0,
        Severity.HIGH: 1,
        Severity.MEDIUM: 1,
        Severity.LOW: 0,
        Severity.INFO: 1,
    }
    assert runs[1].findings_total == 3
    assert newest.target == "models/"


# -- add_findings ------------------------------------------------------------------------------


def test_add_findings_appends_to_a_run_and_updates_counts(store: Store, registry: Registry) -> None:
    store.save_report(make_report())
    extra = [finding(asset(f"bulk/{i}.pkl"), severity=Severity.LOW) for i in range(1200)]
    assert store.add_findings("run-1", extra) == 1200
    assert store.add_findings("run-1", []) == 0
    [summary] = store.list_runs()
    assert summary.counts[Severity.LOW] == 1200
    assert summary.findings_total == 1203
    back = store.load_report("run-1", registry)
    assert back.findings[3:] == tuple(extra)


# -- query_findings ----------------------------------------------------------------------------


@pytest.fixture
def queried(store: Store) -> Store:
    """A store with an older run and a newer one holding findings on assorted locators."""
    store.save_report(make_report("old", started_at=T0 - timedelta(days=1)))
    items = [
        finding(asset("models/a.pkl"), severity=Severity.CRITICAL),
        finding(asset("models/sub/b.pkl"), rule=RULE_SECRET),
        finding(asset("models/Sub/c.bin"), rule=RULE_INFO),
        finding(asset("data/100%_real.csv"), rule=RULE_SECRET, severity=Severity.LOW),
        finding(asset("data/100x_real.csv"), rule=RULE_INFO),
    ]
    store.save_report(
        make_report("new", started_at=T0, findings=tuple(items), baselined=(finding(asset("models/z.pkl")),))
    )
    return store


def locators(found: list[Finding]) -> list[str]:
    return [f.asset.locator for f in found]


def test_query_defaults_to_latest_run_most_severe_first(queried: Store, registry: Registry) -> None:
    found = queried.query_findings(registry=registry)
    assert locators(found) == [
        "models/a.pkl",
        "models/sub/b.pkl",
        "data/100%_real.csv",
        "models/Sub/c.bin",
        "data/100x_real.csv",
    ]
    assert [f.severity for f in found] == sorted((f.severity for f in found), reverse=True)
    assert len(queried.query_findings(registry=registry, run_id="old")) == 3


def test_query_by_severity_rule_and_limit(queried: Store, registry: Registry) -> None:
    high = queried.query_findings(registry=registry, min_severity=Severity.MEDIUM)
    assert locators(high) == ["models/a.pkl", "models/sub/b.pkl"]
    secrets = queried.query_findings(registry=registry, rule_ids={RULE_SECRET.id})
    assert locators(secrets) == ["models/sub/b.pkl", "data/100%_real.csv"]
    both = queried.query_findings(
        registry=registry, rule_ids=[RULE_SECRET.id, RULE_INFO.id], min_severity=Severity.LOW
    )
    assert locators(both) == ["models/sub/b.pkl", "data/100%_real.csv"]
    assert locators(queried.query_findings(registry=registry, limit=2)) == [
        "models/a.pkl",
        "models/sub/b.pkl",
    ]
    assert queried.query_findings(registry=registry, rule_ids=[]) == []


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("models/*", ["models/a.pkl", "models/sub/b.pkl", "models/Sub/c.bin"]),
        ("models/sub/*", ["models/sub/b.pkl"]),  # case-sensitive on every database
        ("*.pkl", ["models/a.pkl", "models/sub/b.pkl"]),
        ("models/?.pkl", ["models/a.pkl"]),
        ("data/100%_real.csv", ["data/100%_real.csv"]),  # % and _ are literal, not LIKE wildcards
        ("data/100?_real.csv", ["data/100%_real.csv", "data/100x_real.csv"]),
        ("models/[sS]ub/*", ["models/sub/b.pkl", "models/Sub/c.bin"]),
        ("models/[!s]ub/*", ["models/Sub/c.bin"]),
        ("nothing/*", []),
    ],
)
def test_query_by_asset_glob(queried: Store, registry: Registry, glob: str, expected: list[str]) -> None:
    assert locators(queried.query_findings(registry=registry, asset_glob=glob)) == expected


def test_query_glob_with_class_still_honours_limit(queried: Store, registry: Registry) -> None:
    found = queried.query_findings(registry=registry, asset_glob="models/[a-z]*", limit=1)
    assert locators(found) == ["models/a.pkl"]


def test_nul_characters_from_hostile_files_are_kept_visible(store: Store, registry: Registry) -> None:
    # PostgreSQL text cannot hold NUL; a member name or global read from a hostile file can.
    hostile = asset("models/evil\x00.pkl")
    found = finding(hostile, message="global os\x00system is imported")
    store.save_report(make_report("run-nul", findings=(found,), assets=(hostile,)))
    (loaded,) = store.load_report("run-nul", registry).findings
    assert loaded.message == "global os\\x00system is imported"
    assert loaded.asset.locator == "models/evil\\x00.pkl"
