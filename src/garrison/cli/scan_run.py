"""What ``garrison scan`` does once its arguments are parsed, and a parser for its plain forms.

:func:`run_scan` loads the settings, scans, renders and returns the exit code. Typer parses the
arguments in :mod:`garrison.cli.scan`; :func:`plain_arguments` parses the forms CI jobs and scripts
use (``garrison scan PATH --format json --no-store --no-progress``) itself, so that such a scan does
not import Typer and Click at all. Anything it does not recognise exactly (help, an output file, a
baseline, a configuration file, a repeated or abbreviated option, a value that starts with ``-``)
makes it return ``None``, and Typer parses the command line as it always has, errors included.
Nothing here imports Typer.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_VALUE_OPTIONS = {
    "--format": "fmt",
    "-f": "fmt",
    "--fail-on": "fail_on",
    "--jobs": "jobs",
    "-j": "jobs",
    "--digest": "digest",
    "--revision": "revision",
    "--db": "db",
}
"""Options that take one value, and the :func:`run_scan` argument each sets."""
_LIST_OPTIONS = {"--select": "select", "--ignore": "ignore"}
"""Repeatable options, each occurrence adding one value."""
_FLAGS = {
    "--store": ("store", True),
    "--no-store": ("store", False),
    "--progress": ("progress", True),
    "--no-progress": ("progress", False),
    "--allow-incomplete": ("allow_incomplete", True),
}
"""Flags and the value each sets."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (start-up), and leave it as it was found afterwards.

    Importing Garrison allocates tens of thousands of objects that live as long as the process and
    makes almost no garbage, yet each allocation burst triggers a collection that walks all of them:
    a quarter of the start-up time. Nothing is lost by not collecting until the imports are done.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plain_arguments(args: list[str]) -> dict[str, Any] | None:
    """:func:`run_scan`'s keyword arguments for ``garrison scan ARGS``, or ``None`` to leave it to Typer.

    Recognised: positional targets (``PATH``, ``model TARGET``, ``data PATH``), the flags of
    :data:`_FLAGS`, and the options of :data:`_VALUE_OPTIONS` and :data:`_LIST_OPTIONS` as
    ``--name VALUE`` or ``--name=VALUE`` (short ones as ``-f VALUE``), each single-value option and
    flag pair at most once.
    """
    out: dict[str, Any] = {"targets": []}
    seen: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "-":
            return None
        if not arg.startswith("-"):
            out["targets"].append(arg)
            continue
        name, eq, value = arg.partition("=")
        if eq and not name.startswith("--"):
            return None
        if name in _FLAGS and not eq:
            flag_key, flag = _FLAGS[name]
            if flag_key in seen:
                return None
            seen.add(flag_key)
            out[flag_key] = flag
            continue
        found = _VALUE_OPTIONS.get(name) or _LIST_OPTIONS.get(name)
        if found is None:
            return None  # help, --output, --baseline, --config, --, a typo: Typer's to parse and report
        key = found
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        if not value or value.startswith("-"):
            return None
        if name in _LIST_OPTIONS:
            out.setdefault(key, []).append(value)
            continue
        if key in seen:
            return None
        seen.add(key)
        if key == "jobs":
            try:
                out[key] = int(value)
            except ValueError:
                return None
        else:
            out[key] = value
    if not out["targets"]:
        return None
    return out


def run_scan(
    *,
    targets: list[str],
    fmt: str | None = None,
    output: Path | None = None,
    fail_on: str | None = None,
    baseline: Path | None = None,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    store: bool | None = None,
    allow_incomplete: bool | None = None,
    progress: bool | None = None,
    jobs: int | None = None,
    digest: str | None = None,
    revision: str = "main",
    db: str | None = None,
    config_file: Path | None = None,
) -> int:
    """Scan, render the report and return the exit code (see ``garrison scan --help``)."""
    with collector_paused():
        from garrison.cli.progress import make_progress
        from garrison.core.config import load_settings
        from garrison.detectors import DATA_RULE_FAMILIES, MODEL_RULE_FAMILIES, default_registry
        from garrison.engine import scan_path
        from garrison.report import render

        path, label, focused = _target(targets, revision)
        registry = default_registry()
        # Everything imported so far lives until the process exits. Frozen, it is left out of the
        # collector's full passes (a tenth of a scan of many small files went to re-walking it) and
        # its pages are not copied by forked scan workers touching it.
        gc.freeze()
    if focused and not select:
        select = list(MODEL_RULE_FAMILIES if focused == "model" else DATA_RULE_FAMILIES)

    flags = {
        "format": fmt,
        "fail_on": fail_on,
        "baseline": baseline,
        "select": tuple(select) if select else None,
        "ignore": tuple(ignore) if ignore else None,
        "store": store,
        "allow_incomplete": allow_incomplete,
        "progress": progress,
        "digest": digest,
        "jobs": jobs,
        "db": db,
    }
    loaded = load_settings({k: v for k, v in flags.items() if v is not None}, config_file=config_file)
    settings = loaded.settings
    for problem in registry.problems:
        _note(f"warning: {problem}")
    fingerprints = None
    if settings.baseline:
        from garrison.report.baseline import load_baseline

        fingerprints = load_baseline(settings.baseline)
    report = scan_path(
        path,
        settings=settings,
        registry=registry,
        progress=make_progress(settings.progress),
        target_label=label,
    )
    if fingerprints is not None:
        from garrison.report.baseline import apply_baseline

        report = apply_baseline(report, fingerprints)
    if settings.store:
        from garrison.cli.common import open_store

        with open_store(loaded) as st:
            st.save_report(report)
    tty = sys.stdout.isatty()
    width = None
    if tty:
        import shutil

        width = shutil.get_terminal_size((120, 40)).columns
    _emit(render(report, settings.format, color=output is None and tty, width=width), output)
    code = report.exit_code(fail_on=settings.fail_on, allow_incomplete=settings.allow_incomplete)
    stored_note = f"run {report.run_id[:12]} saved" if settings.store else "run not saved (--no-store)"
    _note(f"{len(report.findings)} findings, {len(report.errors)} errors; {stored_note}; exit {int(code)}")
    return int(code)


def _target(targets: list[str], revision: str) -> tuple[Path, str, str | None]:
    """The path to scan, its label in the report, and the focused form (``model``, ``data``) if any."""
    from garrison.core.errors import UsageError

    if len(targets) == 1:
        return Path(targets[0]), targets[0], None
    if len(targets) != 2 or targets[0] not in ("model", "data"):
        raise UsageError(
            f"expected PATH, 'model TARGET' or 'data PATH', got {' '.join(targets)!r}",
            hint="scan one path at a time, for example 'garrison scan ./models'",
        )
    from garrison.formats.hfcache import find_snapshot, looks_like_repo_id

    form, given = targets
    path = Path(given).expanduser()
    if form == "data" or path.exists() or path.is_symlink() or not looks_like_repo_id(given):
        return path, given, form
    snapshot = find_snapshot(given, revision=revision)
    return snapshot, f"hf://{given}@{snapshot.name}", form


def _emit(text: str, output: Path | None) -> None:
    if output is not None:
        from garrison.cli.common import emit

        emit(text, output)
        return
    sys.stdout.write(text if text.endswith("\n") else text + "\n")  # as cli.common.emit writes it
    sys.stdout.flush()


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")  # as cli.common.note writes it
