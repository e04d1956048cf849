from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Result, run_garrison


def rule_ids(report: dict[str, object]) -> set[str]:
    return {f["rule"]["id"] for f in report["findings"]}  # type: ignore[index, union-attr]


def test_scan_finds_the_disguised_pickle_and_exits_1(cli: Callable[..., Result], project: Path) -> None:
    result = cli("scan", str(project), "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert {"GAR-FMT-101", "GAR-FMT-103"} <= rule_ids(report)
    by_rule = {f["rule"]["id"]: f for f in report["findings"]}
    assert by_rule["GAR-FMT-101"]["asset"]["locator"] == "models/weights.safetensors"
    assert by_rule["GAR-FMT-103"]["asset"]["locator"] == "models/broken.pkl"
    assert "Traceback" not in result.err
    assert "saved" in result.err


def test_names_that_are_not_utf8_are_scanned_stored_and_reported(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    root = os.path.join(os.fsencode(tmp_path), b"root\xfe")  # file names are bytes on POSIX
    os.mkdir(root)
    payload = b"cposix\nsystem\n(Vecho hi\ntR."  # protocol 0: posix.system('echo hi')
    with open(os.path.join(root, b"bad\xff.pkl"), "wb") as f:
        f.write(payload)
    result = cli("scan", os.fsdecode(root), "--format", "json")
    assert result.code == 1, result.err
    report = json.loads(result.out)
    assert report["run"]["target"].endswith("root\\xfe")
    by_rule = {f["rule"]["id"]: f for f in report["findings"]}
    assert by_rule["GAR-PKL-001"]["asset"]["locator"] == "bad\\xff.pkl"
    assert by_rule["GAR-FMT-001"]["message"].startswith("bad\\xff.pkl is a Python pickle file")
    sarif = cli("report", "latest", "--format", "sarif")
    assert sarif.code == 0, sarif.err
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(sarif.out)["runs"][0]["results"]
    }
    assert uris == {"bad%FF.pkl"}  # the file name's own byte, percent-encoded
    for fmt in ("html", "console"):
        shown = cli("report", "latest", "--format", fmt)
        assert shown.code == 0, shown.err
        assert "bad\\xff.pkl" in shown.out
        shown.out.encode("utf-8")


def test_fail_on_critical_passes_and_fail_on_low_fails(cli: Callable[..., Result], project: Path) -> None:
    assert cli("scan", str(project), "--fail-on", "critical", "--no-store").code == 0
    assert cli("scan", str(project), "--fail-on", "low", "--no-store").code == 1


def test_clean_directory_exits_0(cli: Callable[..., Result], tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "notes.txt").write_text("nothing to see\n")
    result = cli("scan", str(clean))
    assert result.code == 0
    assert "No findings" in result.out or "0 findings" in result.out


def test_missing_path_is_a_usage_error(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("scan", str(tmp_path / "nope"))
    assert result.code == 2
    assert "path not found" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "loud"], "fail-on"),
        (["--format", "pdf"], "format"),
        (["--select", "GAR-NOPE"], "matches no rule"),
        (["--baseline", "missing.json"], "missing.json"),
    ],
)
def test_bad_flags_are_usage_errors(
    cli: Callable[..., Result], project: Path, args: list[str], message: str
) -> None:
    result = cli("scan", str(project), *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_unknown_option_is_a_usage_error(cli: Callable[..., Result], project: Path) -> None:
    result = cli("scan", str(project), "--frobnicate")
    assert result.code == 2


def test_select_and_ignore_filter_rules(cli: Callable[..., Result], project: Path) -> None:
    only = json.loads(cli("scan", str(project), "--format", "json", "--select", "GAR-FMT-101").out)
    assert rule_ids(only) == {"GAR-FMT-101"}
    rest = json.loads(cli("scan", str(project), "--format", "json", "--ignore", "GAR-FMT-1").out)
    assert not any(r.startswith("GAR-FMT-1") for r in rule_ids(rest))


def test_baseline_makes_ci_fail_only_on_new_findings(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    assert cli("scan", str(project), "--format", "json", "--output", str(baseline)).code == 1
    # An edit that moves things around but adds nothing new: the baseline still covers it.
    (project / "data" / "train.csv").write_text("a,b,label\n9,9,1\n")
    again = cli("scan", str(project), "--baseline", str(baseline), "--format", "json")
    assert again.code == 0
    assert json.loads(again.out)["summary"]["baselined"] >= 2
    # A new disguised file is a new finding.
    shutil.copy(project / "models" / "weights.safetensors", project / "models" / "new.onnx")
    new = cli("scan", str(project), "--baseline", str(baseline), "--format", "json")
    assert new.code == 1
    assert {f["asset"]["locator"] for f in json.loads(new.out)["findings"]} == {"models/new.onnx"}


def test_sarif_baseline_works_too(cli: Callable[..., Result], project: Path, tmp_path: Path) -> None:
    sarif = tmp_path / "base.sarif"
    cli("scan", str(project), "--format", "sarif", "--output", str(sarif))
    assert cli("scan", str(project), "--baseline", str(sarif)).code == 0


def test_every_format_renders_to_a_file(cli: Callable[..., Result], project: Path, tmp_path: Path) -> None:
    for fmt in ("console", "json", "sarif", "html"):
        out = tmp_path / f"report.{fmt}"
        result = cli("scan", str(project), "--format", fmt, "--output", str(out), "--no-store")
        assert result.code == 1
        assert result.out == ""
        assert out.stat().st_size > 200
    assert out.read_text().lstrip().lower().startswith("<!doctype html>")


def test_symlink_out_of_the_tree_is_a_finding(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    os.symlink(secret, project / "models" / "leak.bin")
    report = json.loads(cli("scan", str(project), "--format", "json").out)
    assert "GAR-SCAN-101" in rule_ids(report)
    assert "hunter2" not in json.dumps(report)


def test_max_files_limit_is_a_finding_and_incomplete(cli: Callable[..., Result], project: Path) -> None:
    result = cli("scan", str(project), "--format", "json", "--fail-on", "critical")
    assert result.code == 0
    os.environ["GARRISON_MAX_FILES"] = "1"
    try:
        limited = cli("scan", str(project), "--format", "json", "--fail-on", "critical")
    finally:
        del os.environ["GARRISON_MAX_FILES"]
    assert limited.code == 3
    report = json.loads(limited.out)
    assert "GAR-SCAN-201" in rule_ids(report)
    assert report["run"]["complete"] is False


def test_internal_errors_exit_4_without_traceback(
    cli: Callable[..., Result], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import garrison.report

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(garrison.report, "render", broken)
    result = cli("scan", str(project), "--no-store")
    assert result.code == 4
    assert "internal error" in result.err
    assert "renderer exploded" in result.err
    assert "Traceback" not in result.err


def _without_root_privilege() -> list[str] | None:
    """A command prefix under which permission bits apply (root bypasses them), or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


_PREFIX = _without_root_privilege()


@pytest.mark.skipif(_PREFIX is None, reason="running as root without setpriv: permissions are not enforced")
def test_unreadable_file_makes_the_run_incomplete(tmp_path: Path) -> None:
    assert _PREFIX is not None
    prefix = _PREFIX
    root = tmp_path / "perm"
    root.mkdir()
    (root / "ok.csv").write_text("a,b\n1,2\n")
    locked = root / "locked.pt"
    locked.write_bytes(b"\x80\x04N.")
    locked.chmod(0o000)
    args = [*prefix, sys.executable, "-m", "garrison", "scan", str(root), "--no-store", "--format", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["run"]["complete"] is False
    assert [e["locator"] for e in report["errors"]] == ["locked.pt"]
    assert "ermission denied" in report["errors"][0]["message"]
    assert "Traceback" not in proc.stderr
    allowed = subprocess.run(
        [*args, "--allow-incomplete"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
        check=False,
    )
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.slow
def test_ten_thousand_files_complete_with_progress(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for d in range(100):
        sub = root / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}.json").write_text(f'{{"i": {f}}}')
    proc = run_garrison("scan", str(root), "--db", str(tmp_path / "s.db"), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "scanning 10000 files" in proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["assets"]) == 10_000
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("select count(*) from scan_runs").fetchone() == (1,)


@pytest.mark.slow
def test_interrupted_scan_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for d in range(60):
        sub = root / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}.bin").write_bytes(os.urandom(2048))
    db = tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "garrison", "scan", str(root), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("scanning 6000 files"), first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    if db.exists():
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
            if "scan_runs" in tables:
                assert con.execute("select count(*) from scan_runs").fetchone() == (0,)
                assert con.execute("select count(*) from findings").fetchone() == (0,)
