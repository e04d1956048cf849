"""``garrison encrypt | decrypt | rewrap`` and ``garrison kek``, through a Typer app built here.

``garrison.cli.main`` registers these commands; building the app in the test keeps the tests
independent of that registration and checks the commands' own behaviour and exit codes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from garrison.cli import crypt
from garrison.core.errors import GarrisonError


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("encrypt")(crypt.encrypt)
    app.command("decrypt")(crypt.decrypt)
    app.command("rewrap")(crypt.rewrap)
    app.add_typer(crypt.kek_app, name="kek")
    return app


def run(*args: str) -> int:
    """Run a command the way ``garrison.cli.main.main`` does: a GarrisonError becomes its exit code."""
    result = CliRunner().invoke(make_app(), list(args))
    if isinstance(result.exception, GarrisonError):
        return result.exception.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.bin").write_bytes(os.urandom(10_000))
    return tmp_path


def test_encrypt_decrypt_with_a_key_file(workdir: Path) -> None:
    assert run("kek", "generate", "kek") == 0
    assert (workdir / "kek").stat().st_mode & 0o777 == 0o600
    assert run("encrypt", "model.bin", "--key-file", "kek", "--chunk-size", "4096") == 0
    assert (workdir / "model.bin.gar").read_bytes().startswith(b"GARENC\x01")
    (workdir / "original").write_bytes((workdir / "model.bin").read_bytes())
    (workdir / "model.bin").unlink()
    assert run("decrypt", "model.bin.gar", "--key-file", "kek") == 0
    assert (workdir / "model.bin").read_bytes() == (workdir / "original").read_bytes()


def test_exit_codes(workdir: Path) -> None:
    run("kek", "generate", "kek")
    run("kek", "generate", "other")
    assert run("encrypt", "model.bin", "--key-file", "kek") == 0
    assert run("encrypt", "model.bin", "--key-file", "kek") == 2  # output exists, no --force
    assert run("encrypt", "model.bin", "--key-file", "kek", "--force") == 0
    assert run("encrypt", "model.bin") == 2  # no key named
    assert run("encrypt", "model.bin", "--key-file", "kek", "--key-env", "X") == 2  # two keys
    assert run("decrypt", "model.bin.gar", "-o", "plain", "--key-file", "other") == 1  # wrong key
    blob = bytearray((workdir / "model.bin.gar").read_bytes())
    blob[-5] ^= 1
    (workdir / "tampered.gar").write_bytes(bytes(blob))
    assert run("decrypt", "tampered.gar", "--key-file", "kek") == 1
    assert not (workdir / "tampered").exists()
    assert run("decrypt", "model.bin", "-o", "x", "--key-file", "kek") == 3  # not encrypted
    assert not (workdir / "plain").exists()


def test_env_key_and_rewrap(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("kek", "generate", "old")
    run("kek", "generate", "new")
    monkeypatch.setenv("OLD_KEK", (workdir / "old").read_text())
    assert run("encrypt", "model.bin", "--key-env", "OLD_KEK", "-o", "m.gar") == 0
    assert run("rewrap", "m.gar", "--from", "env:OLD_KEK", "--to", "file:new") == 0
    assert run("decrypt", "m.gar", "-o", "a", "--key-file", "old") == 1
    assert run("decrypt", "m.gar", "-o", "b", "--key", "file:new") == 0
    assert (workdir / "b").read_bytes() == (workdir / "model.bin").read_bytes()


def test_keyring_rotation(workdir: Path) -> None:
    assert run("kek", "rotate", "ring") == 0
    assert run("encrypt", "model.bin", "--keyring", "ring") == 0
    assert run("kek", "rotate", "ring") == 0
    assert run("rewrap", "model.bin.gar", "--from", "keyring:ring") == 0
    (workdir / "ring" / "v1.key").unlink()
    assert run("decrypt", "model.bin.gar", "-o", "plain", "--keyring", "ring") == 0
    assert (workdir / "plain").read_bytes() == (workdir / "model.bin").read_bytes()


def test_group_readable_key_file_is_refused(workdir: Path) -> None:
    run("kek", "generate", "kek")
    (workdir / "kek").chmod(0o640)
    assert run("encrypt", "model.bin", "--key-file", "kek") == 2
    assert not (workdir / "model.bin.gar").exists()


def test_help_has_examples() -> None:
    for command in ("encrypt", "decrypt", "rewrap"):
        result = CliRunner().invoke(make_app(), [command, "--help"])
        assert result.exit_code == 0
        assert "Examples:" in result.output
        assert "Exit codes:" in result.output


def test_progress_bar_for_large_files(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(crypt.sys.stderr, "isatty", lambda: True)
    with crypt._bar("encrypting", 100 << 20) as progress:
        assert progress is not None
        progress(1 << 20)
        seen.append(1)
    with crypt._bar("encrypting", 1 << 20) as progress:
        assert progress is None
    assert seen == [1]
