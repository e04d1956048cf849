"""Hugging Face cache folders: snapshot links are scanned under their names, each blob once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.config import Settings
from garrison.core.errors import UsageError
from garrison.detectors import default_registry
from garrison.engine.runner import scan_path
from garrison.formats.hfcache import find_snapshot, snapshot_blob

COMMIT = "a" * 40
OLD_COMMIT = "b" * 40
EVIL = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."


def _repo(cache: Path, files: dict[str, bytes], *, commit: str = COMMIT, name: str = "acme--tiny") -> Path:
    repo = cache / f"models--{name}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for rel, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


def _scan(path: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    report = scan_path(path, settings=Settings(store=False), registry=default_registry())
    rules: dict[str, set[str]] = {}
    for finding in report.findings:
        rules.setdefault(finding.asset.locator, set()).add(finding.rule.id)
    return rules, {s.locator: s.reason for s in report.skipped}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    _repo(root, {"config.json": b'{"model_type": "bert"}', "pytorch_model.bin": EVIL})
    return root


def test_a_cache_folder_reports_findings_under_snapshot_names_and_each_blob_once(cache: Path) -> None:
    rules, skipped = _scan(cache)
    located = f"models--acme--tiny/snapshots/{COMMIT}/pytorch_model.bin"
    assert "GAR-PKL-001" in rules[located]
    assert not any("blobs/" in locator for locator in rules)
    blob = f"models--acme--tiny/blobs/{hashlib.sha256(EVIL).hexdigest()}"
    assert skipped[blob] == f"Hugging Face blob, scanned as {located}"
    assert not any("GAR-SCAN-101" in ids for ids in rules.values())


def test_a_snapshot_folder_follows_its_links_into_blobs(cache: Path) -> None:
    rules, _ = _scan(cache / "models--acme--tiny" / "snapshots" / COMMIT)
    assert "GAR-PKL-001" in rules["pytorch_model.bin"]
    assert not any("GAR-SCAN-101" in ids for ids in rules.values())


def test_two_revisions_sharing_a_blob_scan_it_once(cache: Path) -> None:
    _repo(cache, {"pytorch_model.bin": EVIL}, commit=OLD_COMMIT)
    rules, skipped = _scan(cache / "models--acme--tiny")
    scanned = [loc for loc in rules if loc.endswith("pytorch_model.bin")]
    assert scanned == [f"snapshots/{COMMIT}/pytorch_model.bin"]
    assert skipped[f"snapshots/{OLD_COMMIT}/pytorch_model.bin"].startswith("same Hugging Face blob as")


def test_links_that_only_look_like_the_layout_are_not_followed(cache: Path, tmp_path: Path) -> None:
    snapshot = cache / "models--acme--tiny" / "snapshots" / COMMIT
    outside = tmp_path / "secret"
    outside.write_bytes(EVIL)
    os.symlink(outside, snapshot / "escape.bin")  # into no blobs folder
    stray = cache / "models--acme--tiny" / "stray.bin"  # not under snapshots/
    blob = cache / "models--acme--tiny" / "blobs" / hashlib.sha256(EVIL).hexdigest()
    os.symlink(os.path.relpath(blob, stray.parent), stray)
    assert snapshot_blob(snapshot / "escape.bin") is None
    assert snapshot_blob(stray) is None
    assert snapshot_blob(snapshot / "pytorch_model.bin") == blob
    rules, _ = _scan(snapshot)
    assert "GAR-SCAN-101" in rules["escape.bin"]
    assert "GAR-PKL-001" not in rules.get("escape.bin", set())


def test_find_snapshot_by_branch_commit_and_missing(cache: Path) -> None:
    expected = cache / "models--acme--tiny" / "snapshots" / COMMIT
    assert find_snapshot("acme/tiny", cache=cache) == expected
    assert find_snapshot("acme/tiny", revision=COMMIT, cache=cache) == expected
    with pytest.raises(UsageError) as missing_rev:
        find_snapshot("acme/tiny", revision="v9", cache=cache)
    assert COMMIT in (missing_rev.value.hint or "")
    with pytest.raises(UsageError) as missing_repo:
        find_snapshot("acme/other", cache=cache)
    assert "never downloads" in (missing_repo.value.hint or "")


def test_scan_model_resolves_a_repo_id_from_the_cache(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    code = main(["scan", "model", "acme/tiny", "--no-store", "--no-progress", "-f", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["run"]["target"] == f"hf://acme/tiny@{COMMIT}"
    assert {f["rule"]["id"] for f in report["findings"]} >= {"GAR-PKL-001"}
    assert main(["scan", "model", "acme/nothing", "--no-store", "--no-progress"]) == 2
    assert "in the local Hugging Face cache" in " ".join(capsys.readouterr().err.split())


def test_scan_model_selects_only_model_families(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.pkl").write_bytes(EVIL)
    assert main(["scan", "model", "m.pkl", "--no-store", "--no-progress", "-f", "json"]) == 1
    ids = {f["rule"]["id"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "GAR-PKL-001" in ids
    assert main(["scan", "model", "m.pkl", "extra", "--no-store"]) == 2
    assert "expected PATH, 'model TARGET' or 'data PATH'" in capsys.readouterr().err


def test_onnx_external_data_in_a_snapshot_is_not_a_symlink_escape(tmp_path: Path) -> None:
    from tests.supplychain.formats.builders import onnx_model, onnx_node, onnx_tensor

    model = onnx_model(
        [onnx_node("Relu")], initializers=[onnx_tensor("w", {"location": "model.onnx_data", "length": "8"})]
    )
    snapshot = _repo(tmp_path / "hub", {"model.onnx": model, "model.onnx_data": b"\x01" * 8})
    rules, _ = _scan(snapshot)
    assert not any(rule.startswith("GAR-ONNX") for ids in rules.values() for rule in ids)
    # A snapshot link that leaves the cache is still an escape.
    os.remove(snapshot / "model.onnx_data")
    outside = tmp_path / "secret"
    outside.write_bytes(b"secret!!")
    os.symlink(outside, snapshot / "model.onnx_data")
    rules, _ = _scan(snapshot)
    assert "GAR-ONNX-103" in rules["model.onnx"]
