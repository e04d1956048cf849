from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run ``garrison`` in-process with a private store and no configuration from the host."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("GARRISON_"):
            monkeypatch.delenv(key)
    db = str(tmp_path / "store.db")

    def run(*args: str, with_db: bool = True) -> Result:
        argv = list(args)
        if with_db and argv and argv[0] in {"scan", "findings", "report", "runs", "audit"}:
            argv += ["--db", db]
        code = main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project: a clean CSV, a harmless pickle disguised as safetensors, a truncated pickle."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "data" / "train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    (root / "models" / "weights.safetensors").write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    (root / "models" / "broken.pkl").write_bytes(pickle.dumps(list(range(50)), protocol=4)[:-7])
    return root


def run_garrison(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``garrison`` as a real process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "garrison", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
