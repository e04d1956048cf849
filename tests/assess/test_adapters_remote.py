"""Black-box adapters: real ONNX Runtime sessions on tiny models built here, and real HTTP endpoints
(an in-process server, and a real Garrison gateway for the route case)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from garrison.assess.adapters import GradientUnavailableError, OutputKind
from garrison.assess.adapters_http import EndpointError, HttpModel, QueryBudgetExceededError
from garrison.assess.adapters_onnx import OnnxModel, OnnxRefusedError, hardened_session
from garrison.assess.adapters_remote import remote_model
from garrison.assess.attacks import HopSkipJump, SquareAttack
from garrison.assess.evasion import run_evasion
from garrison.assess.extraction import run_extraction
from garrison.core.errors import ConfigError, GarrisonError
from tests.http_server import ThreadedHttpServer

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
B = np.array([0.1, -0.2, 0.05], np.float32)
X = RNG.uniform(0, 1, size=(10, 4)).astype(np.float32)


def logits(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x.astype(np.float64) @ W + B
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    out: np.ndarray = e / e.sum(1, keepdims=True)
    return out


# --- ONNX -------------------------------------------------------------------------------------------------


def linear_model(head: str = "", *, domain: str | None = None) -> onnx.ModelProto:
    """x (N, 4) -> Gemm -> optional Softmax / LogSoftmax / ArgMax (labels) / custom op."""
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["z"])]
    out, out_type, out_shape = "z", TensorProto.FLOAT, ["N", 3]
    if head in ("Softmax", "LogSoftmax"):
        nodes.append(helper.make_node(head, ["z"], ["y"], axis=1))
        out = "y"
    elif head == "ArgMax":
        nodes.append(helper.make_node("ArgMax", ["z"], ["y"], axis=1, keepdims=0))
        out, out_type, out_shape = "y", TensorProto.INT64, ["N"]
    opsets = [helper.make_opsetid("", 17)]
    if domain is not None:
        nodes.append(helper.make_node("Shell", [out], ["q"], domain=domain))
        out = "q"
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(out, out_type, out_shape)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


def session(model: onnx.ModelProto) -> Any:
    return hardened_session(model.SerializeToString(), threads=1)


def test_logits_model_matches_numpy_in_batches() -> None:
    m = OnnxModel(session(linear_model()), batch_size=3)
    np.testing.assert_allclose(m.scores(X), logits(X), rtol=1e-5, atol=1e-5)
    assert m.output_kind is OutputKind.LOGITS
    assert m.n_classes == 3
    np.testing.assert_array_equal(m.predict(X), logits(X).argmax(1))
    np.testing.assert_allclose(m.probabilities(X), softmax(logits(X)), atol=1e-5)
    assert not m.has_gradients
    with pytest.raises(GradientUnavailableError):
        m.gradient(X, m.predict(X))


@pytest.mark.parametrize(
    ("head", "kind"),
    [("Softmax", OutputKind.PROBABILITIES), ("LogSoftmax", OutputKind.LOG_PROBABILITIES)],
)
def test_probability_heads_are_detected(head: str, kind: OutputKind) -> None:
    m = OnnxModel(session(linear_model(head)))
    np.testing.assert_allclose(m.probabilities(X), softmax(logits(X)), atol=1e-5)
    assert m.output_kind is kind
    np.testing.assert_allclose(m.scores(X), np.log(softmax(logits(X))), atol=1e-4)


def test_a_labels_only_model_needs_the_class_count() -> None:
    with pytest.raises(ConfigError, match="how many classes"):
        OnnxModel(session(linear_model("ArgMax"))).predict(X)
    m = OnnxModel(session(linear_model("ArgMax")), n_classes=3)
    np.testing.assert_array_equal(m.predict(X), logits(X).argmax(1))
    assert m.output_kind is OutputKind.LABELS
    np.testing.assert_array_equal(m.probabilities(X), np.eye(3)[logits(X).argmax(1)])


def test_zipmap_probabilities_keep_the_class_values() -> None:
    model = linear_model("Softmax")
    model.graph.node.append(
        helper.make_node("ZipMap", ["y"], ["m"], domain="ai.onnx.ml", classlabels_int64s=[10, 20, 30])
    )
    model.graph.output.pop()
    model.graph.output.append(
        helper.make_value_info(
            "m",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(
                    TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
                )
            ),
        )
    )
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    m = OnnxModel(session(model))
    np.testing.assert_allclose(m.probabilities(X), softmax(logits(X)), atol=1e-5)
    assert m.classes == (10, 20, 30)
    np.testing.assert_array_equal(m.label_indices([30, 10]), [2, 0])


def test_a_path_is_checked_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(linear_model(), path)
    m = remote_model(path, threads=1)
    assert isinstance(m, OnnxModel)
    np.testing.assert_allclose(m.scores(X), logits(X), rtol=1e-5, atol=1e-5)

    evil = tmp_path / "evil.onnx"
    onnx.save_model(linear_model(domain="com.evil.ops"), evil)
    with pytest.raises(OnnxRefusedError, match="custom operator domain"):
        OnnxModel(evil)


def _external(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(W.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model


def test_external_data_must_stay_in_the_model_directory(tmp_path: Path) -> None:
    inside = tmp_path / "model"
    inside.mkdir()
    W.tofile(inside / "w.bin")
    W.tofile(tmp_path / "outside.bin")
    good = inside / "good.onnx"
    good.write_bytes(_external(linear_model(), "w.bin").SerializeToString())
    np.testing.assert_allclose(OnnxModel(good).scores(X), logits(X), rtol=1e-5, atol=1e-5)
    for location in ("../outside.bin", str(tmp_path / "outside.bin")):
        bad = inside / "bad.onnx"
        bad.write_bytes(_external(linear_model(), location).SerializeToString())
        with pytest.raises(OnnxRefusedError, match=r"bad\.onnx was not loaded"):
            OnnxModel(bad)
    (inside / "link.bin").symlink_to(tmp_path / "outside.bin")
    linked = inside / "linked.onnx"
    linked.write_bytes(_external(linear_model(), "link.bin").SerializeToString())
    with pytest.raises(OnnxRefusedError, match="symlink"):
        OnnxModel(linked)


def test_malformed_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10)
    with pytest.raises(OnnxRefusedError, match="not a well-formed"):
        OnnxModel(path)


def test_square_attack_runs_on_an_onnx_model_and_gradient_attacks_refuse() -> None:
    m = OnnxModel(session(linear_model("Softmax")))
    y = logits(X).argmax(1)
    report = run_evasion(m, X, y, attacks=[SquareAttack(queries=30)], epsilons=[0.5], valid_range=(0.0, 1.0))
    assert report.results[0].queries_per_sample > 1
    assert report.model.output_kind == "probabilities"
    with pytest.raises(GradientUnavailableError):
        run_evasion(m, X, y, attacks=["fgsm"], epsilons=[0.1])


def test_remote_model_dispatch() -> None:
    assert isinstance(remote_model(session(linear_model())), OnnxModel)
    assert isinstance(remote_model("https://models.example/v2/models/m/infer"), HttpModel)
    assert remote_model("weights.pkl") is None
    assert remote_model(object()) is None


# --- HTTP ---------------------------------------------------------------------------------------------------


class ModelServer(ThreadedHttpServer):
    """The linear model behind several paths, one per answer shape or failure."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.busy_left = 1

    async def respond(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1].split("?", 1)[0]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        self.seen.append((path, headers))
        request = json.loads(body)
        if path.startswith("/v2/"):
            (tensor,) = request["inputs"]
            x = np.asarray(tensor["data"], np.float64).reshape(tensor["shape"])
        else:
            x = np.asarray(request["instances"], np.float64)
        z = logits(x)
        status, extra, payload = 200, "", {"predictions": softmax(z).tolist()}
        if path == "/v2/models/m/infer":
            payload = {
                "model_name": "m",
                "outputs": [
                    {"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.reshape(-1).tolist()}
                ],
            }
        elif path == "/v2/models/topk/infer":
            idx = np.argsort(-z, 1)[:, :2]
            top = np.take_along_axis(softmax(z), idx, 1)
            payload = {
                "outputs": [
                    {"name": "p", "shape": [len(z), 2], "datatype": "FP64", "data": top.reshape(-1).tolist()},
                    {
                        "name": "p_indices",
                        "shape": [len(z), 2],
                        "datatype": "INT64",
                        "data": idx.reshape(-1).tolist(),
                    },
                ]
            }
        elif path == "/labels":
            payload = {"predictions": [["a", "b", "c"][i] for i in z.argmax(1)]}
        elif path == "/topk":
            idx = np.argsort(-z, 1)[:, :2]
            p = softmax(z)
            payload = {
                "predictions": [
                    [[int(i), round(float(p[r, i]), 3)] for i in row] for r, row in enumerate(idx)
                ]
            }
        elif path == "/busy" and self.busy_left:
            self.busy_left -= 1
            status, extra, payload = 429, "retry-after: 1\r\n", {"error": "slow down"}
        elif path == "/down":
            status, payload = 503, {"error": "starting"}
        elif path == "/auth" and headers.get("authorization") != "Bearer gar_test_secret":
            status, payload = 401, {"error": "authentication required"}
        elif path == "/short":
            payload = {"predictions": softmax(z).tolist()[:-1]}
        data = b"{not json" if path == "/badjson" else json.dumps(payload).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
            % (status, len(data), extra.encode())
            + data
        )
        await writer.drain()


@pytest.fixture(scope="module")
def server() -> Any:
    s = ModelServer().start()
    yield s
    s.stop()


def test_json_endpoint_in_batches(server: ModelServer) -> None:
    m = HttpModel(server.url + "/predict", batch_size=4)
    np.testing.assert_allclose(m.probabilities(X), softmax(logits(X)), atol=1e-6)
    assert m.output_kind is OutputKind.PROBABILITIES
    assert (m.queries, m.requests) == (10, 3)
    np.testing.assert_array_equal(m.predict(X), logits(X).argmax(1))


def test_kserve_v2_endpoint_returns_logits(server: ModelServer) -> None:
    m = HttpModel(server.url + "/v2/models/m/infer", protocol="kserve-v2")
    np.testing.assert_allclose(m.scores(X), logits(X), atol=1e-5)
    assert m.output_kind is OutputKind.LOGITS


def test_labels_and_top_k_answers(server: ModelServer) -> None:
    labels = HttpModel(server.url + "/labels", classes=["a", "b", "c"])
    np.testing.assert_array_equal(labels.predict(X), logits(X).argmax(1))
    assert labels.output_kind is OutputKind.LABELS
    np.testing.assert_array_equal(labels.label_indices(["c", "a"]), [2, 0])
    for model in (
        HttpModel(server.url + "/topk", n_classes=3),
        HttpModel(server.url + "/v2/models/topk/infer", protocol="kserve-v2", n_classes=3),
    ):
        p = model.probabilities(X)
        assert model.output_kind is OutputKind.PROBABILITIES
        np.testing.assert_array_equal(model.predict(X), logits(X).argmax(1))
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
        third = np.argsort(-logits(X), 1)[:, 2]  # the class top-2 leaves out gets the rest of the mass
        np.testing.assert_allclose(
            p[np.arange(10), third], 1 - np.sort(softmax(logits(X)), 1)[:, 1:].sum(1), atol=2e-3
        )
    with pytest.raises(ConfigError, match="how many classes"):
        HttpModel(server.url + "/topk").predict(X)


def test_429_is_retried_after_what_retry_after_asks(server: ModelServer) -> None:
    server.busy_left = 1
    m = HttpModel(server.url + "/busy", backoff=0.01)
    np.testing.assert_allclose(m.probabilities(X[:2]), softmax(logits(X[:2])), atol=1e-6)
    assert (m.retried, m.requests, m.queries) == (1, 2, 2)
    server.busy_left = 1
    impatient = HttpModel(server.url + "/busy", max_wait=0.5)
    with pytest.raises(EndpointError, match="retry after 1 s"):
        impatient.predict(X[:2])


def test_the_query_budget_is_a_hard_stop(server: ModelServer) -> None:
    m = HttpModel(server.url + "/predict", batch_size=4, max_queries=10)
    m.predict(X[:8])
    before = len(server.seen)
    with pytest.raises(QueryBudgetExceededError, match="budget of 10") as err:
        m.predict(X[:4])
    assert isinstance(err.value, GarrisonError)
    assert m.queries == 8
    assert len(server.seen) == before  # nothing was sent


def test_unreadable_answers_name_the_url_and_the_problem(server: ModelServer) -> None:
    with pytest.raises(EndpointError, match=r"127\.0\.0\.1:\d+/badjson: the answer is not JSON"):
        HttpModel(server.url + "/badjson").predict(X)
    with pytest.raises(EndpointError, match="wrong shape: 9 predictions for 10 inputs"):
        HttpModel(server.url + "/short", batch_size=10).predict(X)
    with pytest.raises(EndpointError, match="no 'scores' field"):
        HttpModel(server.url + "/predict", response_field="scores").predict(X)
    with pytest.raises(EndpointError, match="no answer after 2 tries"):
        HttpModel("http://127.0.0.1:9/x", retries=1, backoff=0.01).predict(X)


def test_the_api_key_comes_from_the_environment_and_never_shows(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = HttpModel(server.url + "/auth?token=hidden", api_key_env="TEST_GARRISON_KEY")
    with pytest.raises(ConfigError, match="TEST_GARRISON_KEY"):
        m.predict(X)
    monkeypatch.setenv("TEST_GARRISON_KEY", "gar_wrong")
    with pytest.raises(EndpointError, match="status 401") as err:
        m.predict(X)
    assert "gar_wrong" not in err.value.diagnostics()
    assert "hidden" not in err.value.diagnostics()
    monkeypatch.setenv("TEST_GARRISON_KEY", "gar_test_secret")
    np.testing.assert_array_equal(m.predict(X), logits(X).argmax(1))
    assert "gar_test_secret" not in repr(m) + m.name
    with pytest.raises(ConfigError, match="unencrypted"):
        HttpModel("http://models.example/predict", api_key_env="TEST_GARRISON_KEY")
    with pytest.raises(ConfigError, match="credentials"):
        HttpModel("https://user:pw@models.example/predict")


def test_503_is_retried_with_backoff_then_reported(server: ModelServer) -> None:
    m = HttpModel(server.url + "/down", retries=2, backoff=0.01)
    before = len(server.seen)
    with pytest.raises(EndpointError, match="status 503") as err:
        m.predict(X[:2])
    assert err.value.hint is not None
    assert "overloaded" in err.value.hint
    assert len(server.seen) - before == 3
    assert (m.requests, m.retried, m.queries) == (3, 2, 0)


class TlsModelServer(ModelServer):
    """The same model over TLS, with a self-signed certificate for 127.0.0.1."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tmp / "cert.pem", tmp / "key.pem"


def test_tls_certificates_are_verified_by_default(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls = TlsModelServer(cert, key).start()
    try:
        url = f"https://127.0.0.1:{tls.port}/predict"
        with pytest.raises(EndpointError, match="TLS certificate did not verify"):
            HttpModel(url).predict(X)
        assert tls.seen == []  # nothing reached a server that could not prove who it is
        with HttpModel(url, ca_file=cert) as trusted:
            np.testing.assert_array_equal(trusted.predict(X), logits(X).argmax(1))
    finally:
        tls.stop()


# --- a real gateway ---------------------------------------------------------------------------------------


def test_attacks_through_a_gateway_kserve_route(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extraction with a top-2 key and HopSkipJump with a label-only key, through a real gateway whose
    output controls cut the KServe v2 answers of the model server."""
    from sklearn.linear_model import LogisticRegression

    from tests.gateway.harness import base_config, running

    config = base_config(server.port, tmp_path)
    config["routes"].append(
        {
            "name": "linear",
            "path": "/v2/models/m/infer",
            "kind": "kserve",
            "upstream": server.url,
            "validation": {"features": {"shape": [None, 4], "min": 0, "max": 1}},
            "output": {"scorer": {"mode": "top_k", "k": 2, "decimals": 4}, "user": {"mode": "label"}},
        }
    )
    config["roles"]["scorer"]["allow"][0]["routes"].append("linear")
    config["roles"]["user"]["allow"].append({"routes": ["linear"], "actions": ["invoke"]})
    pool = np.random.default_rng(1).uniform(0, 1, size=(80, 4))
    with running(config, tmp_path, {"scorer": ["scorer"], "user": ["user"]}) as gateway:
        monkeypatch.setenv("GW_SCORER_KEY", gateway.keys["scorer"])
        monkeypatch.setenv("GW_USER_KEY", gateway.keys["user"])
        url = gateway.url + "/v2/models/m/infer"
        top2 = HttpModel(url, protocol="kserve-v2", api_key_env="GW_SCORER_KEY", n_classes=3, max_queries=200)
        report = run_extraction(
            top2,
            pool[:50],
            pool[50:],
            logits(pool[50:]).argmax(1),
            budgets=[50],
            student=lambda xs, soft: LogisticRegression(max_iter=300).fit(xs, soft.argmax(1)),
        )
        assert top2.output_kind is OutputKind.LOGITS  # top-2 of the server's logits
        assert report.queries == 50
        assert top2.queries == 50 + 30  # the attacker's rows and the assessor's test rows
        assert report.points[0].fidelity > 0.6

        labels = HttpModel(url, protocol="kserve-v2", api_key_env="GW_USER_KEY", n_classes=3)
        hsj = HopSkipJump(iterations=2, initial_evals=10, max_evals=20)
        ev = run_evasion(labels, X[:4], logits(X[:4]).argmax(1), attacks=[hsj], valid_range=(0.0, 1.0))
        assert labels.output_kind is OutputKind.LABELS
        assert ev.results[0].queries_per_sample > 1
        assert labels.queries > 4
        top2.close()
        labels.close()
