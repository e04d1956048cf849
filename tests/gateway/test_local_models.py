"""Local models behind the gateway: served only when their signature verifies and their scan is
clean; refused at start otherwise (the gateway does not start)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import joblib
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.gateway.harness import UpstreamStub, base_config, http, running

from garrison.cli.main import main
from garrison.core.errors import ConfigError
from garrison.gateway.config import GatewayConfig
from garrison.gateway.server import Components


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model, public key, private key): an iris classifier signed with a fresh ECDSA key."""
    tmp = tmp_path_factory.mktemp("local")
    x, y = load_iris(return_X_y=True)
    model = tmp / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model)
    private = ec.generate_private_key(ec.SECP256R1())
    (tmp / "signing.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp / "signing.pub").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["sign", str(model), "--key", str(tmp / "signing.pem")]) == 0
    return model, tmp / "signing.pub", tmp / "signing.pem"


def _route(local: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "iris-local",
        "path": "/iris",
        "kind": "local",
        "local": local,
        "validation": {"features": {"shape": [None, 4], "min": 0, "max": 10}},
        "output": {"scorer": {"mode": "round", "decimals": 2}},
    }


def test_a_signed_clean_model_is_served_with_output_controls(
    signed_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, public, _ = signed_model
    upstream = UpstreamStub().start()
    try:
        config = base_config(upstream.port, tmp_path)
        config["routes"].append(_route({"path": str(model), "key": str(public)}))
        config["roles"]["scorer"]["allow"][0]["routes"].append("iris-local")
        with running(config, tmp_path, {"scorer": ["scorer"]}) as gateway:
            status, _, body = http(
                gateway.port, "POST", "/iris", body={"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
                key=gateway.keys["scorer"],
            )  # fmt: skip
            assert status == 200, body
            rows = json.loads(body)["predictions"]
            assert rows[0].index(max(rows[0])) == 0  # setosa
            assert rows[1].index(max(rows[1])) == 2  # virginica
            assert all(round(p, 2) == p for row in rows for p in row)
            status, _, _ = http(
                gateway.port, "POST", "/iris", body={"inputs": [[1, 2, 3]]}, key=gateway.keys["scorer"]
            )
            assert status == 422
    finally:
        upstream.stop()


def _components(tmp_path: Path, local: dict[str, Any]) -> Components:
    config = GatewayConfig.model_validate(
        {
            "db": str(tmp_path / "gw.db"),
            "audit": {"journal_dir": str(tmp_path / "audit")},
            "routes": [_route(local)],
        }
    )
    return Components(config)


def test_an_unsigned_model_is_refused(signed_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, public, _ = signed_model
    copy = tmp_path / "unsigned.joblib"
    copy.write_bytes(model.read_bytes())
    with pytest.raises(ConfigError, match="was not loaded"):
        _components(tmp_path, {"path": str(copy), "key": str(public)})


def test_a_model_changed_after_signing_is_refused(
    signed_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, public, _ = signed_model
    changed = tmp_path / "iris.joblib"
    changed.write_bytes(model.read_bytes() + b"\x00")
    (tmp_path / "iris.joblib.sig").write_bytes(Path(str(model) + ".sig").read_bytes())
    with pytest.raises(ConfigError, match="was not loaded"):
        _components(tmp_path, {"path": str(changed), "key": str(public)})


def test_a_signed_model_with_hidden_code_is_refused(
    signed_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, public, private = signed_model

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload()))
    assert main(["sign", str(evil), "--key", str(private)]) == 0  # signed by a trusted key, still refused
    with pytest.raises(ConfigError, match="was not loaded"):
        _components(tmp_path, {"path": str(evil), "key": str(public)})


def test_local_routes_need_features_and_no_upstream(tmp_path: Path) -> None:
    from pydantic import ValidationError

    bad = _route({"path": "m.joblib"})
    bad["upstream"] = "http://127.0.0.1:1"
    with pytest.raises(ValidationError, match="kind local needs"):
        GatewayConfig.model_validate({"routes": [bad]})
    bad = _route({"path": "m.joblib"})
    del bad["validation"]
    with pytest.raises(ValidationError, match=r"needs validation\.features"):
        GatewayConfig.model_validate({"routes": [bad]})
