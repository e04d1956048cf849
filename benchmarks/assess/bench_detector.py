"""Run-time input detectors against PGD on the evasion benchmark's digits CNN.

Each detector is fitted on the training digits, its threshold set to flag 1% of one half of the
clean test digits, and it is then measured on the other clean half (false positives) and on the
PGD-10 examples that fooled the CNN (detection rate), at ε = 0.1 and 0.3.

    python benchmarks/assess/bench_detector.py [--json benchmarks/results/assess-detector.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models

from garrison.assess import run_attack
from garrison.assess.input_detectors import (
    AnyOf,
    MahalanobisDetector,
    SqueezeDetector,
    detection_rate,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/assess-detector.json"))
    parser.add_argument("--fpr", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = models.digits()
    cnn = models.train_cnn(x_train, y_train)
    calib, clean = x_test[:180], x_test[180:]
    attack_x, attack_y = x_test[180:], y_test[180:]
    adversarial = {}
    for eps in (0.1, 0.3):
        _, outcome = run_attack(cnn, attack_x, attack_y, "pgd-10", eps)
        adversarial[eps] = np.asarray(outcome.x_adv[outcome.success])

    def detectors() -> dict[str, Any]:
        return {
            "squeeze (2 bits)": SqueezeDetector.for_model(cnn, bits=2, median=0),
            "mahalanobis, input space": MahalanobisDetector.fit(x_train, y_train, space="input"),
            "mahalanobis, penultimate": MahalanobisDetector.fit(
                x_train, y_train, model=cnn, space="penultimate"
            ),
            "any of squeeze and input-space mahalanobis": AnyOf(
                detectors=(
                    SqueezeDetector.for_model(cnn, bits=2, median=0),
                    MahalanobisDetector.fit(x_train, y_train, space="input"),
                )
            ),
        }

    rows = []
    for name, detector in detectors().items():
        started = time.perf_counter()
        detector.calibrate(calib, fpr=args.fpr)
        row = {
            "detector": name,
            "clean_false_positives": detection_rate(detector, clean),
            "seconds_per_1000_rows": (time.perf_counter() - started) / len(calib) * 1000,
        }
        for eps, x_adv in adversarial.items():
            row[f"detected_pgd10_eps{eps}"] = detection_rate(detector, x_adv)
            row[f"pgd10_eps{eps}_examples"] = len(x_adv)
        rows.append(row)
    result = {
        "benchmark": "assess-detector",
        "fpr_target": args.fpr,
        "clean_accuracy": float((cnn(torch.as_tensor(clean)).argmax(1).numpy() == y_test[180:]).mean()),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("| detector | false positives (clean) | PGD-10 ε=0.1 detected | PGD-10 ε=0.3 detected |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        cells = [f"{row['clean_false_positives']:.1%}"] + [
            f"{row[f'detected_pgd10_eps{eps}']:.1%} ({row[f'pgd10_eps{eps}_examples']})" for eps in (0.1, 0.3)
        ]
        print(f"| {row['detector']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
