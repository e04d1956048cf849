"""``garrison sign | verify | watch`` end to end: exit codes, formats, findings and events in the store."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.integrity.bundle import KeyTrust, load_public_key
from garrison.integrity.gate import IntegrityError, SignaturePolicy, find_signature, verify_before_load
from garrison.integrity.watch import Cycle, watch
from garrison.store import Store

from .conftest import KeyPair


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("GARRISON_"):
            monkeypatch.delenv(key)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def test_sign_then_verify_then_tamper(
    run: Callable[..., tuple[int, str, str]], model: Path, keys: Callable[[str], KeyPair], tmp_path: Path
) -> None:
    pair = keys("p256")
    code, out, _ = run("sign", str(model), "--key", str(pair.private))
    assert code == 0
    assert "signed 4 file(s)" in out
    db = str(tmp_path / "store.db")
    code, out, _ = run("verify", str(model), "--key", str(pair.public), "--db", db)
    assert code == 0
    assert "OK: every file matches" in out
    (model / "weights.bin").write_bytes(b"replaced")
    (model / "tokenizer" / "vocab.txt").unlink()
    code, out, _ = run("verify", str(model), "--key", str(pair.public), "--db", db, "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert sorted(f["rule"]["id"] for f in report["findings"]) == ["GAR-INT-101", "GAR-INT-103"]
    with Store.open(f"sqlite:///{db}") as store:
        kinds = [r.event.type for r in store.event_records()]
        assert "integrity.verify.passed" in kinds
        assert "integrity.verify.failed" in kinds
        assert store.verify_events().intact


def test_verify_formats_and_usage_errors(
    run: Callable[..., tuple[int, str, str]], model: Path, keys: Callable[[str], KeyPair], tmp_path: Path
) -> None:
    pair = keys("p256")
    assert run("sign", str(model), "--key", str(pair.private), "--format", "json")[0] == 0
    (model / "config.json").write_text("{}")
    code, out, _ = run("verify", str(model), "--key", str(pair.public), "--no-store", "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    assert sarif["runs"][0]["results"][0]["ruleId"] == "GAR-INT-101"
    # exactly one trust anchor
    assert run("verify", str(model), "--no-store")[0] == 2
    assert (
        run("verify", str(model), "--no-store", "--key", str(pair.public), "--cert", str(pair.public))[0] == 2
    )
    # a missing signature file is a usage error, not a pass
    code, _, err = run(
        "verify", str(model), "--no-store", "--key", str(pair.public), "--signature", "nope.sig"
    )
    assert code == 2
    assert "cannot read the signature nope.sig" in err
    # a bad key file is named
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    code, _, err = run("sign", str(model), "--key", str(bad))
    assert code == 2
    assert "bad.pem: not a PEM private key" in err


def test_encrypted_key_needs_its_password(
    run: Callable[..., tuple[int, str, str]],
    model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "locked.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    code, _, err = run("sign", str(model), "--key", str(path))
    assert code == 2
    assert "encrypted" in err
    monkeypatch.setenv("SIGNING_PASSWORD", "s3cret")
    assert run("sign", str(model), "--key", str(path), "--password-env", "SIGNING_PASSWORD")[0] == 0
    assert "s3cret" not in model.with_name("model.sig").read_text()


def test_watch_once_for_cron(
    run: Callable[..., tuple[int, str, str]], model: Path, keys: Callable[[str], KeyPair], tmp_path: Path
) -> None:
    pair = keys("p256")
    run("sign", str(model), "--key", str(pair.private), "--signature", str(tmp_path / "baseline.sig"))
    db = str(tmp_path / "w.db")
    args = (
        "watch",
        str(model),
        "--baseline",
        str(tmp_path / "baseline.sig"),
        "--key",
        str(pair.public),
        "--db",
        db,
    )
    assert run(*args)[0] == 0
    (model / "dropped.py").write_text("print('hi')\n")
    code, out, _ = run(*args, "--format", "json")
    assert code == 1
    line = json.loads(out.splitlines()[0])
    assert line["added"] == ["dropped.py"]
    assert line["ok"] is False
    with Store.open(f"sqlite:///{db}") as store:
        kinds = [r.event.type for r in store.event_records()]
    assert kinds.count("integrity.watch.clean") == 1
    assert kinds.count("integrity.watch.changed") == 1


def test_periodic_watch_reports_transitions_once(model: Path, keys: Callable[[str], KeyPair]) -> None:
    from garrison.integrity.bundle import Signer
    from garrison.integrity.signing import sign_path

    pair = keys("p256")
    sig = sign_path(model, Signer.from_files(pair.private)).signature
    trust = KeyTrust(load_public_key(pair.public))
    seen: list[Cycle] = []

    def on_cycle(cycle: Cycle) -> None:
        seen.append(cycle)
        if cycle.number == 2:
            (model / "new.bin").write_bytes(b"x")
        if cycle.number == 4:
            (model / "new.bin").unlink()

    cycles = watch(model, sig, trust, interval=0.01, count=6, on_cycle=on_cycle)
    assert [c.result.ok for c in cycles] == [True, True, False, False, True, True]
    assert [c.changed_state for c in cycles] == [True, False, True, False, True, False]


def test_a_deleted_tree_is_every_file_removed(model: Path, keys: Callable[[str], KeyPair]) -> None:
    from garrison.integrity.bundle import Signer
    from garrison.integrity.signing import sign_path, verify_path

    pair = keys("p256")
    sig = sign_path(model, Signer.from_files(pair.private)).signature
    shutil.rmtree(model)
    result = verify_path(model, sig, KeyTrust(load_public_key(pair.public)))
    assert not result.ok
    assert result.diff is not None
    assert result.diff.removed == ("config.json", "empty", "tokenizer/vocab.txt", "weights.bin")


def test_periodic_watch_stops_on_request(model: Path, keys: Callable[[str], KeyPair]) -> None:
    from garrison.integrity.bundle import Signer
    from garrison.integrity.signing import sign_path

    pair = keys("p256")
    sig = sign_path(model, Signer.from_files(pair.private)).signature
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    cycles = watch(
        model, sig, KeyTrust(load_public_key(pair.public)), interval=60, on_cycle=lambda c: None, stop=stop
    )
    assert len(cycles) == 1
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------- verify_before_load


def test_verify_before_load_policy(model: Path, keys: Callable[[str], KeyPair], tmp_path: Path) -> None:
    from garrison.integrity.bundle import Signer
    from garrison.integrity.signing import sign_path

    pair = keys("p256")
    weights = model / "weights.bin"
    policy = SignaturePolicy(require=True, key=pair.public)
    with pytest.raises(IntegrityError, match="none was found"):
        verify_before_load(weights, policy)
    assert verify_before_load(weights, SignaturePolicy(require=False)) is None
    sig = sign_path(model, Signer.from_files(pair.private)).signature
    assert find_signature(weights) == (sig, model.absolute())
    assert verify_before_load(weights, policy) is not None  # a file of a signed directory
    assert verify_before_load(model, policy) is not None  # the directory itself
    other = keys("p256")
    with pytest.raises(IntegrityError, match="different key"):
        verify_before_load(weights, SignaturePolicy(require=True, key=other.public))
    with pytest.raises(IntegrityError, match="differs from the digest"):
        verify_before_load(weights, policy, digest="sha256:" + "0" * 64)
    weights.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="differs from the digest"):
        verify_before_load(weights, policy)
    with pytest.raises(IntegrityError, match="does not match its signature"):
        verify_before_load(model, policy)
    # an unsigned file next to signed ones is not covered
    (model / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="not covered by the signature"):
        verify_before_load(model / "extra.bin", policy)
