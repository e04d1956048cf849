"""Progress on stderr: a live bar on a terminal, a line every few seconds elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import Any

from garrison.report.common import size_text


class BarProgress:
    """A rich progress bar on stderr, removed when the scan ends."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._drawn = 0.0

    def start(self, total_files: int, total_bytes: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[current]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            # No refresh thread: the scan may fork worker processes, and forking while another
            # thread holds a lock (stderr's, the console's) can leave a child stuck on it.
            auto_refresh=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("scan", total=total_files, current="")

    def advance(self, locator: str, nbytes: int) -> None:
        now = time.monotonic()
        due = now - self._drawn >= 0.1  # redraw ten times a second at most
        self._progress.update(self._task, advance=1, current=locator[-50:], refresh=due)
        if due:
            self._drawn = now

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class LineProgress:
    """Plain lines on stderr every ``interval`` seconds, for logs that are not terminals."""

    #: Announce the work up front when it is at least this many files or bytes.
    announce_files = 1000
    announce_bytes = 256 * 2**20

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._started = 0.0
        self._last = 0.0
        self._total = 0
        self._bytes = 0
        self._done = 0
        self._done_bytes = 0

    def start(self, total_files: int, total_bytes: int) -> None:
        self._started = self._last = time.monotonic()
        self._total, self._bytes = total_files, total_bytes
        if total_files >= self.announce_files or total_bytes >= self.announce_bytes:
            sys.stderr.write(f"scanning {total_files} files ({size_text(total_bytes)})\n")
            sys.stderr.flush()

    def advance(self, locator: str, nbytes: int) -> None:
        self._done += 1
        self._done_bytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            sys.stderr.write(
                f"scanning: {self._done}/{self._total} files, "
                f"{size_text(self._done_bytes)} of {size_text(self._bytes)}\n"
            )

    def finish(self) -> None:
        elapsed = time.monotonic() - self._started
        if elapsed >= self.interval:
            sys.stderr.write(
                f"scanned {self._done} files ({size_text(self._done_bytes)}) in {elapsed:.1f} s\n"
            )


def make_progress(enabled: bool) -> BarProgress | LineProgress | None:
    """The progress display that suits stderr, or ``None`` when progress is turned off."""
    if not enabled:
        return None
    return BarProgress() if sys.stderr.isatty() else LineProgress()
