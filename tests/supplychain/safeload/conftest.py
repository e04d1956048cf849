"""Shared fixtures: the generated samples (built once per session), a file writer, the CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.cli.main import main

EXTENSIONS = {
    "pickle": ".pkl",
    "joblib": ".joblib",
    "pytorch-zip": ".pt",
    "pytorch-legacy": ".pt",
}


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """Write bytes to a file in the test's directory and return its path."""

    def put(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return put


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run ``garrison`` in-process with no configuration from the host."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("GARRISON_"):
            monkeypatch.delenv(key)

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
