from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import Result


def test_report_files_are_ordinary_files_honouring_the_umask(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "reports" / "r.json"
        cli("scan", str(project), "--format", "json", "--output", str(out), "--no-store")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_unwritable_output_is_a_usage_error(
    cli: Callable[..., Result], project: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("scan", str(project), "--output", str(blocker / "r.json"), "--no-store")
    assert result.code == 2
    assert "cannot write the report" in result.err
