"""Run ART's black-box membership-inference attacks on a saved scikit-learn target and save their scores.

Runs in ART's own virtualenv (benchmarks/.work/art), never in Garrison's .venv, and imports nothing
from garrison; benchmarks/assess/bench_privacy.py calls it as a subprocess and computes every tool's
metrics with the same code from the scores saved here.

    benchmarks/.work/art/bin/python benchmarks/assess/art_privacy.py \\
        --model TARGET.joblib --data IN.npz --out OUT.json [--shadows 4]

IN.npz: ``x_fit_in``/``y_fit_in`` and ``x_fit_out``/``y_fit_out`` (members and non-members whose
membership the supervised attack is told, to train its attack model), ``x_eval``/``y_eval`` (the
examples every tool scores: members first, then non-members) and ``x_pop``/``y_pop`` (population data
for ART's shadow models). OUT.json: ``{attack: {"scores": [...], "seconds": s}}``, scores aligned with
``x_eval``, higher = "member".

Attacks (ART 1.20.1): MembershipInferenceBlackBox(input_type="prediction") with attack_model_type
"nn", "rf" and "gb", fitted on the labelled split (ART's documented use); the same with "rf" fitted on
data from ART's ShadowModels (``--shadows`` copies of the target, the threat model Garrison's attacks
work in: no membership labels); MembershipInferenceBlackBoxRuleBased and LabelOnlyGapAttack (labels
only: "member" when classified correctly). LabelOnlyDecisionBoundary is left out (HopSkipJump per
example, hours on a forest).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from art.attacks.inference.membership_inference import (
    LabelOnlyGapAttack,
    MembershipInferenceBlackBox,
    MembershipInferenceBlackBoxRuleBased,
    ShadowModels,
)
from art.estimators.classification import SklearnClassifier


def onehot(y: np.ndarray, n: int) -> np.ndarray:
    """One-hot labels, as ART's estimators expect them."""
    return np.eye(n, dtype=np.float32)[y.astype(np.int64)]


def main() -> int:
    """Parse the command line, run every attack, write OUT.json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    target = joblib.load(args.model)
    d = np.load(args.data)
    n = len(target.classes_)
    clf = SklearnClassifier(model=target, clip_values=(0.0, 1.0))
    x_eval, y_eval = d["x_eval"], onehot(d["y_eval"], n)
    fit_in, fit_out = (d["x_fit_in"], onehot(d["y_fit_in"], n)), (d["x_fit_out"], onehot(d["y_fit_out"], n))
    out: dict[str, Any] = {}

    for kind in ("nn", "rf", "gb"):
        np.random.seed(args.seed)
        start = time.perf_counter()
        attack = MembershipInferenceBlackBox(clf, input_type="prediction", attack_model_type=kind)
        attack.fit(fit_in[0], fit_in[1], fit_out[0], fit_out[1])
        scores = attack.infer(x_eval, y_eval, probabilities=True)
        out[f"art-blackbox-{kind}"] = {
            "scores": np.asarray(scores, dtype=np.float64).reshape(len(x_eval), -1)[:, -1].tolist(),
            "seconds": time.perf_counter() - start,
        }

    np.random.seed(args.seed)
    start = time.perf_counter()
    # The fitted wrapper is the template: ART clones it unfitted (an unfitted template fails in
    # clone_for_refitting, nb_classes < 2).
    shadows = ShadowModels(clf, num_shadow_models=args.shadows, random_state=args.seed)
    (mx, my, mp), (nx, ny, nprd) = shadows.generate_shadow_dataset(d["x_pop"], onehot(d["y_pop"], n))
    attack = MembershipInferenceBlackBox(clf, input_type="prediction", attack_model_type="rf")
    attack.fit(mx, my, nx, ny, mp, nprd)
    scores = attack.infer(x_eval, y_eval, probabilities=True)
    out[f"art-shadow-rf-{args.shadows}"] = {
        "scores": np.asarray(scores, dtype=np.float64).reshape(len(x_eval), -1)[:, -1].tolist(),
        "seconds": time.perf_counter() - start,
    }

    for name, cls in (
        ("art-rule-based", MembershipInferenceBlackBoxRuleBased),
        ("art-label-gap", LabelOnlyGapAttack),
    ):
        start = time.perf_counter()
        scores = cls(clf).infer(x_eval, y_eval)
        out[name] = {
            "scores": np.asarray(scores, dtype=np.float64).reshape(-1).tolist(),
            "seconds": time.perf_counter() - start,
        }

    args.out.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
