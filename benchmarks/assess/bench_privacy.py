"""Membership inference, Garrison beside the Adversarial Robustness Toolbox, on a random forest and an
overfit MLP trained on scikit-learn digits.

Data: scikit-learn's digits (1,797 8×8 images, 64 features scaled to [0, 1]), shuffled with seed 0.
The first 600 rows train each target (the members), the next 600 are held out (the non-members), the
last 597 are the population an attacker may use (never seen by the targets). Digits is small and the
targets fit it perfectly, so both overfit: the forest (100 trees, scikit-learn defaults, seed 0) is
100% right on its members and about 97% on non-members; the MLP (one hidden layer of 256, no weight
decay, 400 iterations, seed 0) 100% versus about 96%.

Split for the comparison: ART's MembershipInferenceBlackBox is a supervised attack, fitted on members
and non-members whose membership it is told; it gets half of each (300 + 300). Every tool is then
scored on the other half (300 members, 300 non-members, the same rows for all). ART also runs with
training data from its ShadowModels on the population (no membership labels, Garrison's threat model),
and its two label-only rules. Garrison gets the same 300 + 300 to score, the 597 population rows, and no
membership labels; its shadows are trained by Garrison with ``shadow_size=600`` (the targets'
training-set size). With 300 non-members, TPR at 0.1% FPR is the TPR at zero false positives, and 1%
FPR is 3 false positives.

Every tool's metrics are computed by the same code (garrison.assess.privacy_lira.membership_metrics)
from its per-example scores; ART's scores come from benchmarks/assess/art_privacy.py, run in ART's
virtualenv (benchmarks/.work/art) as a subprocess on the same pickled target. Seconds: the attack,
shadow training included, target training excluded.

    .venv/bin/python benchmarks/assess/bench_privacy.py [--targets rf,mlp] [--shadows-rf 64] \\
        [--shadows-mlp 16] [--json benchmarks/results/assess-privacy.json]

Goal (issue 6): on the forest, Garrison's LiRA reaches at least 2× the TPR at 1% FPR of ART's best
black-box attack; on the MLP, report what LiRA reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from garrison.assess.privacy import run_membership
from garrison.assess.privacy_lira import membership_metrics

ROOT = Path(__file__).resolve().parents[2]
ART_PYTHON = ROOT / "benchmarks" / ".work" / "art" / "bin" / "python"
ART_SCRIPT = ROOT / "benchmarks" / "assess" / "art_privacy.py"
MEMBERS = 600


def load() -> tuple[np.ndarray, np.ndarray]:
    """Digits as (1797, 64) float32 in [0, 1] and int labels, shuffled with seed 0."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], d.target.astype(np.int64)[order]


def make_target(name: str) -> Any:
    """An unfitted target: ``rf`` or ``mlp``."""
    if name == "rf":
        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(256,), alpha=0.0, max_iter=400, random_state=0)
    raise SystemExit(f"unknown target {name}")


def run_art(target: Any, arrays: dict[str, np.ndarray], shadows: int) -> dict[str, Any]:
    """ART's attacks in its own virtualenv; ``{attack: {"scores", "seconds"}}``."""
    with tempfile.TemporaryDirectory(prefix="garrison-mia-") as tmp:
        model, data, out = (Path(tmp, n) for n in ("target.joblib", "in.npz", "out.json"))
        joblib.dump(target, model)
        np.savez(data, **arrays)
        cmd = [str(ART_PYTHON), str(ART_SCRIPT), "--model", str(model), "--data", str(data)]
        cmd += ["--out", str(out), "--shadows", str(shadows)]
        subprocess.run(cmd, check=True, timeout=3600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def row(
    tool: str, attack: str, scores: np.ndarray, is_member: np.ndarray, seconds: float, **extra: Any
) -> dict[str, Any]:
    """One table row, metrics from the shared code."""
    m = membership_metrics(scores, is_member)
    return {
        "tool": tool,
        "attack": attack,
        "auc": round(m.auc, 4),
        "balanced_accuracy": round(m.balanced_accuracy, 4),
        "tpr_at_0_1pct_fpr": round(m.tpr_at_0_1pct_fpr, 4),
        "tpr_at_1pct_fpr": round(m.tpr_at_1pct_fpr, 4),
        "seconds": round(seconds, 2),
        "roc": [list(p) for p in m.roc],
        **extra,
    }


def bench_target(name: str, shadows: int, art_shadows: int, with_art: bool) -> dict[str, Any]:
    """Train ``name`` on the members, run ART's and Garrison's attacks, return the rows."""
    x, y = load()
    xm, ym, xn, yn, xp, yp = (
        x[:MEMBERS],
        y[:MEMBERS],
        x[MEMBERS : 2 * MEMBERS],
        y[MEMBERS : 2 * MEMBERS],
        x[2 * MEMBERS :],
        y[2 * MEMBERS :],
    )
    half = MEMBERS // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        target = make_target(name).fit(xm, ym)
        train_seconds = time.perf_counter() - start
    x_eval = np.concatenate([xm[half:], xn[half:]])
    y_eval = np.concatenate([ym[half:], yn[half:]])
    is_member = np.r_[np.ones(MEMBERS - half, bool), np.zeros(MEMBERS - half, bool)]
    rows = []
    if with_art:
        arrays = {
            "x_fit_in": xm[:half],
            "y_fit_in": ym[:half],
            "x_fit_out": xn[:half],
            "y_fit_out": yn[:half],
            "x_eval": x_eval,
            "y_eval": y_eval,
            "x_pop": xp,
            "y_pop": yp,
        }
        for attack, res in run_art(target, arrays, art_shadows).items():
            rows.append(row("art", attack, np.asarray(res["scores"]), is_member, res["seconds"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        report = run_membership(
            target,
            (xm[half:], ym[half:]),
            (xn[half:], yn[half:]),
            (xp, yp),
            shadows=shadows,
            shadow_size=MEMBERS,
            seed=0,
        )
    for r in report.results:
        rows.append(
            {
                "tool": "garrison",
                "attack": r.attack,
                "auc": round(r.auc, 4),
                "balanced_accuracy": round(r.balanced_accuracy, 4),
                "tpr_at_0_1pct_fpr": round(r.tpr_at_0_1pct_fpr, 4),
                "tpr_at_1pct_fpr": round(r.tpr_at_1pct_fpr, 4),
                "seconds": round(r.seconds, 2),
                "shadow_models": r.shadow_models,
                "roc": [list(p) for p in r.roc],
            }
        )
    art_rows = [r for r in rows if r["tool"] == "art"]
    best_art = max(art_rows, key=lambda r: (r["tpr_at_1pct_fpr"], r["auc"])) if art_rows else None
    lira = max((r for r in rows if r["attack"].startswith("lira")), key=lambda r: r["tpr_at_1pct_fpr"])
    return {
        "target": name,
        "params": make_target(name).get_params(),
        "train_seconds": round(train_seconds, 2),
        "member_accuracy": report.member_accuracy,
        "non_member_accuracy": report.non_member_accuracy,
        "shadows": shadows,
        "rows": rows,
        "best_art_tpr_at_1pct_fpr": best_art["tpr_at_1pct_fpr"] if best_art else None,
        "best_art_auc": max(r["auc"] for r in art_rows) if art_rows else None,
        "lira_tpr_at_1pct_fpr": lira["tpr_at_1pct_fpr"],
        "lira_over_art_tpr": (
            round(lira["tpr_at_1pct_fpr"] / best_art["tpr_at_1pct_fpr"], 2)
            if best_art and best_art["tpr_at_1pct_fpr"] > 0
            else None
        ),
        "notes": list(report.notes),
    }


def main() -> int:
    """Parse the command line, run the targets, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="rf,mlp")
    parser.add_argument("--shadows-rf", type=int, default=64)
    parser.add_argument("--shadows-mlp", type=int, default=16)
    parser.add_argument(
        "--art-shadows", type=int, default=4, help="ShadowModels count for ART's shadow attack"
    )
    parser.add_argument("--no-art", action="store_true")
    parser.add_argument("--json", type=Path, help="e.g. benchmarks/results/assess-privacy.json")
    args = parser.parse_args()
    with_art = not args.no_art and ART_PYTHON.exists()
    results = []
    for name in args.targets.split(","):
        shadows = args.shadows_rf if name == "rf" else args.shadows_mlp
        results.append(bench_target(name, shadows, args.art_shadows, with_art))
    for res in results:
        print(
            f"\n### {res['target']}: accuracy {res['member_accuracy']:.1%} on members, "
            f"{res['non_member_accuracy']:.1%} on non-members; Garrison shadows: {res['shadows']}\n"
        )
        print("| tool | attack | AUC | bal. acc. | TPR @0.1% FPR | TPR @1% FPR | seconds |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for r in res["rows"]:
            print(
                f"| {r['tool']} | {r['attack']} | {r['auc']:.3f} | {r['balanced_accuracy']:.3f} | "
                f"{r['tpr_at_0_1pct_fpr']:.1%} | {r['tpr_at_1pct_fpr']:.1%} | {r['seconds']:.1f} |"
            )
        if res["lira_over_art_tpr"] is not None:
            print(
                f"\nLiRA TPR at 1% FPR {res['lira_tpr_at_1pct_fpr']:.1%} = {res['lira_over_art_tpr']}x "
                f"ART's best ({res['best_art_tpr_at_1pct_fpr']:.1%})"
            )
    if args.json:
        doc = {
            "benchmark": "assess-privacy",
            "setup": {
                "data": "sklearn digits, shuffled seed 0: 600 members, 600 non-members, 597 population; "
                "all tools scored on members[300:] and non-members[300:]; ART's supervised attack "
                "fitted on members[:300] and non-members[:300]",
                "sklearn": sklearn.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "art": "1.20.1" if with_art else "not run",
            },
            "targets": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
