"""Run ART's attribute-inference and model-inversion attacks on saved targets and save what they infer.

Runs in ART's own virtualenv (benchmarks/.work/art), never in Garrison's .venv, and imports nothing
from garrison; benchmarks/assess/bench_inversion.py calls it as a subprocess and scores every tool's
output with the same code.

    benchmarks/.work/art/bin/python benchmarks/assess/art_inversion.py ain \\
        --model TARGET.joblib --data IN.npz --out OUT.json [--kinds rf,nn]
    benchmarks/.work/art/bin/python benchmarks/assess/art_inversion.py inv \\
        --model STATE.pt --data IN.npz --out OUT.npz [--max-iter 300]

``ain`` (ART 1.20.1, art.attacks.inference.attribute_inference): AttributeInferenceBaseline (other
columns only), AttributeInferenceBaselineTrueLabel (other columns and the label) and
AttributeInferenceBlackBox (other columns, the label and the target's predicted label for the
record, as ART fits it),
each with the attack_model_type(s) in ``--kinds`` (default "rf"; "nn" trains for 100 epochs and
takes minutes per attack on two shared cores), fitted on the auxiliary records (``x_aux``, ``y_aux``, the
sensitive column ``col``) and inferring the members' and non-members' values among ``values``.
OUT.json: ``{attack: {"members": [...], "non_members": [...], "seconds": s}}``, inferred values.

``inv`` (art.attacks.inference.model_inversion.MIFace) on the digits CNN of models.py, one
reconstruction per class, from zeros (ART's default start) and from ``x_start`` (Garrison's default
start, the reference mean), ``--max-iter`` steps at learning rate 0.1, window 100, threshold 0.99.
OUT.npz: ``zeros`` and ``mean`` (10, 1, 8, 8) and ``seconds`` (a JSON string).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from art.attacks.inference.attribute_inference import (
    AttributeInferenceBaseline,
    AttributeInferenceBaselineTrueLabel,
    AttributeInferenceBlackBox,
)
from art.attacks.inference.model_inversion import MIFace
from art.estimators.classification import PyTorchClassifier, SklearnClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import INPUT_SHAPE, NB_CLASSES, build_cnn


def attribute_inference(args: argparse.Namespace) -> None:
    """Fit each ART attribute-inference attack on the auxiliary records, infer members and non-members."""
    target = joblib.load(args.model)
    d = np.load(args.data)
    col = int(d["col"])
    values = [float(v) for v in d["values"]]
    clf = SklearnClassifier(model=target)
    out: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        attacks: dict[str, Any] = {
            f"art-baseline-{kind}": AttributeInferenceBaseline(attack_model_type=kind, attack_feature=col),
            f"art-baseline-label-{kind}": AttributeInferenceBaselineTrueLabel(
                attack_model_type=kind, attack_feature=col
            ),
            f"art-blackbox-{kind}": AttributeInferenceBlackBox(
                clf, attack_model_type=kind, attack_feature=col
            ),
        }
        for name, attack in attacks.items():
            np.random.seed(args.seed)
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            if name.startswith(("art-baseline-label", "art-blackbox")):
                attack.fit(d["x_aux"], d["y_aux"])
            else:
                attack.fit(d["x_aux"])
            inferred = {}
            for group in ("m", "n"):
                x, y = d[f"x_{group}"], d[f"y_{group}"]
                rest = np.delete(x, col, axis=1)
                if name.startswith("art-blackbox"):
                    # ART's black box is fitted on the predicted label (argmax), one column.
                    pred = np.argmax(clf.predict(x), axis=1).reshape(-1, 1)
                    res = attack.infer(rest, y=y, pred=pred, values=values)
                elif name.startswith("art-baseline-label"):
                    res = attack.infer(rest, y=y, values=values)
                else:
                    res = attack.infer(rest, values=values)
                inferred[group] = np.asarray(res, dtype=np.float64).reshape(-1).tolist()
            out[name] = {
                "members": inferred["m"],
                "non_members": inferred["n"],
                "seconds": time.perf_counter() - start,
            }
    args.out.write_text(json.dumps(out))


def inversion(args: argparse.Namespace) -> None:
    """MIFace, one reconstruction per class, from zeros and from the given start."""
    torch.set_num_threads(args.threads)
    model = build_cnn()
    model.load_state_dict(torch.load(args.model, map_location="cpu", weights_only=True))
    model.eval()
    clf = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=INPUT_SHAPE,
        nb_classes=NB_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    d = np.load(args.data)
    y = np.arange(NB_CLASSES)
    seconds: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, x0 in (("zeros", None), ("mean", d["x_start"].astype(np.float32))):
        attack = MIFace(
            clf,
            max_iter=args.max_iter,
            window_length=100,
            threshold=0.99,
            learning_rate=0.1,
            batch_size=NB_CLASSES,
            verbose=False,
        )
        start = time.perf_counter()
        arrays[name] = attack.infer(None if x0 is None else x0.copy(), y)
        seconds[name] = time.perf_counter() - start
    np.savez(args.out, seconds=json.dumps(seconds), **arrays)


def main() -> int:
    """Parse the command line and run one part."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("ain", "inv"))
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--kinds", default="rf", help="ain attack model types, e.g. rf,nn (nn: minutes)")
    args = parser.parse_args()
    if args.part == "ain":
        attribute_inference(args)
    else:
        inversion(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
