"""``garrison scan``'s plain forms, parsed without Typer, behave exactly as Typer's parse does.

Every command line in :data:`SAME` runs twice in-process: through :func:`garrison.cli.main.main`
(which takes the plain-form path when it can) and through the Typer application directly; the
exit code, stdout and stderr must match once run ids and times are blanked out.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import COMMANDS, build_app, main
from garrison.cli.scan_run import plain_arguments

_VOLATILE = re.compile(
    r'"(id|started_at|finished_at|runId)": "[^"]*"|run\s+[0-9a-f]{12,32}|\d{4}-\d\d-\d\dT[\d:.]+Z|\(\d+ ms\)'
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["p"], {"targets": ["p"]}),
        (
            ["p", "--format", "json", "--no-store", "--no-progress"],
            {"targets": ["p"], "fmt": "json", "store": False, "progress": False},
        ),
        (["--format=sarif", "p", "-j", "2"], {"targets": ["p"], "fmt": "sarif", "jobs": 2}),
        (["model", "p", "-f", "json"], {"targets": ["model", "p"], "fmt": "json"}),
        (
            ["p", "--select", "GAR-PKL", "--select=GAR-FMT"],
            {"targets": ["p"], "select": ["GAR-PKL", "GAR-FMT"]},
        ),
        (["p", "--allow-incomplete", "--store"], {"targets": ["p"], "allow_incomplete": True, "store": True}),
        ([], None),  # missing PATH: Typer reports it
        (["--no-store"], None),
        (["p", "--help"], None),
        (["p", "-h"], None),
        (["p", "--output", "r.json"], None),  # a file to write: Typer checks it is not a directory
        (["p", "-o", "r.json"], None),
        (["p", "--baseline", "old.json"], None),
        (["p", "--config", "g.toml"], None),
        (["p", "--bogus"], None),
        (["p", "--", "q"], None),
        (["-", "--no-store"], None),
        (["p", "--format"], None),  # option without its value
        (["p", "--format", "-x"], None),  # a value that looks like an option
        (["p", "--jobs", "two"], None),
        (["p", "-j", "-1"], None),
        (["p", "-fjson"], None),  # attached short option
        (["p", "-f=json"], None),
        (["p", "--format", "json", "--format", "sarif"], None),  # repeated: Typer's rule applies
        (["p", "--store", "--no-store"], None),
        (["p", "--no-store=1"], None),
    ],
)
def test_plain_arguments_parse_only_what_they_fully_understand(
    args: list[str], expected: dict[str, Any] | None
) -> None:
    assert plain_arguments(args) == expected


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A pickle that imports os.system, a harmless one, a truncated one and a text file."""
    root = tmp_path / "models"
    root.mkdir()
    (root / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    (root / "fine.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (root / "cut.pkl").write_bytes(pickle.dumps(list(range(40)), protocol=2)[:-5])
    (root / "notes.txt").write_text("weights trained on the public set\n")
    return root


SAME = [
    ["--format", "json", "--no-store", "--no-progress"],
    ["--format=sarif", "--no-store", "--fail-on", "critical"],
    ["-f", "json", "--no-store", "--select", "GAR-PKL", "--ignore=GAR-PKL-002", "-j", "1"],
    ["--no-store", "--fail-on", "low", "--allow-incomplete"],
    ["--no-store", "--format", "bogus"],
    ["--no-store", "--fail-on", "bogus"],
    ["--no-store", "--select", "GAR-NOPE"],
    ["--no-store", "--digest", "none", "-f", "json"],
    ["--no-store", "--digest", "bogus"],
]


@pytest.mark.parametrize("flags", SAME, ids=" ".join)
@pytest.mark.parametrize("form", ["path", "model", "data"])
def test_plain_forms_match_typer(
    flags: list[str],
    form: str,
    models: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(models.parent)
    for key in list(os.environ):
        if key.startswith("GARRISON_"):
            monkeypatch.delenv(key)
    args = ["scan", *([] if form == "path" else [form]), str(models), *flags]
    assert plain_arguments(args[1:]) is not None

    fast = _run(lambda: main(args), capsys)
    typer_app = build_app("scan")

    def through_typer() -> int:
        try:
            typer_app(args=args, prog_name="garrison")
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert fast == _run(through_typer, capsys)


def _run(call: Callable[[], int], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from garrison.core.errors import GarrisonError

    try:
        code = call()
    except GarrisonError as exc:  # main() turns these into an exit code; the bare Typer app raises
        code = exc.exit_code
        sys.stderr.write(f"garrison: error: {exc.diagnostics()}\n")
    captured = capsys.readouterr()
    return code, _VOLATILE.sub("X", captured.out), _VOLATILE.sub("X", captured.err)


def test_a_plain_scan_does_not_import_typer(models: Path) -> None:
    code = (
        "import sys\n"
        "from garrison.cli.main import main\n"
        f"code = main(['scan', {str(models)!r}, '--format', 'json', '--no-store', '--no-progress'])\n"
        "print(code, sorted(m for m in ('typer', 'click', 'rich', 'sqlalchemy') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert proc.stdout.strip().splitlines()[-1] == "1 []"


def test_a_command_name_builds_only_that_command_and_help_lists_all() -> None:
    import typer.main

    only = typer.main.get_command(build_app("keys"))
    every = typer.main.get_command(build_app())
    assert sorted(only.commands) == ["keys"]  # type: ignore[attr-defined]
    assert sorted(every.commands) == sorted(COMMANDS)  # type: ignore[attr-defined]


def test_data_commands_survive_many_runs_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        assert main(["data", "--help"]) == 0
        out = capsys.readouterr().out
        for command in ("bias", "labels", "backdoor"):
            assert command in out
