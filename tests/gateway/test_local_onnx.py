"""ONNX models on ``kind: local`` routes: served only when signed and clean, refused at start otherwise."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from onnx import TensorProto, helper, numpy_helper

from garrison.cli.main import main
from garrison.core.errors import ConfigError
from garrison.gateway.local_models import LocalModelConfig
from garrison.gateway.local_onnx import OnnxLocalModel, is_onnx_file, load_local_model
from garrison.gateway.types import Denied

W = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0], [-1.0, 0.5, 0.5]], np.float32)
X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def linear(*, domain: str | None = None, labels: bool = False) -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["z"])]
    out, kind, shape = "z", TensorProto.FLOAT, ["N", 3]
    opsets = [helper.make_opsetid("", 17)]
    if labels:
        nodes.append(helper.make_node("ArgMax", ["z"], ["y"], axis=1, keepdims=0))
        out, kind, shape = "y", TensorProto.INT64, ["N"]
    if domain:
        nodes.append(helper.make_node("Run", [out], ["q"], domain=domain))
        out = "q"
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(out, kind, shape)],
        [numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private PEM, public PEM) of a fresh ECDSA key."""
    tmp = tmp_path_factory.mktemp("keys")
    private = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    (tmp / "k.pem").write_bytes(
        private.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp / "k.pub").write_bytes(
        private.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return tmp / "k.pem", tmp / "k.pub"


def signed(path: Path, model: onnx.ModelProto, private: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    assert main(["sign", str(path), "--key", str(private)]) == 0
    return path


def test_a_signed_clean_model_is_served(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    path = signed(tmp_path / "m.onnx", linear(), private)
    assert is_onnx_file(path)
    model = load_local_model(LocalModelConfig(path=path, key=public), where="route 'm'")
    assert isinstance(model, OnnxLocalModel)
    assert model.signature_verified
    rows = np.asarray(model.predict(X)["predictions"])
    np.testing.assert_allclose(rows, X @ W, rtol=1e-5)
    soft = OnnxLocalModel.load(LocalModelConfig(path=path, key=public, softmax=True), where="r")
    probs = np.asarray(soft.predict(X[0])["predictions"])  # one row is a batch of one
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs.shape == (1, 3)
    small = OnnxLocalModel.load(LocalModelConfig(path=path, key=public, max_rows=1), where="r")
    with pytest.raises(Denied) as denied:
        small.predict(X)
    assert denied.value.status == 413


def test_a_labels_model_returns_labels(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    path = signed(tmp_path / "labels.onnx", linear(labels=True), private)
    model = OnnxLocalModel.load(LocalModelConfig(path=path, key=public), where="r")
    assert model.predict(X)["predictions"] == (X @ W).argmax(1).tolist()


def test_unsigned_and_changed_models_are_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    path = tmp_path / "m.onnx"
    path.write_bytes(linear().SerializeToString())
    with pytest.raises(ConfigError, match="was not loaded"):
        load_local_model(LocalModelConfig(path=path, key=public), where="r")
    with pytest.raises(ConfigError, match="no trusted key"):
        load_local_model(LocalModelConfig(path=path), where="r")
    signed(path, linear(), private)
    path.write_bytes(linear(labels=True).SerializeToString())  # another model, after signing
    with pytest.raises(ConfigError, match="signature verification failed"):
        load_local_model(LocalModelConfig(path=path, key=public), where="r")


def test_a_signed_model_with_a_custom_operator_is_refused_by_the_scan(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    path = signed(tmp_path / "custom.onnx", linear(domain="com.attacker"), private)
    with pytest.raises(ConfigError, match=r"route 'x'.*GAR-ONNX-001|route 'x'.*problem") as err:
        load_local_model(LocalModelConfig(path=path, key=public), where="route 'x'")
    assert "was not loaded" in err.value.message


def test_external_data_is_refused_even_inside_the_model_directory(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    W.tofile(tmp_path / "w.bin")
    model = linear()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(W.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = signed(tmp_path / "ext.onnx", model, private)
    with pytest.raises(ConfigError, match="keeps its data in another file"):
        load_local_model(LocalModelConfig(path=path, key=public), where="r")


def test_other_formats_still_go_to_the_pickle_loader(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    assert not is_onnx_file(path)
    with pytest.raises(ConfigError, match="is a dict, which the gateway cannot serve"):
        load_local_model(LocalModelConfig(path=path, require_signature=False), where="r")


def test_an_onnx_route_is_served_through_the_gateway_with_output_controls(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """End to end: a signed ONNX file behind a kind: local route, output rounded for the role."""
    import json

    from tests.gateway.harness import UpstreamStub, base_config, http, running

    private, public = keys
    path = signed(tmp_path / "route.onnx", linear(), private)
    upstream = UpstreamStub().start()
    try:
        config = base_config(upstream.port, tmp_path)
        config["routes"].append(
            {
                "name": "onnx-local",
                "path": "/onnx",
                "kind": "local",
                "local": {"path": str(path), "key": str(public), "softmax": True},
                "validation": {"features": {"shape": [None, 4], "min": 0, "max": 10}},
                "output": {"scorer": {"mode": "round", "decimals": 2}},
            }
        )
        config["roles"]["scorer"]["allow"][0]["routes"].append("onnx-local")
        with running(config, tmp_path, {"scorer": ["scorer"]}) as gateway:
            status, _, body = http(
                gateway.port, "POST", "/onnx", body={"inputs": X.tolist()}, key=gateway.keys["scorer"]
            )
            assert status == 200, body
            rows = np.asarray(json.loads(body)["predictions"])
            z = X @ W
            expected = np.exp(z - z.max(1, keepdims=True))
            expected /= expected.sum(1, keepdims=True)
            np.testing.assert_allclose(rows, np.round(expected, 2), atol=1e-9)
            status, _, _ = http(
                gateway.port, "POST", "/onnx", body={"inputs": [[1, 2]]}, key=gateway.keys["scorer"]
            )
            assert status == 422
    finally:
        upstream.stop()
