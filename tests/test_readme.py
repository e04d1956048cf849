"""The README's examples work as written."""

from __future__ import annotations

import re
from pathlib import Path

from garrison.core import Asset, AssetKind, FileTarget, Registry

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_detector_example_registers_and_runs(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # our own documentation, not user input
    detector = namespace["LargePickle"]
    registry = Registry()
    registry.add(detector)  # type: ignore[arg-type]
    path = tmp_path / "big.pkl"
    path.write_bytes(b"\x80\x04N.")
    small = FileTarget(
        path=path,
        asset=Asset(kind=AssetKind.FILE, locator="big.pkl", size=4, format="pickle"),
        head=b"\x80\x04N.",
    )
    big = FileTarget(
        path=path,
        asset=Asset(kind=AssetKind.FILE, locator="big.pkl", size=2**31, format="pickle"),
        head=b"\x80\x04N.",
    )
    instance = detector()  # type: ignore[operator]
    assert list(instance.scan(small)) == []
    (finding,) = instance.scan(big)
    assert finding.rule.id == "GAR-EXA-001"


def test_every_command_in_the_cli_reference_exists() -> None:
    from garrison.cli.main import main

    text = README.read_text()
    for command in sorted(set(re.findall(r"^garrison ([a-z]+(?: [a-z]+)?)", text, flags=re.MULTILINE))):
        words = command.split()
        if words[0] in {"rules", "config", "audit"} and len(words) == 2:
            args = [*words, "--help"]
        else:
            args = [words[0], "--help"]
        assert main(args) == 0, command
