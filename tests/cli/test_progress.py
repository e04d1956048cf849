"""Progress reporting: the terminal bar runs no thread, so a scan may fork its workers safely."""

from __future__ import annotations

import threading

import pytest

from garrison.cli.progress import BarProgress, LineProgress


def test_the_bar_starts_no_thread_and_counts_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    before = threading.active_count()
    bar = BarProgress()
    bar.start(total_files=3, total_bytes=30)
    assert threading.active_count() == before
    for name in ("a.pt", "b.pt", "c.pt"):
        bar.advance(name, 10)
    assert bar._progress.tasks[0].completed == 3
    bar.finish()
    assert threading.active_count() == before


def test_line_progress_announces_large_scans(capsys: pytest.CaptureFixture[str]) -> None:
    lines = LineProgress()
    lines.start(total_files=5000, total_bytes=2**30)
    lines.finish()
    assert "5000 files" in capsys.readouterr().err
