"""``garrison data backdoor`` and :func:`backdoor_scan`: tables, arrays, image folders, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from garrison.cli.main import main
from garrison.core.errors import InputError, UsageError
from garrison.data.backdoor_scan import backdoor_scan
from tests.data.backdoor_setup import TARGET, badnets, precision_recall, train_mlp

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("backdoor")
    xtr, ytr, _, _, rows = badnets(seed=0)
    model = train_mlp(xtr, ytr, seed=0)
    torch.save(model, root / "model.pt")
    np.savez(root / "train.npz", x=xtr.astype(np.float32), y=ytr)
    with (root / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *(f"p{i}" for i in range(64)), "digit"])
        for i, (x, y) in enumerate(zip(xtr, ytr, strict=True)):
            writer.writerow([f"s{i}", *(f"{v:.6f}" for v in x), int(y)])
    return {"root": root, "x": xtr, "y": ytr, "rows": rows, "model": model}


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """``garrison data backdoor ARGS --no-store`` through the real entry point: (exit code, all output)."""

    def invoke(*args: str) -> tuple[int, str]:
        code = main(["data", "backdoor", *args, "--no-store"])
        out, err = capsys.readouterr()
        return code, out + err

    return invoke


def test_npz_poison_is_flagged_and_gates_ci(trained: dict[str, Any], run: Any) -> None:
    root = trained["root"]
    code, text = run(str(root / "train.npz"), "--model", str(root / "model.pt"))
    assert code == 1, text
    assert "FLAGGED: probable backdoor poison" in text
    assert "class '0', activation-clustering" in text
    result = backdoor_scan(root / "train.npz", model=root / "model.pt")
    flagged = np.array([int(r.row[2:-1]) for r in result.flagged])
    precision, recall = precision_recall(flagged, trained["rows"])
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall
    assert result.flagged_classes == (str(TARGET),)
    assert all(r.methods == ("spectral-signatures", "activation-clustering") for r in result.flagged[:100])


def test_table_json_report(trained: dict[str, Any], tmp_path: Path, run: Any) -> None:
    root = trained["root"]
    out = tmp_path / "report.json"
    code, text = run(
        str(root / "train.csv"), "--model", str(root / "model.pt"), "--label", "digit", "--exclude", "id",
        "--method", "activation-clustering", "--format", "json", "-o", str(out),
    )  # fmt: skip
    assert code == 1, text
    doc = json.loads(out.read_text())
    assert doc["methods"] == ["activation-clustering"]
    assert doc["flagged_count"] == len(trained["rows"])
    rows = sorted(int(r["row"].removeprefix("row ")) - 1 for r in doc["flagged"])
    assert rows == trained["rows"].tolist()  # CSV row 1 is array row 0
    findings = doc["report"]["findings"]
    assert [f["rule"]["id"] for f in findings] == ["GAR-DATA-401"]
    assert findings[0]["location"]["column"] == "digit=0"


def test_clean_data_passes(tmp_path: Path, run: Any) -> None:
    xtr, ytr, _, _, _ = badnets(seed=1, rate=0.0)
    torch.save(train_mlp(xtr, ytr, seed=1), tmp_path / "model.pt")
    np.savez(tmp_path / "clean.npz", x=xtr.astype(np.float32), y=ytr)
    code, text = run(str(tmp_path / "clean.npz"), "--model", str(tmp_path / "model.pt"))
    assert code == 0, text
    assert "OK: no backdoor poison found" in text


def test_image_folder(trained: dict[str, Any], tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    x, y = trained["x"][:600], trained["y"][:600]
    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        folder = tmp_path / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.fromarray(np.round(pixels.reshape(8, 8) * 255).astype(np.uint8), mode="L").save(
            folder / f"{i}.png"
        )
    flat = torch.nn.Sequential(torch.nn.Flatten(), *trained["model"])
    torch.save(flat, tmp_path / "cnn.pt")
    result = backdoor_scan(tmp_path / "images", model=tmp_path / "cnn.pt", image_mode="L")
    assert result.rows == 600
    assert any("(N, C, H, W) layout: 1x8x8" in n for n in result.notes)
    poisoned = {f"{i}.png" for i in trained["rows"] if i < 600}
    flagged = {Path(r.row).name for r in result.flagged}
    assert len(flagged & poisoned) >= 0.9 * len(poisoned)
    assert len(flagged & poisoned) >= 0.9 * len(flagged)


def test_bad_input_is_a_clear_error(trained: dict[str, Any], tmp_path: Path, run: Any) -> None:
    root = trained["root"]
    torch.save(trained["model"].state_dict(), tmp_path / "state.pt")
    with pytest.raises(UsageError, match="not a PyTorch module"):
        backdoor_scan(root / "train.npz", model=tmp_path / "state.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(10, 3)), tmp_path / "wrong.pt")
    with pytest.raises(UsageError, match=r"does not accept inputs of shape \(64,\)"):
        backdoor_scan(root / "train.npz", model=tmp_path / "wrong.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(64, 3)), tmp_path / "narrow.pt")
    with pytest.raises(UsageError, match="10 classes"):
        backdoor_scan(root / "train.npz", model=tmp_path / "narrow.pt")
    np.savez(tmp_path / "keys.npz", inputs=trained["x"], labels=trained["y"])
    with pytest.raises(UsageError, match="has inputs, labels"):
        backdoor_scan(tmp_path / "keys.npz", model=root / "model.pt")
    np.savez(tmp_path / "objects.npz", x=np.array([object()] * 3), y=np.zeros(3, dtype=int))
    with pytest.raises(InputError, match=r"objects\.npz"):
        backdoor_scan(tmp_path / "objects.npz", model=root / "model.pt")
    with pytest.raises(UsageError, match="unknown method"):
        backdoor_scan(root / "train.npz", model=root / "model.pt", methods=("strip",))
    with pytest.raises(UsageError, match="more than --max-rows"):
        backdoor_scan(root / "train.npz", model=root / "model.pt", max_rows=10)
    code, text = run(str(root / "train.csv"), "--model", str(root / "model.pt"))
    assert code == 2
    assert "no column named 'label'" in text
    assert "Traceback" not in text
    code, text = run(str(root / "train.npz"), "--model", str(root / "model.pt"), "--image-size", "big")
    assert code == 2
    assert "HEIGHTxWIDTH" in text
