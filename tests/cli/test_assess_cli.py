"""``garrison assess model`` end to end on tiny models trained here, saved to files and loaded safely."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

SAMPLES = "40"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a small shared machine, more threads only contend (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A logistic regression (joblib), a whole torch MLP, its state dict, and held-out digits (npz, CSV)."""
    root = tmp_path_factory.mktemp("assess")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logreg = LogisticRegression(max_iter=60).fit(x[:600], y[:600])
    joblib.dump(logreg, root / "logreg.joblib")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.as_tensor(x[:600]), torch.as_tensor(y[:600])
    for _ in range(80):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    torch.save(net, root / "mlp.pt")
    torch.save(net.state_dict(), root / "mlp_weights.pt")
    np.savez(root / "test.npz", x=x[1200:1300], y=y[1200:1300])
    header = ",".join(f"p{i}" for i in range(64)) + ",digit"
    rows = [
        ",".join(f"{v:g}" for v in row) + f",{label}"
        for row, label in zip(x[1200:1300], y[1200:1300], strict=True)
    ]
    (root / "test.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {
        "logreg": root / "logreg.joblib",
        "mlp": root / "mlp.pt",
        "weights": root / "mlp_weights.pt",
        "npz": root / "test.npz",
        "csv": root / "test.csv",
    }


def run(cli: Callable[..., Any], *args: str, samples: str = SAMPLES) -> Any:
    return cli("assess", "model", *args, "--samples", samples, "--no-store")


def test_sklearn_model_json_findings_and_shape(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    res = run(
        cli, "--model", str(files["logreg"]), "--data", str(files["npz"]),
        "--methods", "fgsm,pgd-10,cw-l2", "--epsilons", "0.1,0.3", "--format", "json",
    )  # fmt: skip
    assert res.code == 1, res.err
    body = json.loads(res.out)
    a = body["assessment"]
    assert a["kinds"] == ["evasion"]
    assert "privacy" not in a
    assert a["model"]["name"] == "LogisticRegression"
    assert a["model"]["has_gradients"] is True
    assert a["data"]["samples"] == 40
    e = a["evasion"]
    assert e["thresholds"] == {"epsilon": 0.1, "min_robust_accuracy": 0.3, "min_median_l2": 1.0}
    runs = [(r["attack"], r["epsilon"]) for r in e["results"]]
    assert runs == [("fgsm", 0.1), ("fgsm", 0.3), ("pgd-10", 0.1), ("pgd-10", 0.3), ("cw-l2", None)]
    pgd = e["results"][2]
    assert pgd["robust_accuracy"] <= e["results"][0]["robust_accuracy"]
    assert pgd["parameters"]["steps"] == 10
    # the linear model holds at ε=0.1 (robust accuracy above 30%), but CW-L2 needs only a small L2
    assert pgd["robust_accuracy"] >= 0.3
    findings = body["report"]["findings"]
    assert [f["rule"]["id"] for f in findings] == ["GAR-ADV-002"]
    evidence = {e["name"]: e for e in findings[0]["evidence"]}
    assert evidence["median_l2[cw-l2]"]["threshold"] == 1.0
    assert evidence["median_l2[cw-l2]"]["value"] < 1.0
    strict = run(
        cli, "--model", str(files["logreg"]), "--data", str(files["npz"]), "--methods", "pgd-10",
        "--epsilons", "0.1", "--min-robust-accuracy", "0.95", "--format", "json",
    )  # fmt: skip
    assert [f["rule"]["id"] for f in json.loads(strict.out)["report"]["findings"]] == ["GAR-ADV-001"]
    assert "assess: pgd-10 ε=0.1: robust accuracy" in res.err  # progress on stderr, not stdout


def test_torch_module_console_table_and_default_methods(
    cli: Callable[..., Any], files: dict[str, Path]
) -> None:
    res = run(cli, "--model", str(files["mlp"]), "--data", str(files["npz"]))
    assert res.code == 1, res.err
    assert "Sequential (torch, logits, 10 classes, input 64, range [0, 1])" in res.out
    header = next(line for line in res.out.splitlines() if line.strip().startswith("attack") and "ε=" in line)
    assert "ε=0.1" in header
    assert "ε=0.3" in header
    for attack in ("fgsm", "pgd-10", "apgd-ce"):
        assert any(line.strip().startswith(attack) for line in res.out.splitlines()), attack
    assert "cw-l2" in res.out
    assert "median L2" in res.out
    assert "FLAGGED:" in res.out
    assert "inferred from the data" in res.out


def test_policy_from_garrison_toml_and_flags(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    Path("garrison.toml").write_text("[assess]\nmin-robust-accuracy = 0.0\nmin-median-l2 = 0.0\n")
    args = ("--model", str(files["logreg"]), "--data", str(files["npz"]), "--methods", "fgsm,cw-l2")
    relaxed = run(cli, *args)
    assert relaxed.code == 0, relaxed.out + relaxed.err
    assert "OK: within the policy" in relaxed.out
    strict = run(cli, *args, "--min-robust-accuracy", "1.0")
    assert strict.code == 1
    assert "GAR-ADV" in strict.out


def test_csv_with_a_label_column_matches_the_npz(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    args = ("--model", str(files["logreg"]), "--methods", "pgd-10", "--epsilons", "0.1", "--format", "json")
    res = run(cli, *args, "--data", str(files["csv"]), "--label", "digit")
    assert res.code == 0, res.err  # within the policy: no finding
    body = json.loads(res.out)
    assert body["assessment"]["data"]["label"] == "digit"
    assert body["report"]["findings"] == []
    same = json.loads(run(cli, *args, "--data", str(files["npz"])).out)
    for key in ("clean_accuracy", "robust_accuracy"):
        assert (
            body["assessment"]["evasion"]["results"][0][key]
            == same["assessment"]["evasion"]["results"][0][key]
        )
    missing = run(cli, "--model", str(files["logreg"]), "--data", str(files["csv"]))
    assert missing.code == 2
    assert "--label" in missing.err


def test_privacy_needs_the_training_data(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    res = run(cli, "--model", str(files["logreg"]), "--data", str(files["npz"]), "--attacks", "privacy")
    assert res.code == 2
    assert "--train-data" in res.err
    assert res.out == ""


def test_privacy_and_extraction_of_a_forest_json_and_findings(
    cli: Callable[..., Any], files: dict[str, Path]
) -> None:
    """An overfit forest: every training record is right, LiRA tells members apart, a copy is cheap."""
    from sklearn.ensemble import RandomForestClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x[:300], y[:300])
    joblib.dump(forest, "forest.joblib")
    np.savez("train.npz", x=x[:300], y=y[:300])
    np.savez("held.npz", x=x[300:700], y=y[300:700])
    res = run(
        cli, "--model", "forest.joblib", "--data", "held.npz", "--train-data", "train.npz",
        "--attacks", "extraction,privacy", "--shadows", "4", "--members", "100",
        "--membership-attacks", "loss,lira-online", "--queries", "50,200", "--format", "json",
    )  # fmt: skip
    assert res.code == 1, res.err
    body = json.loads(res.out)
    a = body["assessment"]
    assert a["kinds"] == ["privacy", "extraction"]  # run in their fixed order, whatever the flag's
    assert "evasion" not in a
    privacy = a["privacy"]
    assert (privacy["members"], privacy["non_members"]) == (100, 100)
    assert privacy["population"] == 200
    assert privacy["member_accuracy"] == 1.0
    assert [r["attack"] for r in privacy["results"]] == ["loss", "lira-online"]
    lira = privacy["results"][1]
    assert lira["shadow_models"] == 4
    assert lira["auc"] > 0.6
    assert lira["roc"][0] == [0.0, 0.0]
    assert privacy["thresholds"] == {"max_auc": 0.6}
    extraction = a["extraction"]
    assert [p["queries"] for p in extraction["points"]] == [50, 200]
    assert extraction["pool_size"] == 280
    assert extraction["test_samples"] == 120
    assert extraction["output"] == "probabilities"
    assert a["data"]["train_rows"] == 300
    rules = sorted(f["rule"]["id"] for f in body["report"]["findings"])
    high_fidelity = any(p["fidelity"] >= 0.9 for p in extraction["points"])
    assert rules == (["GAR-EXT-001", "GAR-MIA-001"] if high_fidelity else ["GAR-MIA-001"])
    assert "assess: privacy: strongest" in res.err
    relaxed = run(
        cli, "--model", "forest.joblib", "--data", "held.npz", "--train-data", "train.npz",
        "--attacks", "privacy", "--membership-attacks", "loss", "--members", "100",
        "--max-membership-auc", "1.0",
    )  # fmt: skip
    assert relaxed.code == 0, relaxed.out + relaxed.err
    assert "membership inference (100 members" in relaxed.out
    assert "OK: within the policy" in relaxed.out


def test_extraction_of_a_torch_module_label_only_in_html(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    page_file = tmp_path / "report.html"
    res = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--attacks", "extraction",
        "--queries", "30,60", "--expose", "label", "--max-extraction-fidelity", "0.0",
        "--format", "html", "-o", str(page_file),
    )  # fmt: skip
    assert res.code == 1, res.err  # fidelity 0 is always reached: the policy flags it
    page = page_file.read_text(encoding="utf-8")
    assert "Model extraction" in page
    assert "label exposed" in page
    assert "GAR-EXT-001" in page
    assert page.index("Model extraction") < page.index("</main>")
    assert "Robust accuracy" not in page


def test_privacy_shadows_of_a_torch_module_are_trained_by_garrison(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    data = np.load(files["npz"])
    digits = load_digits()
    np.savez("train.npz", x=(digits.data[:600] / 16.0).astype(np.float32), y=digits.target[:600])
    res = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--train-data", "train.npz",
        "--attacks", "privacy", "--membership-attacks", "lira-offline", "--shadows", "2",
        "--shadow-epochs", "2", "--format", "json",
    )  # fmt: skip
    assert res.code in (0, 1), res.err
    body = json.loads(res.out)["assessment"]
    assert body["privacy"]["results"][0]["shadow_models"] == 2
    assert body["privacy"]["non_members"] == len(data["y"]) // 2
    assert any("Garrison's generic recipe" in n for n in body["privacy"]["notes"])
    np.savez("narrow.npz", x=np.zeros((40, 8), np.float32), y=np.zeros(40, np.int64))
    narrow = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--train-data", "narrow.npz",
        "--attacks", "privacy",
    )  # fmt: skip
    assert narrow.code == 2
    assert "rows of 8 values, but --data has 64" in narrow.err


def test_unknown_assessment_and_bad_budgets_are_usage_errors(
    cli: Callable[..., Any], files: dict[str, Path]
) -> None:
    assert (
        run(cli, "--model", str(files["logreg"]), "--data", str(files["npz"]), "--attacks", "magic").code == 2
    )
    empty = run(cli, "--model", str(files["logreg"]), "--data", str(files["npz"]), "--queries", "0")
    assert empty.code == 2
    assert "--queries" in empty.err


@pytest.mark.parametrize(
    ("x", "y", "code", "message"),
    [
        (np.zeros((20, 3), np.float32), np.zeros(20, np.int64), 3, "failed on inputs of shape"),
        (np.full((20, 64), np.nan, np.float32), np.zeros(20, np.int64), 3, "NaN or infinite"),
        (np.zeros((20, 64), np.float32), np.array(["a"] * 20), 2, "class indices"),
        (np.zeros((20, 64), np.float32), np.full(20, 15), 3, "label 15 is not a class"),
    ],
    ids=["wrong-shape", "nan", "text-labels", "label-out-of-range"],
)
def test_data_that_does_not_fit_the_model_is_a_clear_error(
    cli: Callable[..., Any], files: dict[str, Path], x: np.ndarray, y: np.ndarray, code: int, message: str
) -> None:
    np.savez("bad.npz", x=x, y=y)
    res = run(cli, "--model", str(files["mlp"]), "--data", "bad.npz", "--methods", "fgsm")
    assert res.code == code, res.err
    assert message in res.err
    assert "internal error" not in res.err


class _Payload:
    """Pickles to a call of os.system; written to disk only, never loaded."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("true",))


def test_malicious_pickle_model_is_refused_before_it_runs(
    cli: Callable[..., Any], files: dict[str, Path]
) -> None:
    evil = Path("evil.pkl")
    evil.write_bytes(pickle.dumps(_Payload(), protocol=4))
    res = run(cli, "--model", str(evil), "--data", str(files["npz"]))
    assert res.code == 1
    assert "refused to load" in res.err
    assert res.out == ""


def test_state_dict_needs_arch_and_builds_with_it(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    weights = str(files["weights"])
    bare = run(cli, "--model", weights, "--data", str(files["npz"]), "--methods", "fgsm")
    assert bare.code == 2
    assert "--arch" in bare.err
    Path("tiny_arch.py").write_text(
        "import torch\n\n\ndef build():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))\n"
    )
    built = run(
        cli, "--model", weights, "--arch", "tiny_arch:build", "--data", str(files["npz"]),
        "--methods", "fgsm", "--epsilons", "0.1", "--valid-range", "0,2", "--format", "json",
    )  # fmt: skip
    assert built.code == 1, built.err
    built_body = json.loads(built.out)["assessment"]
    assert built_body["evasion"]["results"][0]["attack"] == "fgsm"
    assert built_body["model"]["valid_range"] == [0.0, 2.0]
    assert built_body["model"]["valid_range_inferred"] is False
    wrong = run(cli, "--model", weights, "--arch", "tiny_arch:nothing", "--data", str(files["npz"]))
    assert wrong.code == 2
    shaped = run(cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--input-shape", "3,3")
    assert shaped.code == 2
    assert "does not hold the 64 values" in shaped.err
    assert "no function nothing" in wrong.err


def test_query_budget_skips_the_attacks_not_started(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    res = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--methods", "fgsm,pgd-10",
        "--epsilons", "0.1,0.3", "--max-queries", "1", "--format", "json",
    )  # fmt: skip
    body = json.loads(res.out)
    assert [r["attack"] for r in body["assessment"]["evasion"]["results"]] == ["fgsm"]
    skipped = body["assessment"]["skipped"]
    assert [s["attack"] for s in skipped] == ["fgsm ε=0.3", "pgd-10 ε=0.1", "pgd-10 ε=0.3"]
    assert all("query budget" in s["reason"] for s in skipped)
    assert len(body["report"]["skipped"]) == 3
    timed = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--methods", "fgsm",
        "--time-budget", "0",
    )  # fmt: skip
    assert timed.code == 2
    assert "time budget" in timed.err


def test_gradient_attack_on_a_black_box_is_skipped_not_faked(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    data = np.load(files["npz"])
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(data["x"], data["y"])
    joblib.dump(forest, tmp_path / "forest.joblib")
    res = run(
        cli, "--model", str(tmp_path / "forest.joblib"), "--data", str(files["npz"]),
        "--methods", "fgsm,square", "--epsilons", "0.3", "--format", "json", samples="8",
    )  # fmt: skip
    body = json.loads(res.out)
    assert [r["attack"] for r in body["assessment"]["evasion"]["results"]] == ["square"]
    assert "needs input gradients" in body["assessment"]["skipped"][0]["reason"]


def test_html_report_has_the_curves_and_sarif_and_store_carry_the_findings(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    common = ("--model", str(files["mlp"]), "--data", str(files["npz"]), "--methods", "fgsm,pgd-10")
    page_file = tmp_path / "report.html"
    res = cli("assess", "model", *common, "--samples", SAMPLES, "--format", "html", "-o", str(page_file),
              "--db", str(tmp_path / "g.db"))  # fmt: skip
    assert res.code == 1, res.err
    page = page_file.read_text(encoding="utf-8")
    assert "<svg" in page
    assert "<polyline" in page
    assert "Robust accuracy" in page
    assert page.index("Robust accuracy") < page.index("</main>")
    assert "Content-Security-Policy" in page
    assert "GAR-ADV-001" in page
    stored = cli("findings", "--db", str(tmp_path / "g.db"), "--format", "json", with_db=False)
    assert "GAR-ADV-001" in stored.out
    sarif = json.loads(run(cli, *common, "--format", "sarif").out)
    rule_ids = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert rule_ids == {"GAR-ADV-001"}


def test_an_onnx_file_is_scanned_then_attacked_as_a_black_box(
    cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path
) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    data = np.load(files["npz"])
    logreg = joblib.load(files["logreg"])
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1)],
        "logreg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 10])],
        [
            numpy_helper.from_array(logreg.coef_.astype(np.float32), "W"),
            numpy_helper.from_array(logreg.intercept_.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "logreg.onnx")
    res = run(
        cli, "--model", str(tmp_path / "logreg.onnx"), "--data", str(files["npz"]), "--epsilons", "0.3",
        "--attacks", "evasion,extraction", "--queries", "40", "--format", "json", samples="10",
    )  # fmt: skip
    assert res.code == 1, res.err
    body = json.loads(res.out)
    a = body["assessment"]
    assert a["model"]["framework"] == "onnx"
    assert a["model"]["has_gradients"] is False
    assert [r["attack"] for r in a["evasion"]["results"]] == ["square"]  # the black-box default
    picked = np.sort(np.random.default_rng(0).choice(len(data["x"]), 10, replace=False))  # --seed 0
    expected = np.mean(logreg.predict(data["x"][picked]) == data["y"][picked])
    assert a["evasion"]["results"][0]["samples"] == 10
    assert a["clean_accuracy"] == pytest.approx(expected)  # the ONNX export answers as the estimator
    assert body["report"]["assets"][0]["format"] == "onnx"
    assert body["report"]["assets"][0]["digest"].startswith("sha256:")
    custom = helper.make_model(
        helper.make_graph(
            [helper.make_node("Run", ["x"], ["z"], domain="evil.ops")], "custom",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 10])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)],
    )  # fmt: skip
    custom.ir_version = 9
    onnx.save(custom, tmp_path / "custom.onnx")
    refused = run(cli, "--model", str(tmp_path / "custom.onnx"), "--data", str(files["npz"]))
    assert refused.code == 1
    assert refused.out == ""


def test_an_http_endpoint_is_attacked_through_its_api(
    cli: Callable[..., Any], files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from tests.http_server import ThreadedHttpServer

    logreg = joblib.load(files["logreg"])

    class Endpoint(ThreadedHttpServer):
        """The logistic regression's probabilities, for a caller with the right key only."""

        rows = 0

        async def respond(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
            if b"authorization: bearer gar_demo_key" not in head.lower():
                status, payload = 401, {"error": "authentication required"}
            else:
                x = np.asarray(json.loads(body)["instances"], np.float64)
                Endpoint.rows += len(x)
                status, payload = 200, {"predictions": logreg.predict_proba(x).tolist()}
            data = json.dumps(payload).encode()
            writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n" % (status, len(data)) + data)
            await writer.drain()

    server = Endpoint().start()
    try:
        monkeypatch.setenv("MODEL_KEY", "gar_demo_key")
        res = run(
            cli, "--model", server.url + "/predict?token=hidden", "--api-key-env", "MODEL_KEY",
            "--data", str(files["npz"]), "--attacks", "extraction", "--queries", "30", "--format", "json",
        )  # fmt: skip
        assert res.code in (0, 1), res.err
        body = json.loads(res.out)
        assert body["assessment"]["model"]["framework"] == "http"
        asset = body["report"]["assets"][0]
        assert asset["kind"] == "endpoint"
        assert "hidden" not in res.out  # the query string (a credential, often) never reaches the report
        assert "gar_demo_key" not in res.out + res.err
        assert body["assessment"]["extraction"]["queries"] == 30
        assert Endpoint.rows >= 30 + body["assessment"]["extraction"]["test_samples"]
        monkeypatch.delenv("MODEL_KEY")
        denied = run(
            cli, "--model", server.url + "/predict", "--data", str(files["npz"]), "--attacks", "extraction"
        )
        assert denied.code in (2, 3), denied.err
        assert "401" in denied.err
    finally:
        server.stop()


def test_attribute_inference_and_inversion_parts(cli: Callable[..., Any], files: dict[str, Path]) -> None:
    """A forest that reads a planted sensitive column leaks it; the torch MLP's digits can be inverted."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    s = rng.integers(0, 2, 400)
    x = np.column_stack([rng.normal(size=(400, 3)), s]).astype(np.float32)
    y = ((x[:, 0] + 2.0 * s + rng.normal(scale=0.5, size=400)) > 1.0).astype(np.int64)
    joblib.dump(RandomForestClassifier(n_estimators=30, random_state=0).fit(x[:200], y[:200]), "rf.joblib")
    np.savez("tab_train.npz", x=x[:200], y=y[:200])
    np.savez("tab_test.npz", x=x[200:], y=y[200:])
    missing = run(cli, "--model", "rf.joblib", "--data", "tab_test.npz", "--train-data", "tab_train.npz",
                  "--attacks", "attribute")  # fmt: skip
    assert missing.code == 2
    assert "--sensitive" in missing.err
    outside = run(cli, "--model", "rf.joblib", "--data", "tab_test.npz", "--train-data", "tab_train.npz",
                  "--attacks", "attribute", "--sensitive", "9")  # fmt: skip
    assert outside.code == 2
    assert "columns 0 to 3" in outside.err
    res = run(
        cli, "--model", "rf.joblib", "--data", "tab_test.npz", "--train-data", "tab_train.npz",
        "--attacks", "attribute", "--sensitive", "3", "--format", "json",
    )  # fmt: skip
    assert res.code == 1, res.err
    body = json.loads(res.out)
    attribute = body["assessment"]["attribute"]
    assert attribute["sensitive_column"] == 3
    assert attribute["thresholds"] == {"max_advantage": 0.1, "max_member_gap": 0.05}
    best = max(r["member_advantage"] for r in attribute["results"] if r["uses_model"])
    assert best > 0.1
    assert "GAR-AIN-001" in {f["rule"]["id"] for f in body["report"]["findings"]}

    inverted = run(
        cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--attacks", "inversion",
        "--inversion-steps", "60", "--format", "json",
    )  # fmt: skip
    assert inverted.code == 1, inverted.err
    inversion = json.loads(inverted.out)["assessment"]["inversion"]
    assert len(inversion["reconstructions"]) == 10
    assert inversion["identification_rate"] >= 0.5
    assert inversion["thresholds"] == {"min_identified": 0.5}
    page = Path("inversion.html")
    run(cli, "--model", str(files["mlp"]), "--data", str(files["npz"]), "--attacks", "inversion",
        "--inversion-steps", "20", "--format", "html", "-o", str(page))  # fmt: skip
    html = page.read_text(encoding="utf-8")
    assert "Model inversion" in html
    assert html.count("data:image/png;base64,") == 20  # a reconstruction and a class mean per class
    forest = run(cli, "--model", "rf.joblib", "--data", "tab_test.npz", "--attacks", "inversion")
    assert forest.code == 2
    assert "model inversion needs input gradients" in forest.err
