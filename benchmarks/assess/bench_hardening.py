"""Hardening, measured by re-running Garrison's own attacks: adversarial training, output hardening, DP.

Three sections, each on scikit-learn digits (1,797 8×8 images in [0, 1]):

``at`` — PGD adversarial training (garrison.assess.hardening.adversarial_training) of the evasion
benchmark's CNN (benchmarks/assess/models.py, build_cnn), against the same CNN trained plainly
(models.train_cnn: Adam 1e-3, batches of 32, 8 epochs). Both on the 1,437 training digits, attacked on
the 360 test digits with Garrison's PGD-10 and APGD-CE at L∞ ε = 0.1 and 0.3 (run_evasion).

``outputs`` — output hardening (harden_outputs: the gateway's label / top-k / round controls) against
membership inference and extraction. Membership: the privacy benchmark's random forest (100 trees,
scikit-learn defaults, seed 0; it leaks clearly: benchmarks/results/assess-privacy.json) trained on
600 digits (members), 600 held out (non-members), the last 597 the attacker's population; Garrison's
loss attack (threshold calibrated on the population) and offline LiRA with 16 shadow forests, each
wrapped in the same output control (the attacker knows the gateway's policy). Extraction: the digits
CNN (trained plainly on the 1,437 training digits) copied by Garrison's default student from the
training digits as query pool, at 100 to 1,000 queries, fidelity on the 360 test digits; the attacker
gets exactly the hardened output (top-1 normalised is a one-hot label, so it equals label-only).

``dp`` — DP-SGD with Opacus (garrison.assess.hardening.train_dp) of an MLP (64-128-10) on the same 600
members, at several ε (δ = 1e-5, RDP accountant for speed), against the same recipe without DP (ε = ∞).
Test accuracy is on the 600 non-members; membership inference is the loss attack and offline LiRA with 8
shadows trained with the same DP recipe on the population (the attacker knows the recipe and ε).

    .venv/bin/python benchmarks/assess/bench_hardening.py [--sections at,outputs,dp] [--threads 1] \\
        [--json benchmarks/results/assess-hardening.json]

No peer tool runs here: the point is before versus after for Garrison's own attacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from garrison.assess.evasion import run_evasion
from garrison.assess.extraction import run_extraction
from garrison.assess.hardening import adversarial_training, harden_outputs
from garrison.assess.hardening_dp import train_dp
from garrison.assess.privacy import run_membership

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import SEED, build_cnn, predict, train_cnn
from models import digits as load_images

ROOT = Path(__file__).resolve().parents[2]
ATTACKS = ("pgd-10", "apgd-ce")
EPSILONS = (0.1, 0.3)
AT_RUNS: dict[str, dict[str, Any]] = {
    "PGD-AT ε=0.1": {"epsilon": 0.1, "steps": 7, "epochs": 12, "mix": 1.0},
    "PGD-AT ε=0.3": {"epsilon": 0.3, "steps": 7, "epochs": 12, "mix": 0.5},
}
OUTPUT_MODES: dict[str, dict[str, Any] | None] = {
    "full probabilities": None,
    "round(2)": {"mode": "round", "decimals": 2},
    "round(1)": {"mode": "round", "decimals": 1},
    "top-3": {"mode": "top-k", "k": 3},
    "top-1": {"mode": "top-k", "k": 1},
    "label": {"mode": "label"},
}
MIA_SHADOWS = 16
EXTRACTION_BUDGETS = (100, 250, 500, 1000)
DP_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
DP = {"delta": 1e-5, "epochs": 20, "batch_size": 150, "lr": 1.0, "max_grad_norm": 1.0}
DP_SHADOWS = 8


def log(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


# --- data and models ---------------------------------------------------------------------------------


def flat_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Flattened digits shuffled with seed 0: 600 members, 600 non-members, 597 population."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], d.target.astype(np.int64)[order]
    return {
        "members": (x[:600], y[:600]),
        "non_members": (x[600:1200], y[600:1200]),
        "population": (x[1200:], y[1200:]),
    }


def forest(x: np.ndarray, y: np.ndarray, seed: int = 0) -> RandomForestClassifier:
    """100 trees, scikit-learn defaults, one job."""
    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1).fit(x, y)


def dp_mlp(seed: int) -> torch.nn.Module:
    """64-128-10 ReLU MLP, initialised with ``seed``."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``x`` classified as ``y``."""
    return float(np.mean(predict(model, x) == y))


def mia_row(report: Any) -> dict[str, Any]:
    """The membership numbers the tables quote."""
    out: dict[str, Any] = {
        "member_accuracy": round(report.member_accuracy, 4),
        "non_member_accuracy": round(report.non_member_accuracy, 4),
    }
    for r in report.results:
        out[r.attack] = {
            "auc": round(r.auc, 4),
            "tpr_at_1pct_fpr": round(r.tpr_at_1pct_fpr, 4),
            "tpr_at_0_1pct_fpr": round(r.tpr_at_0_1pct_fpr, 4),
            "balanced_accuracy": round(r.balanced_accuracy, 4),
            "seconds": round(r.seconds, 2),
        }
    return out


# --- sections ----------------------------------------------------------------------------------------


def section_at() -> dict[str, Any]:
    """Plain CNN versus PGD adversarial training: clean and robust accuracy."""
    x_train, y_train, tx, ty = load_images()
    models: dict[str, tuple[torch.nn.Module, float, Any]] = {}
    t0 = time.perf_counter()
    models["plain (train_cnn)"] = (train_cnn(x_train, y_train), time.perf_counter() - t0, None)
    for name, kw in AT_RUNS.items():
        torch.manual_seed(SEED)
        start = build_cnn()
        t0 = time.perf_counter()
        trained, history = adversarial_training(
            start, x_train, y_train, batch_size=32, lr=1e-3, seed=SEED, valid_range=(0.0, 1.0), **kw
        )
        models[name] = (trained, time.perf_counter() - t0, history)
        log(f"{name}: trained in {time.perf_counter() - t0:.0f} s")
    rows = []
    for name, (model, seconds, history) in models.items():
        report = run_evasion(
            model, tx, ty, attacks=ATTACKS, epsilons=EPSILONS, valid_range=(0.0, 1.0), seed=0
        )
        clean = accuracy(model, tx, ty)
        row: dict[str, Any] = {
            "model": name,
            "clean_accuracy": round(clean, 4),
            "train_seconds": round(seconds, 1),
            "robust_accuracy": {
                f"{r.attack}@{r.epsilon:g}": round(r.robust_accuracy, 4) for r in report.results
            },
        }
        if history is not None:
            row["training"] = {k: v for k, v in history.to_dict().items() if k != "epochs"}
            row["last_epoch"] = history.epochs[-1].to_dict()
        rows.append(row)
    return {"test_samples": len(tx), "rows": rows}


class ShadowCache:
    """Trains each shadow once (keyed by its training rows) and hands out wrapped copies per output mode."""

    def __init__(self, train: Any) -> None:
        self.train = train
        self.models: dict[bytes, Any] = {}

    def train_fn(self, wrap: dict[str, Any] | None) -> Any:
        """``train_fn`` for run_membership: the cached shadow, behind the output control ``wrap``."""

        def train(x: np.ndarray, y: np.ndarray) -> Any:
            key = hashlib.sha256(x.tobytes()).digest()
            if key not in self.models:
                self.models[key] = self.train(x, y, len(self.models))
            model = self.models[key]
            return model if wrap is None else harden_outputs(model, **wrap)

        return train


def section_outputs() -> dict[str, Any]:
    """Membership inference and extraction against each output control."""
    data = flat_digits()
    target = forest(*data["members"])
    cache = ShadowCache(lambda x, y, i: forest(x, y, seed=1 + i))
    mia = []
    for name, wrap in OUTPUT_MODES.items():
        victim: Any = target if wrap is None else harden_outputs(target, **wrap)
        report = run_membership(
            victim,
            data["members"],
            data["non_members"],
            data["population"],
            attacks=("loss", "lira-offline"),
            shadows=MIA_SHADOWS,
            train_fn=cache.train_fn(wrap),
            seed=0,
        )
        mia.append({"output": name, **mia_row(report)})
        log(f"membership {name}: LiRA-offline AUC {report.result('lira-offline').auc:.3f}")
    x_train, y_train, tx, ty = load_images()
    cnn = train_cnn(x_train, y_train)
    extraction = []
    for name, wrap in OUTPUT_MODES.items():
        victim = cnn if wrap is None else harden_outputs(cnn, **wrap)
        t0 = time.perf_counter()
        rep = run_extraction(
            victim, x_train, tx, ty, budgets=EXTRACTION_BUDGETS, seed=0, epochs=30, batch_size=64
        )
        extraction.append(
            {
                "output": name,
                "shown": rep.output,
                "victim_accuracy": round(rep.victim_accuracy, 4),
                "fidelity": {str(p.queries): round(p.fidelity, 4) for p in rep.points},
                "student_accuracy": {str(p.queries): round(p.accuracy, 4) for p in rep.points},
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        log(f"extraction {name}: fidelity {[round(p.fidelity, 3) for p in rep.points]}")
    return {
        "membership": {
            "target": "RandomForestClassifier(100 trees, seed 0)",
            "shadows": MIA_SHADOWS,
            "rows": mia,
        },
        "extraction": {"victim": "models.train_cnn", "budgets": list(EXTRACTION_BUDGETS), "rows": extraction},
    }


def section_dp() -> dict[str, Any]:
    """DP-SGD at several ε: accuracy and membership inference."""
    data = flat_digits()
    (xm, ym), (xn, yn) = data["members"], data["non_members"]
    rows = []
    for eps in DP_EPSILONS:
        t0 = time.perf_counter()
        model, spent = train_dp(dp_mlp(0), xm, ym, target_epsilon=eps, seed=0, accountant="rdp", **DP)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0

        def shadow(x: np.ndarray, y: np.ndarray, i: int, eps: float = eps) -> Any:
            return train_dp(dp_mlp(1 + i), x, y, target_epsilon=eps, seed=1 + i, accountant="rdp", **DP)[0]  # type: ignore[arg-type]

        report = run_membership(
            model,
            (xm, ym),
            (xn, yn),
            data["population"],
            attacks=("loss", "lira-offline"),
            shadows=DP_SHADOWS,
            train_fn=ShadowCache(shadow).train_fn(None),
            seed=0,
        )
        log(
            f"dp ε={eps}: spent {spent.epsilon:.3f}, LiRA-offline AUC {report.result('lira-offline').auc:.3f}"
        )
        rows.append(
            {
                "target_epsilon": "inf" if math.isinf(eps) else eps,
                "training": spent.to_dict(),
                "train_seconds": round(seconds, 1),
                "test_accuracy": round(accuracy(model, xn, yn), 4),
                **mia_row(report),
            }
        )
    return {
        "model": "MLP 64-128-10, DP-SGD (SGD, no momentum)",
        "settings": {**DP, "accountant": "rdp"},
        "shadows": DP_SHADOWS,
        "rows": rows,
    }


# --- report ------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    """The tables the docs quote."""
    lines: list[str] = []
    if "at" in results:
        keys = [f"{a}@{e:g}" for e in EPSILONS for a in ATTACKS]
        lines += [
            f"### Adversarial training (digits CNN, {results['at']['test_samples']} test digits)",
            "",
            "| model | clean | " + " | ".join(keys) + " | train s |",
            "| --- | --- |" + " --- |" * len(keys) + " --- |",
        ]
        for r in results["at"]["rows"]:
            cells = " | ".join(f"{r['robust_accuracy'][k]:.3f}" for k in keys)
            lines.append(f"| {r['model']} | {r['clean_accuracy']:.3f} | {cells} | {r['train_seconds']:.0f} |")
        lines.append("")
    if "outputs" in results:
        mia = results["outputs"]["membership"]
        lines += [
            "### Output hardening: membership inference "
            f"(random forest, 600 + 600, {mia['shadows']} shadows)",
            "",
            "| output | loss AUC | loss TPR@1% | LiRA-offline AUC | LiRA-offline TPR@1% |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in mia["rows"]:
            lo, li = r["loss"], r["lira-offline"]
            lines.append(
                f"| {r['output']} | {lo['auc']:.3f} | {lo['tpr_at_1pct_fpr']:.3f} | {li['auc']:.3f} | "
                f"{li['tpr_at_1pct_fpr']:.3f} |"
            )
        ext = results["outputs"]["extraction"]
        budgets = ext["budgets"]
        lines += [
            "",
            "### Output hardening: extraction fidelity (digits CNN, 360 test digits)",
            "",
            "| output | " + " | ".join(f"{b:,} q" for b in budgets) + " |",
            "| --- |" + " --- |" * len(budgets),
        ]
        for r in ext["rows"]:
            lines.append(
                f"| {r['output']} | " + " | ".join(f"{r['fidelity'][str(b)]:.3f}" for b in budgets) + " |"
            )
        lines.append("")
    if "dp" in results:
        lines += [
            "### DP-SGD (Opacus): ε versus accuracy and membership inference (δ = 1e-5)",
            "",
            "| target ε | spent ε | noise σ | test acc | loss AUC | LiRA-offline AUC | LiRA TPR@1% "
            "| train s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in results["dp"]["rows"]:
            t = r["training"]
            spent = t["epsilon"] if isinstance(t["epsilon"], str) else f"{t['epsilon']:.2f}"
            lines.append(
                f"| {r['target_epsilon']} | {spent} | {t['noise_multiplier']:.2f} | "
                f"{r['test_accuracy']:.3f} | "
                f"{r['loss']['auc']:.3f} | {r['lira-offline']['auc']:.3f} | "
                f"{r['lira-offline']['tpr_at_1pct_fpr']:.3f} | {r['train_seconds']:.1f} |"
            )
    return "\n".join(lines)


def main() -> int:
    """Run the sections asked for, print the tables, write the JSON (merged into an existing one)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default="at,outputs,dp")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "assess-hardening.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
    sections = {"at": section_at, "outputs": section_outputs, "dp": section_dp}
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in sections]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {list(sections)}")
    previous: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    results: dict[str, Any] = dict(previous.get("results", {}))
    seconds: dict[str, float] = dict(previous.get("seconds", {}))
    for name in chosen:
        t0 = time.perf_counter()
        results[name] = sections[name]()
        seconds[name] = round(time.perf_counter() - t0, 1)
        log(f"section {name}: {seconds[name]:.0f} s")
    import opacus  # type: ignore[import-untyped]

    out = {
        "benchmark": "assess-hardening",
        "setup": {
            "threads": args.threads,
            "torch": torch.__version__,
            "opacus": opacus.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "command": "benchmarks/assess/bench_hardening.py --sections " + ",".join(sorted(results)),
        },
        "seconds": seconds,
        "results": results,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
