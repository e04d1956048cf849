"""Attribute inference and model inversion, Garrison beside the Adversarial Robustness Toolbox 1.20.1.

**Attribute inference** (``ain``), on two tables:

- ``synthetic``: 3,000 rows made by this script (seed 0): six standard-normal columns and a sensitive
  column 3 with values {0, 1, 2}; column 0 is shifted by 0.5 × the sensitive value (what the other
  columns give away) and the binary label depends on columns 0-2 and the sensitive value, plus noise.
- ``diabetes``: scikit-learn's diabetes table (442 rows, 10 scaled columns), sensitive column 1 (sex,
  two values), label "disease progression above the median".

Each is shuffled (seed 0) and cut in thirds: members (train the target), non-members, and the
attacker's auxiliary records (sensitive value known). Targets: a random forest (100 trees, seed 0) and
a StandardScaler + MLP (128 hidden, no weight decay, 500 iterations, seed 0); both overfit. Garrison runs
every attack of :func:`garrison.assess.privacy_attribute.run_attribute_inference`; ART
(benchmarks/assess/art_inversion.py, its own virtualenv) runs AttributeInferenceBaseline,
AttributeInferenceBaselineTrueLabel and AttributeInferenceBlackBox with "rf" attack models (Garrison's
attack models are random forests too; ART's "nn" models took 3 to 7 minutes per attack on the shared
machine and reached no higher accuracy on synthetic/rf, so they are left out), fitted on the same
auxiliary records. ART's black box sees the target's predicted label for the record (what it is fitted
on); Garrison's output-match and learned see its probabilities. Every tool's accuracy and balanced
accuracy are computed here from its inferred values; *advantage* is accuracy minus the best
baseline's (either tool's, on the same records). Seconds: attack fitting and inference, target
training excluded.

**Model inversion** (``inv``): the digits CNN of models.py (8 epochs on 1,437 images), one
reconstruction per class. Garrison's MI-Face (300 Adam steps, TV 0.01, from the reference mean and
from zeros) and ART's MIFace (300 iterations, learning rate 0.1, from zeros — its default — and from
the same mean start); every tool's images are scored by
:func:`garrison.assess.inversion.score_reconstructions` against the training-set class means. Control:
Garrison on the same CNN untrained (its identification rate should be near chance, 10%).

    .venv/bin/python benchmarks/assess/bench_inversion.py [--parts ain,inv] \\
        [--json benchmarks/results/assess-inversion.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
import torch
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from garrison.assess.inversion import run_model_inversion, score_reconstructions
from garrison.assess.privacy_attribute import BASELINES, run_attribute_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import build_cnn, digits, train_cnn

ROOT = Path(__file__).resolve().parents[2]
ART_PYTHON = ROOT / "benchmarks" / ".work" / "art" / "bin" / "python"
ART_SCRIPT = ROOT / "benchmarks" / "assess" / "art_inversion.py"
STEPS = 300


# --- attribute inference -----------------------------------------------------------------------------


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """The synthetic table (see the module docstring), its labels and the sensitive column."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 3, n)
    other = rng.normal(size=(n, 6))
    other[:, 0] += 0.5 * s
    logit = other[:, 1] + other[:, 2] - 0.3 * other[:, 0] + 1.2 * (s == 2) - 1.0 * (s == 1)
    y = (logit + rng.normal(size=n) > 0).astype(np.int64)
    x = np.column_stack([other[:, :3], s, other[:, 3:]]).astype(np.float64)
    return x, y, 3


def diabetes() -> tuple[np.ndarray, np.ndarray, int]:
    """scikit-learn's diabetes table, label above the median, sensitive column 1 (sex)."""
    d = load_diabetes()
    y = (d.target > np.median(d.target)).astype(np.int64)
    return d.data.astype(np.float64), y, 1


def make_target(name: str) -> Any:
    """An unfitted target: ``rf`` or ``mlp``."""
    if name == "rf":
        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    return make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), alpha=0.0, max_iter=500, random_state=0)
    )


def balanced(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall over the values present."""
    return float(np.mean([np.mean(pred[truth == v] == v) for v in np.unique(truth)]))


def run_art_ain(target: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """ART's attribute-inference attacks in its own virtualenv."""
    with tempfile.TemporaryDirectory(prefix="garrison-ain-") as tmp:
        model, data, out = (Path(tmp, n) for n in ("target.joblib", "in.npz", "out.json"))
        joblib.dump(target, model)
        np.savez(data, **arrays)
        cmd = [str(ART_PYTHON), str(ART_SCRIPT), "ain", "--model", str(model), "--data", str(data)]
        cmd += ["--out", str(out)]
        subprocess.run(cmd, check=True, timeout=1800, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def bench_ain(table: str, target_name: str, with_art: bool) -> dict[str, Any]:
    """One table and target: Garrison's and ART's attacks, scored alike."""
    x, y, col = synthetic() if table == "synthetic" else diabetes()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    third = len(x) // 3
    xm, ym = x[:third], y[:third]
    xn, yn = x[third : 2 * third], y[third : 2 * third]
    xa, ya = x[2 * third :], y[2 * third :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        target = make_target(target_name).fit(xm, ym)
    report = run_attribute_inference(target, (xm, ym), (xn, yn), (xa, ya), sensitive=col, seed=0)
    values = np.asarray(report.values)
    truth = {
        "members": np.searchsorted(values, xm[:, col]),
        "non_members": np.searchsorted(values, xn[:, col]),
    }
    rows: list[dict[str, Any]] = []
    for r in report.results:
        rows.append(
            {
                "tool": "garrison",
                "attack": r.attack,
                "baseline": r.attack in BASELINES,
                "member_accuracy": r.member_accuracy,
                "non_member_accuracy": r.non_member_accuracy,
                "member_balanced_accuracy": r.member_balanced_accuracy,
                "non_member_balanced_accuracy": r.non_member_balanced_accuracy,
                "seconds": r.seconds,
            }
        )
    if with_art:
        arrays = {"x_aux": xa, "y_aux": ya, "x_m": xm, "y_m": ym, "x_n": xn, "y_n": yn}
        arrays |= {"col": np.asarray(col), "values": values}
        for attack, res in run_art_ain(target, arrays).items():
            pred = {g: np.abs(np.asarray(res[g])[:, None] - values[None, :]).argmin(1) for g in truth}
            rows.append(
                {
                    "tool": "art",
                    "attack": attack,
                    "baseline": "baseline" in attack,
                    "member_accuracy": float(np.mean(pred["members"] == truth["members"])),
                    "non_member_accuracy": float(np.mean(pred["non_members"] == truth["non_members"])),
                    "member_balanced_accuracy": balanced(pred["members"], truth["members"]),
                    "non_member_balanced_accuracy": balanced(pred["non_members"], truth["non_members"]),
                    "seconds": res["seconds"],
                }
            )
    best = {g: max(r[f"{g}_accuracy"] for r in rows if r["baseline"]) for g in ("member", "non_member")}
    for r in rows:
        for g in ("member", "non_member"):
            r[f"{g}_advantage"] = round(r[f"{g}_accuracy"] - best[g], 4)
        for k in list(r):
            if isinstance(r[k], float):
                r[k] = round(r[k], 4)
    attacks = [r for r in rows if not r["baseline"]]
    top = {
        t: max((r for r in attacks if r["tool"] == t), key=lambda r: r["member_advantage"], default=None)
        for t in ("garrison", "art")
    }
    by_name = {(r["tool"], r["attack"]): r for r in rows}
    # Same knowledge as ART's black box or less: the record's label, no probabilities of the record.
    label_only = max(
        (
            by_name[("garrison", a)]
            for a in ("confidence", "confidence-informed")
            if ("garrison", a) in by_name
        ),
        key=lambda r: r["member_advantage"],
    )
    art_box = by_name.get(("art", "art-blackbox-rf"))
    return {
        "table": table,
        "target": target_name,
        "sensitive_column": col,
        "values": list(report.values),
        "members": len(xm),
        "non_members": len(xn),
        "auxiliary": len(xa),
        "model_member_accuracy": report.model_member_accuracy,
        "model_non_member_accuracy": report.model_non_member_accuracy,
        "majority_accuracy": report.majority_accuracy,
        "best_baseline_member_accuracy": best["member"],
        "rows": rows,
        "best_garrison": top["garrison"]["attack"] if top["garrison"] else None,
        "best_art": top["art"]["attack"] if top["art"] else None,
        "best_member_advantage": {t: (r["member_advantage"] if r else None) for t, r in top.items()},
        "label_only": {
            "garrison_attack": label_only["attack"],
            "garrison_member_advantage": label_only["member_advantage"],
            "art_blackbox_member_advantage": art_box["member_advantage"] if art_box else None,
            "art_over_garrison_seconds": (
                round(art_box["seconds"] / label_only["seconds"], 2)
                if art_box and label_only["seconds"] > 0
                else None
            ),
        },
    }


# --- model inversion ---------------------------------------------------------------------------------


def run_art_inv(model: torch.nn.Module, x_start: np.ndarray) -> dict[str, Any]:
    """ART's MIFace in its own virtualenv: images from zeros and from ``x_start``, and seconds."""
    with tempfile.TemporaryDirectory(prefix="garrison-inv-") as tmp:
        state, data, out = (Path(tmp, n) for n in ("state.pt", "in.npz", "out.npz"))
        torch.save(model.state_dict(), state)
        np.savez(data, x_start=x_start)
        cmd = [str(ART_PYTHON), str(ART_SCRIPT), "inv", "--model", str(state), "--data", str(data)]
        cmd += ["--out", str(out), "--max-iter", str(STEPS)]
        subprocess.run(cmd, check=True, timeout=1800, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        saved = np.load(out)
        return {"seconds": json.loads(str(saved["seconds"])), "zeros": saved["zeros"], "mean": saved["mean"]}


def inv_row(tool: str, start: str, recs: Any, seconds: float) -> dict[str, Any]:
    """One table row from scored reconstructions."""
    sims = [r.similarity for r in recs]
    return {
        "tool": tool,
        "start": start,
        "identification_rate": float(np.mean([bool(r.identifiable) for r in recs])),
        "mean_confidence": round(float(np.mean([r.confidence for r in recs])), 4),
        "mean_similarity": round(float(np.mean(sims)), 4),
        "mean_margin": round(float(np.mean([r.similarity - r.best_other_similarity for r in recs])), 4),
        "mean_ssim": round(float(np.mean([r.ssim for r in recs])), 4),
        "nearest_class": [r.nearest_class for r in recs],
        "seconds": round(seconds, 3),
        "images": [np.round(r.image.reshape(8, 8), 3).tolist() for r in recs],
    }


def bench_inv(with_art: bool) -> dict[str, Any]:
    """The digits CNN: Garrison's and ART's reconstructions, scored alike; an untrained control."""
    xtr, ytr, xte, yte = digits()
    start = time.perf_counter()
    net = train_cnn(xtr, ytr)
    train_seconds = time.perf_counter() - start
    with torch.no_grad():
        test_accuracy = float((net(torch.as_tensor(xte)).argmax(1).numpy() == yte).mean())
    ref = (xtr, ytr)
    classes = list(range(10))
    rows = []
    mean_start = np.broadcast_to(xtr.mean(0), (10, *xtr.shape[1:])).copy()
    if with_art:
        art = run_art_inv(net, mean_start)
        for s in ("zeros", "mean"):
            recs = score_reconstructions(net, art[s], classes, ref, valid_range=(0.0, 1.0))
            rows.append(inv_row("art", s, recs, art["seconds"][s]))
    for init, label in (("low", "zeros"), ("mean", "mean")):
        rep = run_model_inversion(net, reference=ref, steps=STEPS, init=init, valid_range=(0.0, 1.0))
        rows.append(inv_row("garrison", label, rep.reconstructions, rep.seconds))
    torch.manual_seed(0)
    control = run_model_inversion(build_cnn().eval(), reference=ref, steps=STEPS, valid_range=(0.0, 1.0))
    control_row = inv_row("garrison", "mean", control.reconstructions, control.seconds)
    control_row["model"] = "untrained CNN (control)"
    means = [np.round(m.reshape(8, 8), 3).tolist() for m in control.class_means]
    garrison = [r for r in rows if r["tool"] == "garrison"]
    art_rows = [r for r in rows if r["tool"] == "art"]
    ratio = None
    if art_rows:
        g = next(r for r in garrison if r["start"] == "zeros")
        a = next(r for r in art_rows if r["start"] == "zeros")
        ratio = round(a["seconds"] / g["seconds"], 2) if g["seconds"] > 0 else None
    return {
        "model": "digits CNN (models.py)",
        "train_seconds": round(train_seconds, 2),
        "test_accuracy": test_accuracy,
        "steps": STEPS,
        "rows": rows,
        "control": control_row,
        "class_means": means,
        "art_over_garrison_seconds_from_zeros": ratio,
    }


def main() -> int:
    """Parse the command line, run the parts, print a summary, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="ain,inv")
    parser.add_argument("--no-art", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with_art = not args.no_art and ART_PYTHON.exists()
    parts = args.parts.split(",")
    out: dict[str, Any] = {
        "benchmark": "assess-inversion",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__},
        "art": "1.20.1" if with_art else None,
    }
    if "ain" in parts:
        out["attribute_inference"] = []
        for table in ("synthetic", "diabetes"):
            for target in ("rf", "mlp"):
                res = bench_ain(table, target, with_art)
                out["attribute_inference"].append(res)
                print(
                    f"\n{table}/{target}: model acc members {res['model_member_accuracy']:.3f} "
                    f"non-members {res['model_non_member_accuracy']:.3f}",
                    file=sys.stderr,
                )
                for r in res["rows"]:
                    print(
                        f"  {r['tool']:8s} {r['attack']:24s} members {r['member_accuracy']:.3f} "
                        f"({r['member_advantage']:+.3f}) non-members {r['non_member_accuracy']:.3f} "
                        f"({r['non_member_advantage']:+.3f}) {r['seconds']:.2f}s",
                        file=sys.stderr,
                    )
    if "inv" in parts:
        res = bench_inv(with_art)
        out["model_inversion"] = res
        for r in [*res["rows"], res["control"]]:
            print(
                f"  {r['tool']:8s} from {r['start']:5s} {r.get('model', '')} identified "
                f"{r['identification_rate']:.0%} conf {r['mean_confidence']:.3f} "
                f"sim {r['mean_similarity']:.3f} margin {r['mean_margin']:.3f} "
                f"ssim {r['mean_ssim']:.3f} {r['seconds']:.2f}s",
                file=sys.stderr,
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
