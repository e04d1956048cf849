from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison import __version__
from tests.cli.conftest import Result, run_garrison


def test_version_and_help(cli: Callable[..., Result]) -> None:
    version = cli("--version")
    assert version.code == 0
    assert version.out.strip() == f"garrison {__version__}"
    helped = cli("--help")
    assert helped.code == 0
    for command in ("scan", "findings", "report", "runs", "rules", "config", "audit"):
        assert command in helped.out
    assert "Exit codes" in helped.out


def test_no_arguments_shows_help_and_is_a_usage_error(cli: Callable[..., Result]) -> None:
    result = cli()
    assert result.code == 2
    assert "Usage" in result.out + result.err


def test_findings_lists_and_filters_the_latest_run(cli: Callable[..., Result], project: Path) -> None:
    cli("scan", str(project))
    everything = json.loads(cli("findings", "--format", "json").out)
    assert {f["rule"]["id"] for f in everything} >= {"GAR-FMT-101", "GAR-FMT-103", "GAR-FMT-001"}
    high = json.loads(cli("findings", "--severity", "high", "--format", "json").out)
    assert high
    assert {f["severity"] for f in high} <= {"high", "critical"}
    by_rule = json.loads(cli("findings", "--rule", "GAR-FMT-103", "--format", "json").out)
    assert [f["rule"]["id"] for f in by_rule] == ["GAR-FMT-103"]
    by_asset = json.loads(cli("findings", "--asset", "models/*.safetensors", "--format", "json").out)
    assert by_asset
    assert {f["asset"]["locator"] for f in by_asset} == {"models/weights.safetensors"}
    limited = json.loads(cli("findings", "--limit", "1", "--format", "json").out)
    assert len(limited) == 1
    table = cli("findings")
    assert table.code == 0
    assert "GAR-FMT-101" in table.out


def test_findings_of_an_unknown_run_is_a_usage_error(cli: Callable[..., Result], project: Path) -> None:
    cli("scan", str(project))
    result = cli("findings", "--run", "deadbeef")
    assert result.code == 2
    assert "deadbeef" in result.err


def test_report_renders_a_stored_run_like_the_scan_did(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    scanned = json.loads(cli("scan", str(project), "--format", "json").out)
    stored = json.loads(cli("report", "latest", "--format", "json").out)
    assert stored["run"]["id"] == scanned["run"]["id"]
    assert sorted(f["fingerprint"] for f in stored["findings"]) == sorted(
        f["fingerprint"] for f in scanned["findings"]
    )
    prefix = scanned["run"]["id"][:10]
    html = tmp_path / "out" / "r.html"
    assert cli("report", prefix, "--format", "html", "--output", str(html)).code == 0
    assert "GAR-FMT-101" in html.read_text()


def test_runs_lists_newest_first(cli: Callable[..., Result], project: Path) -> None:
    assert "No scan runs" in cli("runs").out
    first = json.loads(cli("scan", str(project), "--format", "json").out)["run"]["id"]
    second = json.loads(cli("scan", str(project / "data"), "--format", "json").out)["run"]["id"]
    out = cli("runs").out
    assert out.index(second[:12]) < out.index(first[:12])


def test_rules_list_and_explain(cli: Callable[..., Result]) -> None:
    listed = json.loads(cli("rules", "list", "--format", "json").out)
    ids = {r["id"] for r in listed}
    assert {"GAR-FMT-001", "GAR-FMT-101", "GAR-SCAN-101", "GAR-SCAN-201"} <= ids
    assert all(r["remediation"] for r in listed)
    table = cli("rules", "list")
    assert "disguised-code-executing-file" in table.out
    explained = cli("rules", "explain", "gar-fmt-101")
    assert explained.code == 0
    assert "## What to do" in explained.out
    assert "CWE-502" in explained.out
    unknown = cli("rules", "explain", "GAR-FMT-109")
    assert unknown.code == 2
    assert "did you mean" in unknown.err


def test_config_show_says_where_each_value_came_from(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "garrison.toml").write_text('fail-on = "medium"\n')
    monkeypatch.setenv("GARRISON_FORMAT", "sarif")
    shown = json.loads(cli("config", "show", "--format", "json").out)
    settings = shown["settings"]
    assert settings["fail_on"] == {"value": "medium", "source": f"file ({tmp_path / 'garrison.toml'})"}
    assert settings["format"]["source"] == "env (GARRISON_FORMAT)"
    assert settings["store"]["source"] == "default"
    table = cli("config", "show")
    assert "fail-on" in table.out
    assert "GARRISON_FORMAT" in table.out


def test_bad_config_file_is_exit_2_with_the_file_named(
    cli: Callable[..., Result], tmp_path: Path, project: Path
) -> None:
    (tmp_path / "garrison.toml").write_text("fail-on = [\n")
    result = cli("scan", str(project))
    assert result.code == 2
    assert "garrison.toml" in result.err
    assert "Traceback" not in result.err


def test_audit_verify_detects_tampering_through_the_cli(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    for _ in range(3):
        cli("scan", str(project))
    intact = cli("audit", "verify")
    assert intact.code == 0
    assert "intact: 3 events" in intact.out
    log = json.loads(cli("audit", "log", "--format", "json").out)
    assert [e["seq"] for e in log] == [1, 2, 3]
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
    tampered = cli("audit", "verify", "--format", "json")
    assert tampered.code == 1
    verdict = json.loads(tampered.out)
    assert verdict["intact"] is False
    assert verdict["problems"][0]["kind"] == "modified"
    assert verdict["problems"][0]["seq"] == 2
    assert "event 2" in cli("audit", "verify").out


def test_store_that_cannot_be_opened_is_a_clear_error(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    result = cli("scan", str(project), "--db", str(not_a_db), with_db=False)
    assert result.code == 2
    assert "garbage.db" in result.err
    assert "Traceback" not in result.err


def test_password_in_a_store_url_is_never_printed(cli: Callable[..., Result], project: Path) -> None:
    url = "postgresql+psycopg://garrison:s3cr3t-pw@127.0.0.1:1/nothing?connect_timeout=2"
    result = cli("scan", str(project), "--db", url, with_db=False)
    assert result.code == 2
    assert "s3cr3t-pw" not in result.err + result.out
    assert "127.0.0.1" in result.err


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = run_garrison("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"garrison {__version__}"
