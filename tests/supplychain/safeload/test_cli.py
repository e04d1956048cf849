"""``garrison load``: exit codes, the summary, refusals on stderr and as JSON."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.supplychain.malicious import call, p4, sg
from tests.supplychain.safeload.conftest import Result

Cli = Callable[..., Result]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from tests.supplychain.safeload.models import TinyNet

    path = tmp_path / "weights.pt"
    torch.save(TinyNet().state_dict(), path)
    return path


@pytest.fixture
def whole_module(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from tests.supplychain.safeload.models import TinyNet

    path = tmp_path / "model.pt"
    torch.save(TinyNet(), path)
    return path


def test_a_state_dict_is_loaded_and_summarised(cli: Cli, checkpoint: Path) -> None:
    result = cli("load", str(checkpoint))
    assert result.code == 0, result.err
    assert "Loaded weights.pt: PyTorch zip checkpoint" in result.out
    assert "collections.OrderedDict with 2 entries" in result.out
    assert "8 elements" in result.out  # Linear(3, 2): 6 weights and 2 biases
    lines = result.out.splitlines()
    assert any(line.split() == ["fc.weight", "Tensor", "2×3", "torch.float32"] for line in lines)
    assert any(line.split() == ["fc.bias", "Tensor", "2", "torch.float32"] for line in lines)


def test_json_output_describes_what_was_loaded(cli: Cli, checkpoint: Path) -> None:
    result = cli("load", str(checkpoint), "--format", "json", "--rows", "1")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["loaded"] is True
    assert report["format"] == "pytorch-zip"
    assert report["digest"].startswith("sha256:")
    assert (report["entries"], report["arrays"], report["elements"], report["bytes"]) == (2, 2, 8, 32)
    assert report["shown"] == [
        {"key": "fc.weight", "type": "Tensor", "shape": [2, 3], "dtype": "torch.float32"}
    ]
    assert report["signature_verified"] is False


def test_a_whole_module_is_refused_with_the_global_named(cli: Cli, whole_module: Path) -> None:
    from tests.supplychain.safeload.models import TINYNET

    result = cli("load", str(whole_module))
    assert result.code == 1
    assert result.out == ""
    assert "refused to load" in result.err
    assert "GAR-PKL-002" in result.err
    assert TINYNET in result.err
    assert f"--allow {TINYNET}" in result.err
    assert "Traceback" not in result.err


def test_allow_loads_a_trusted_class(cli: Cli, whole_module: Path) -> None:
    from tests.supplychain.safeload.models import TINYNET

    result = cli("load", str(whole_module), "--allow", TINYNET)
    assert result.code == 0, result.err
    assert f"Type: {TINYNET} with 2 entries" in result.out


def test_a_refusal_as_json(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(p4(call(sg("os", "system"), f"touch {tmp_path / 'CANARY'}")))
    result = cli("load", str(path), "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["loaded"] is False
    assert "GAR-PKL-001" in report["rules"]
    assert report["refused_globals"] == ["os.system"]
    assert {f["severity"] for f in report["findings"]} >= {"critical"}
    assert "refused to load" in result.err
    assert not (tmp_path / "CANARY").exists()


def test_a_required_signature_without_trust_refuses(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert cli("load", str(path)).code == 0
    result = cli("load", str(path), "--require-signature")
    assert result.code == 1
    assert "no trusted key or certificate is configured" in result.err
    # The same policy from the configuration file: fail closed.
    (tmp_path / "garrison.toml").write_text("require-signature = true\n")
    from_policy = cli("load", str(path))
    assert from_policy.code == 1
    assert "no trusted key or certificate is configured" in from_policy.err


def test_load_verifies_the_signature_of_the_enclosing_directory(cli: Cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "k.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    model = tmp_path / "model"
    model.mkdir()
    path = model / "ok.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert cli("load", str(path), "--key", str(tmp_path / "k.pub")).code == 1  # no signature yet
    assert cli("sign", str(model), "--key", str(tmp_path / "k.pem")).code == 0
    loaded = cli("load", str(path), "--key", str(tmp_path / "k.pub"), "--format", "json")
    assert loaded.code == 0, loaded.err
    assert json.loads(loaded.out)["signature_verified"] is True
    path.write_bytes(pickle.dumps({"a": 2}))
    refused = cli("load", str(path), "--key", str(tmp_path / "k.pub"))
    assert refused.code == 1
    assert "differs from the digest signed in" in refused.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--allow", "os.system"], 2, "cannot be trusted"),
        (["--format", "pdf"], 2, "console or json"),
    ],
)
def test_usage_errors(cli: Cli, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps([1]))
    result = cli("load", str(path), *args)
    assert result.code == code
    assert message in result.err


def test_missing_paths_and_unsupported_formats(cli: Cli, tmp_path: Path) -> None:
    missing = cli("load", str(tmp_path / "nope.pt"))
    assert missing.code == 2
    assert "path not found" in missing.err
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    unsupported = cli("load", str(text))
    assert unsupported.code == 3
    assert "safe loading handles" in unsupported.err


def test_plain_data_and_arrays(cli: Cli, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "a.npy"
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 5), dtype=np.float32))
    path.write_bytes(buf.getvalue())
    result = cli("load", str(path))
    assert result.code == 0, result.err
    assert "Type: numpy.ndarray; 1 tensor(s)/array(s), 20 elements, 80 B" in result.out


def test_help_has_examples_and_the_command_is_listed(cli: Cli) -> None:
    helped = cli("load", "--help")
    assert helped.code == 0
    assert "Examples:" in helped.out
    assert "garrison load checkpoint.pt --allow mypkg.models.Net" in helped.out
    assert "--require-signature" in helped.out
    assert "load" in cli("--help").out
