"""Build the bundled example project that ``make demo`` and the docs scan.

Trains two small models on data that ships with scikit-learn (nothing is downloaded), saves them
the way real projects do, writes the data and a config, and plants one harmless but suspicious
file (a pickle named ``.safetensors``) so the demo has something to find. Deterministic: fixed
seeds, sorted keys, no timestamps in what it writes.

Run: ``python examples/train.py`` (needs numpy, scikit-learn, joblib and torch==2.13.0).
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import struct
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression

PROJECT = Path(__file__).resolve().parent / "project"
MODELS = PROJECT / "models"
DATA = PROJECT / "data"
SEED = 0


class PrintOnLoad:
    """Stands in for a malicious payload: unpickling it calls ``print`` and nothing else.

    A real attack would return ``(os.system, ("...",))`` here; Garrison flags both the same way.
    """

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("embeddings.safetensors was unpickled: a real payload would run here",))


def report(path: Path) -> None:
    """Print what was written, with its size and digest."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    print(f"wrote {path.relative_to(PROJECT.parent)} ({len(data)} bytes, sha256 {digest}...)")


def write_data() -> tuple[np.ndarray, np.ndarray]:
    """The iris data as CSV, and a few rows of it as JSON Lines."""
    iris = load_iris()
    DATA.mkdir(parents=True, exist_ok=True)
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
    with (DATA / "iris.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*names, "species"])
        for row, label in zip(iris.data, iris.target, strict=True):
            writer.writerow([*(f"{v:.1f}" for v in row), iris.target_names[label]])
    report(DATA / "iris.csv")
    with (DATA / "feedback.jsonl").open("w", encoding="utf-8") as handle:
        for index in range(0, 150, 15):
            record = {"id": index, "features": [round(float(v), 1) for v in iris.data[index]]}
            record["label"] = str(iris.target_names[iris.target[index]])
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    report(DATA / "feedback.jsonl")
    return iris.data, iris.target


def train_iris(features: np.ndarray, labels: np.ndarray) -> None:
    """A scikit-learn classifier saved with joblib (a pickle: loading it runs code)."""
    model = LogisticRegression(max_iter=1000, random_state=SEED).fit(features, labels)
    print(f"iris classifier: training accuracy {model.score(features, labels):.3f}")
    joblib.dump(model, MODELS / "iris_classifier.joblib")
    report(MODELS / "iris_classifier.joblib")


def _mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def train_digits() -> dict[str, torch.Tensor]:
    """A small PyTorch MLP on the 8x8 digits, saved with torch.save (a zip holding a pickle)."""
    torch.manual_seed(SEED)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    model = _mlp()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
    accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    print(f"digits MLP: training accuracy {accuracy:.3f}")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, MODELS / "digits_mlp.pt")
    report(MODELS / "digits_mlp.pt")
    return state


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """The same weights in safetensors, written by hand: u64 header length, JSON header, raw bytes.

    Follows the format's specification (little-endian F32, offsets relative to the data section,
    header padded with spaces to 8 bytes), so the ``safetensors`` package is not needed.
    """
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(state):
        data = state[name].numpy().astype("<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(state[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    report(path)


def plant_disguised_pickle(path: Path) -> None:
    """A pickle named like safetensors: the trick Garrison's GAR-FMT-101 exists to catch."""
    path.write_bytes(pickle.dumps({"embeddings": [0.1, 0.2, 0.3], "init": PrintOnLoad()}, protocol=4))
    report(path)


def write_project_files() -> None:
    """The project's Garrison config and README."""
    (PROJECT / "garrison.toml").write_text(
        "# Garrison settings for the example project. Keys are kebab-case; `garrison config show`\n"
        "# lists them all and where each value came from.\n"
        'fail-on = "high"\n'
        "max-file-bytes = 1073741824\n",
        encoding="utf-8",
    )
    report(PROJECT / "garrison.toml")


def main() -> None:
    """Write every artefact of the example project."""
    MODELS.mkdir(parents=True, exist_ok=True)
    features, labels = write_data()
    train_iris(features, labels)
    state = train_digits()
    write_safetensors(state, MODELS / "digits_mlp.safetensors")
    plant_disguised_pickle(MODELS / "embeddings.safetensors")
    write_project_files()


if __name__ == "__main__":
    main()
