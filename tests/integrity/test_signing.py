"""Signing and verification in the OpenSSF model-signing format, and tamper detection."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.core.errors import InputError, UsageError
from garrison.integrity.bundle import (
    CertificateTrust,
    KeyTrust,
    Signer,
    load_certificates,
    load_public_key,
    pae,
    parse_statement,
    read_bundle,
)
from garrison.integrity.signing import sign_path, verify_path
from garrison.integrity.verify_report import verification_findings

from .conftest import KeyPair, Pki

MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    """The real OpenSSF tool (model-signing 1.1.1, with pyOpenSSL beside it), offline."""
    if not MODEL_SIGNING.exists():
        pytest.fail(f"{MODEL_SIGNING} is missing: install garrison[dev] (it pins model-signing)")
    return subprocess.run(
        [str(MODEL_SIGNING), *args], capture_output=True, text=True, timeout=120, check=False
    )


def key_sign(model: Path, pair: KeyPair, **kwargs: object) -> Path:
    signer = Signer.from_files(pair.private)
    return sign_path(model, signer, **kwargs).signature  # type: ignore[arg-type]


def check(model: Path, sig: Path, pair: KeyPair):  # type: ignore[no-untyped-def]
    return verify_path(model, sig, KeyTrust(load_public_key(pair.public)))


# ---------------------------------------------------------------- interoperability


@pytest.mark.parametrize("curve", ["p256", "p384"])
def test_garrison_signature_verifies_with_model_signing(
    model: Path, keys: Callable[[str], KeyPair], curve: str
) -> None:
    pair = keys(curve)
    sig = key_sign(model, pair)
    assert sig == model.with_name("model.sig")
    done = model_signing(
        "verify", "key", str(model), "--signature", str(sig), "--public_key", str(pair.public)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (model / "config.json").write_text('{"layers": 3}\n')
    done = model_signing(
        "verify", "key", str(model), "--signature", str(sig), "--public_key", str(pair.public)
    )
    assert done.returncode != 0
    assert "config.json" in done.stdout + done.stderr


def test_model_signing_signature_verifies_with_garrison(
    model: Path, keys: Callable[[str], KeyPair], tmp_path: Path
) -> None:
    pair = keys("p256")
    sig = tmp_path / "theirs.sig"
    done = model_signing(
        "sign", "key", str(model), "--private_key", str(pair.private), "--signature", str(sig)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = check(model, sig, pair)
    assert result.ok, result
    assert result.diff is not None
    assert result.diff.unchanged == 4
    (model / "weights.bin").write_bytes(b"swapped")
    result = check(model, sig, pair)
    assert not result.ok
    assert result.diff is not None
    assert [c.path for c in result.diff.changed] == ["weights.bin"]


def test_sharded_signature_interoperates(model: Path, keys: Callable[[str], KeyPair], tmp_path: Path) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair, shard_size=65_536)
    statement = parse_statement(read_bundle(sig.read_bytes()).payload)
    assert statement.method == "shards"
    assert "weights.bin:131072:196608" in {r.name for r in statement.resources}
    # model_signing's command line always rehashes as whole files; its library reads the shard size
    # from the signature, as a verifier of shard signatures must
    script = (
        "import sys, model_signing\n"
        "model_signing.verifying.Config().use_elliptic_key_verifier(public_key=sys.argv[1])"
        ".verify(sys.argv[2], sys.argv[3])\n"
    )
    python = MODEL_SIGNING.with_name("python")
    done = subprocess.run(
        [str(python), "-c", script, str(pair.public), str(model), str(sig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # flip one byte in the third shard: only that byte range is reported
    data = bytearray((model / "weights.bin").read_bytes())
    data[140_000] ^= 0xFF
    (model / "weights.bin").write_bytes(bytes(data))
    result = check(model, sig, pair)
    assert result.diff is not None
    (change,) = result.diff.changed
    assert change.path == "weights.bin"
    assert change.ranges == ((131_072, 196_608),)


def test_certificate_chains_interoperate(model: Path, pki: Pki, tmp_path: Path) -> None:
    signer = Signer.from_files(pki.leaf_key, certificate=pki.leaf_cert, chain=[pki.intermediate])
    sig = sign_path(model, signer, signature=tmp_path / "cert.sig").signature
    trust = CertificateTrust(tuple(load_certificates([pki.root])))
    result = verify_path(model, sig, trust)
    assert result.ok
    assert result.signer is not None
    assert "Model Publisher" in result.signer
    done = model_signing(
        "verify", "certificate", str(model), "--signature", str(sig), "--certificate_chain", str(pki.root)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    theirs = tmp_path / "theirs.sig"
    done = model_signing(
        "sign",
        "certificate",
        str(model),
        "--private_key",
        str(pki.leaf_key),
        "--signing_certificate",
        str(pki.leaf_cert),
        "--certificate_chain",
        str(pki.intermediate),
        "--signature",
        str(theirs),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert verify_path(model, theirs, trust).ok
    untrusted = verify_path(model, theirs, CertificateTrust(tuple(load_certificates([pki.other_root]))))
    assert untrusted.failure is not None
    assert "does not chain to a trusted certificate" in untrusted.failure


# ---------------------------------------------------------------- keys and signatures


def test_ed25519_round_trip(model: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("ed25519")
    sig = key_sign(model, pair)
    result = check(model, sig, pair)
    assert result.ok
    assert result.signer is not None
    assert result.signer.startswith("Ed25519")


def test_wrong_key_is_named(model: Path, keys: Callable[[str], KeyPair]) -> None:
    sig = key_sign(model, keys("p256"))
    result = check(model, sig, keys("p256"))
    assert result.failure is not None
    assert "different key" in result.failure
    (finding,), _ = verification_findings(result, label="model")
    assert finding.rule.id == "GAR-INT-001"


def test_altered_payload_fails_the_signature(model: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair)
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))
    result = check(model, sig, pair)
    assert result.failure is not None
    assert "altered or forged" in result.failure


def test_signature_covers_the_dsse_encoding() -> None:
    assert pae(b"{}") == b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope is missing"),
        (lambda b: b.update(mediaType="x"), "media type"),
        (lambda b: b["dsseEnvelope"].update(payload="***"), "not valid base64"),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "expected one DSSE signature"),
        (lambda b: b["verificationMaterial"].update(tlogEntries=[{}]), "keyless Sigstore"),
    ],
)
def test_malformed_bundles_are_named(
    model: Path, keys: Callable[[str], KeyPair], mutate: Callable[[dict[str, object]], object], message: str
) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair)
    bundle = json.loads(sig.read_text())
    mutate(bundle)
    sig.write_text(json.dumps(bundle))
    result = check(model, sig, pair)
    assert result.failure is not None
    assert message in result.failure


def test_statement_checks_names_and_root_digest() -> None:
    def payload(resources: list[dict[str, str]], root: str) -> bytes:
        return json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "m", "digest": {"sha256": root}}],
                "predicateType": "https://model_signing/signature/v1.0",
                "predicate": {
                    "serialization": {"method": "files", "hash_type": "sha256"},
                    "resources": resources,
                },
            }
        ).encode()

    import hashlib

    digest = "ab" * 32
    root = hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    assert parse_statement(payload([{"name": "a", "algorithm": "sha256", "digest": digest}], root)).resources
    with pytest.raises(InputError, match="not a relative path"):
        parse_statement(payload([{"name": "../etc/passwd", "algorithm": "sha256", "digest": digest}], root))
    with pytest.raises(InputError, match="subject digest does not match"):
        parse_statement(payload([{"name": "a", "algorithm": "sha256", "digest": digest}], "00" * 32))


def test_certificate_without_signing_usage_is_refused(model: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from .conftest import _pem, make_cert, write_key

    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _pem(tmp_path / "r.crt", make_cert("R", root_key, "R", root_key, ca=True))
    leaf = _pem(tmp_path / "l.crt", make_cert("L", leaf_key, "R", root_key, ca=False, can_sign=False))
    signer = Signer.from_files(write_key(tmp_path, "l", leaf_key).private, certificate=leaf)
    sig = sign_path(model, signer).signature
    result = verify_path(model, sig, CertificateTrust(tuple(load_certificates([root]))))
    assert result.failure is not None
    assert "not allowed to sign" in result.failure


def test_key_and_certificate_must_match(pki: Pki, keys: Callable[[str], KeyPair]) -> None:
    with pytest.raises(UsageError, match="not the public half"):
        Signer.from_files(keys("p256").private, certificate=pki.leaf_cert)


def test_unsupported_key_type(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UsageError, match="RSA"):
        Signer.from_files(path)


# ---------------------------------------------------------------- tampering


def _changes(model: Path, sig: Path, pair: KeyPair) -> tuple[list[str], list[str], list[str], list[str]]:
    result = check(model, sig, pair)
    assert result.failure is None
    assert result.diff is not None
    assert not result.ok
    return (
        [c.path for c in result.diff.changed],
        list(result.diff.added),
        list(result.diff.removed),
        [f"{p.path}:{p.kind}" for p in result.problems],
    )


def _append(p: Path) -> None:
    with p.open("ab") as handle:
        handle.write(b" ")


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda m: _flip(m / "weights.bin"), (["weights.bin"], [], [], [])),
        (lambda m: _append(m / "config.json"), (["config.json"], [], [], [])),
        (lambda m: os.truncate(m / "weights.bin", 1000), (["weights.bin"], [], [], [])),
        (lambda m: (m / "empty").write_bytes(b"x"), (["empty"], [], [], [])),
        (
            lambda m: (m / "config.json").rename(m / "config2.json"),
            ([], ["config2.json"], ["config.json"], []),
        ),
        (
            lambda m: (m / "tokenizer" / "extra.py").write_text("import os\n"),
            ([], ["tokenizer/extra.py"], [], []),
        ),
        (lambda m: (m / "tokenizer" / "vocab.txt").unlink(), ([], [], ["tokenizer/vocab.txt"], [])),
        (
            lambda m: ((m / "config.json").unlink(), (m / "config.json").symlink_to("/etc/hostname")),
            ([], [], ["config.json"], ["config.json:symlink-escapes-tree"]),
        ),
        (
            lambda m: ((m / "config.json").unlink(), (m / "config.json").symlink_to("tokenizer/vocab.txt")),
            ([], [], ["config.json"], ["config.json:symlink-not-allowed"]),
        ),
    ],
    ids=[
        "flip-byte",
        "append",
        "truncate",
        "empty-file-filled",
        "rename",
        "add",
        "delete",
        "symlink-out",
        "symlink-in",
    ],
)
def test_every_kind_of_tampering_is_reported(
    model: Path,
    keys: Callable[[str], KeyPair],
    tamper: Callable[[Path], object],
    expected: tuple[list[str], ...],
) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair)
    assert check(model, sig, pair).ok
    tamper(model)
    assert _changes(model, sig, pair) == expected


def test_findings_name_each_change(model: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair)
    _flip(model / "weights.bin")
    (model / "new.txt").write_text("x")
    (model / "config.json").unlink()
    findings, _ = verification_findings(check(model, sig, pair), label="model")
    assert sorted((f.rule.id, f.location.member) for f in findings) == [
        ("GAR-INT-101", "weights.bin"),
        ("GAR-INT-102", "new.txt"),
        ("GAR-INT-103", "config.json"),
    ]


def test_signing_fails_closed_on_unsafe_paths(model: Path, keys: Callable[[str], KeyPair]) -> None:
    (model / "leak").symlink_to("/etc/hostname")
    with pytest.raises(UsageError, match=r"leak: .*outside"):
        key_sign(model, keys("p256"))
    assert not model.with_name("model.sig").exists()
    sig = key_sign(model, keys("p256"), ignore=["leak"])
    assert sig.exists()


def test_signature_inside_the_tree_is_left_out(model: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair, signature=model / "model.sig")
    assert check(model, sig, pair).ok


def test_single_file_signature(tmp_path: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("p256")
    file = tmp_path / "weights.safetensors"
    file.write_bytes(os.urandom(5000))
    sig = key_sign(file, pair)
    assert sig.name == "weights.safetensors.sig"
    assert [r.name for r in parse_statement(read_bundle(sig.read_bytes()).payload).resources] == ["."]
    assert check(file, sig, pair).ok
    done = model_signing(
        "verify", "key", str(file), "--signature", str(sig), "--public_key", str(pair.public)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _flip(file)
    result = check(file, sig, pair)
    assert result.diff is not None
    assert [c.path for c in result.diff.changed] == ["weights.safetensors"]


def test_blake3_signature(model: Path, keys: Callable[[str], KeyPair]) -> None:
    pair = keys("p256")
    sig = key_sign(model, pair, algorithm="blake3")
    assert parse_statement(read_bundle(sig.read_bytes()).payload).hash_type == "blake3"
    assert check(model, sig, pair).ok
    shutil.copy(model / "config.json", model / "copy.json")
    assert not check(model, sig, pair).ok


def test_dataset_changes_are_reported_as_rows(tmp_path: Path, keys: Callable[[str], KeyPair]) -> None:
    import random

    pair = keys("p256")
    data = tmp_path / "data"
    data.mkdir()
    rng = random.Random(7)
    lines = ["id,text,label"] + [
        f"{i},sample {rng.randrange(10**9)},{rng.choice('ab')}" for i in range(60_000)
    ]
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    (data / "small.csv").write_text("a,b\n1,2\n")
    signer = Signer.from_files(pair.private)
    signed = sign_path(data, signer)
    assert signed.chunked == ("train.csv",)  # small files need no row-level digests
    lines[30_001] = "30000,POISONED,b"
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    result = check(data, signed.signature, pair)
    assert result.diff is not None
    assert [c.path for c in result.diff.changed] == ["train.csv"]
    rows = result.rows["train.csv"]
    first, last = (int(x.replace(",", "")) for x in rows.split("rows ")[-1].split(" changed")[0].split("–"))
    assert first <= 30_001 < last
    assert last - first < 5_000  # a region around the edit, not the whole file
    # model-signing ignores the extra predicate field and still verifies the signature
    (data / "train.csv").write_text("\n".join([*lines[:30001], "30000,x,a", *lines[30002:]]) + "\n")
    sig = sign_path(data, signer).signature
    done = model_signing(
        "verify", "key", str(data), "--signature", str(sig), "--public_key", str(pair.public)
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_row_digests_without_the_data_extra(
    tmp_path: Path, keys: Callable[[str], KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.core.errors import MissingExtraError

    data = tmp_path / "data"
    data.mkdir()
    (data / "big.csv").write_text("".join(f"{i},{i * 7}\n" for i in range(200_000)))
    signer = Signer.from_files(keys("p256").private)
    monkeypatch.setitem(sys.modules, "numpy", None)  # what a core install without numpy sees
    signed = sign_path(data, signer)  # auto: the signature is still made, without row digests
    assert signed.chunked == ()
    assert "garrison[data]" in signed.notes[0]
    with pytest.raises(MissingExtraError):
        sign_path(data, signer, chunks="always")
