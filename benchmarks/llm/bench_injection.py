"""Quality and speed of the first-stage injection detector: benchmarks/results/llm-injection.json.

    python benchmarks/llm/bench_injection.py               # the shipped model, full run (~10 min, 2 cores)
    python benchmarks/llm/bench_injection.py --skip-loso   # without the leave-one-source-out retraining

What it measures, all at the model's calibrated threshold unless a field says otherwise:

* ``heldout``: the test split of ``train_injection.py`` (20% of the groups, never seen in training or
  calibration): recall on injection and jailbreak rows, false-positive rate on benign rows, overall,
  per label, per source and per data file (dev-core and dev-extra apart, so the large templated extra
  file does not hide the curated one), with the confusion table. ``recall_at_1pct_fpr`` is the ROC
  point on the test split itself, for reference only: it is not a threshold anyone could have chosen.
* ``indirect``: BIPIA documents of the test split (injected vs. the clean documents), and a larger
  set made here: every held-out injection string of the short-prompt sources inserted at a sentence
  boundary of a held-out clean BIPIA document, scored against those clean documents.
* ``leave_one_source_out``: for each source group, a model trained and calibrated without that group
  scores all of the group's rows (recall for attack sources, false-positive rate for benign ones).
* ``multilingual``: false positives on ``benchmarks/llm/data/multilingual_benign.jsonl``, ordinary
  prompts in twelve languages written for this benchmark (the development data has almost none).
* ``latency``: one ``score()`` call per held-out text cut to at most 2,000 characters, after a warm-up;
  ``load_seconds`` is ``InjectionDetector.load()`` of the shipped model in a fresh process.
* ``stage2`` (with ``--stage2``, needs the ``llm-embed`` extra): the first stage alone against the two
  stages (``garrison.llm.embed_stage``) on the held-out split, each at its own validation-calibrated
  threshold (the block threshold) and at 1% FPR on the split itself, overall, per label, per source,
  per file; the BIPIA documents; the share of texts that reach the second stage; and the latency of
  ``score()`` with both stages on 200 texts of exactly 400 and 2,000 characters (held-out texts joined,
  as ``bench_scanners.py`` makes them) and on the held-out texts cut to 2,000 characters.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

import train_injection as training  # noqa: E402

from garrison.llm.injection import DEFAULT_MODEL_DIR, InjectionDetector  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "llm-injection.json"
MULTILINGUAL = HERE / "data" / "multilingual_benign.jsonl"
SHORT_INJECTION_SOURCES = (
    "garak_promptinject",
    "garak_sysprompt_extraction",
    "slabs_prompt_injection",
    "neuralchemy_core",
)
_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _confusion(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    """pairs of (is attack, flagged) -> confusion table, recall and false-positive rate."""
    tp = sum(1 for p, f in pairs if p and f)
    fn = sum(1 for p, f in pairs if p and not f)
    fp = sum(1 for p, f in pairs if not p and f)
    tn = sum(1 for p, f in pairs if not p and not f)
    return {
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
        "recall": _rate(tp, tp + fn),
        "fpr": _rate(fp, fp + tn),
        "attacks": tp + fn,
        "benign": fp + tn,
    }


def _recall_at_fpr(pos: list[float], neg: list[float], fpr: float) -> dict[str, Any]:
    threshold = training.calibrate(neg, fpr)
    return {
        "threshold": round(threshold, 6),
        "recall": _rate(sum(s >= threshold for s in pos), len(pos)),
        "fpr": _rate(sum(s >= threshold for s in neg), len(neg)),
    }


def heldout(detector: InjectionDetector, rows: list[training.Row]) -> dict[str, Any]:
    test = [r for r in rows if r.split == "test"]
    scores = [detector.score(r.text).score for r in test]
    flagged = [s >= detector.threshold for s in scores]
    out: dict[str, Any] = {
        "rows": len(test),
        "overall": _confusion([(r.positive, f) for r, f in zip(test, flagged, strict=True)]),
    }
    for key, name in (("per_label", "label"), ("per_source", "source"), ("per_file", "file")):
        groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for r, f in zip(test, flagged, strict=True):
            groups[getattr(r, name)].append((r.positive, f))
        out[key] = {k: _confusion(v) for k, v in sorted(groups.items())}
    pos = [s for r, s in zip(test, scores, strict=True) if r.positive]
    neg = [s for r, s in zip(test, scores, strict=True) if not r.positive]
    out["recall_at_1pct_fpr"] = _recall_at_fpr(pos, neg, 0.01)
    core = [(r, s) for r, s in zip(test, scores, strict=True) if r.file == "dev-core.jsonl"]
    out["core_recall_at_1pct_fpr"] = _recall_at_fpr(
        [s for r, s in core if r.positive], [s for r, s in core if not r.positive], 0.01
    )
    return out


def indirect(detector: InjectionDetector, rows: list[training.Row], seed: int) -> dict[str, Any]:
    test = [r for r in rows if r.split == "test"]
    docs = [r for r in test if r.source == "bipia" and not r.positive]
    injected = [r for r in test if r.source == "bipia" and r.positive]
    clean_scores = [detector.score(r.text).score for r in docs]
    real = [detector.score(r.text).score for r in injected]
    rng = random.Random(seed)
    payloads = [
        r.text for r in test if r.positive and r.source in SHORT_INJECTION_SOURCES and len(r.text) < 300
    ]
    buried: list[float] = []
    located = 0
    for payload in payloads:
        doc = rng.choice(docs).text
        cuts = [m.end() for m in _SENTENCE_END.finditer(doc)] or [len(doc)]
        cut = rng.choice(cuts)
        text = doc[:cut] + payload + "\n" + doc[cut:]
        result = detector.score(text)
        buried.append(result.score)
        top = result.spans[0] if result.spans else None
        located += bool(top and top.start <= cut and cut + len(payload) <= top.end + 1)
    threshold = detector.threshold
    return {
        "bipia_test": {
            "injected_docs": len(real),
            "clean_docs": len(docs),
            "recall": _rate(sum(s >= threshold for s in real), len(real)),
            "fpr_clean_docs": _rate(sum(s >= threshold for s in clean_scores), len(clean_scores)),
            "recall_at_2pct_fpr_on_clean_docs": _recall_at_fpr(real, clean_scores, 0.02),
        },
        "buried_payloads": {
            "what": "each held-out short injection inserted at a sentence boundary "
            "of a held-out clean BIPIA document",
            "texts": len(buried),
            "recall": _rate(sum(s >= threshold for s in buried), len(buried)),
            "fpr_clean_docs": _rate(sum(s >= threshold for s in clean_scores), len(clean_scores)),
            "top_span_contains_payload": _rate(located, len(buried)),
            "recall_at_2pct_fpr_on_clean_docs": _recall_at_fpr(buried, clean_scores, 0.02),
        },
    }


def _loso_one(args: tuple[str, int, float]) -> tuple[str, dict[str, Any]]:
    group, seed, c = args
    rows = training.load_rows()
    training.assign_splits(rows, seed)
    detector = training.train(rows, training.TrainSettings(seed=seed, c=c, exclude_groups=(group,)))
    members = [r for r in rows if r.source in training.SOURCE_GROUPS[group]]
    result = _confusion([(r.positive, detector.score(r.text).score >= detector.threshold) for r in members])
    result["threshold"] = round(detector.threshold, 6)
    result["sources"] = list(training.SOURCE_GROUPS[group])
    return group, result


def leave_one_source_out(seed: int, c: float, workers: int) -> dict[str, Any]:
    jobs = [(g, seed, c) for g in training.SOURCE_GROUPS]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        per_group = dict(pool.map(_loso_one, jobs))
    attacks = [(g, v) for g, v in per_group.items() if v["attacks"]]
    benign = [(g, v) for g, v in per_group.items() if v["benign"]]
    return {
        "per_group": per_group,
        "macro_recall_attack_groups": round(
            statistics.mean(v["recall"] for _, v in attacks if v["recall"] is not None), 4
        ),
        "macro_fpr_benign_groups": round(
            statistics.mean(v["fpr"] for _, v in benign if v["fpr"] is not None), 4
        ),
    }


def multilingual(detector: InjectionDetector) -> dict[str, Any]:
    rows = [
        json.loads(line) for line in MULTILINGUAL.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    results = [(r, detector.score(r["text"])) for r in rows]
    flagged = [
        {"lang": r["lang"], "text": r["text"], "score": round(res.score, 4)}
        for r, res in results
        if res.verdict == "injection"
    ]
    return {
        "prompts": len(rows),
        "languages": sorted({r["lang"] for r in rows}),
        "false_positives": len(flagged),
        "fpr": _rate(len(flagged), len(rows)),
        "flagged": flagged,
        "max_score": round(max(res.score for _, res in results), 4),
    }


def latency(detector: InjectionDetector, rows: list[training.Row]) -> dict[str, Any]:
    texts = [r.text[:2000] for r in rows if r.split == "test"]
    for text in texts[:50]:
        detector.score(text)
    timings: list[float] = []
    for text in texts:
        start = time.perf_counter()
        detector.score(text)
        timings.append(time.perf_counter() - start)
    ms = np.asarray(timings) * 1000
    long_texts = [t for t in texts if len(t) >= 1900]
    long_ms = []
    for text in long_texts:
        start = time.perf_counter()
        detector.score(text)
        long_ms.append((time.perf_counter() - start) * 1000)
    load = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys,time;sys.path.insert(0,'src');t=time.perf_counter();"
            "from garrison.llm.injection import InjectionDetector;InjectionDetector.load();"
            "print(time.perf_counter()-t)",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        "texts": len(texts),
        "median_chars": int(statistics.median(len(t) for t in texts)),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "texts_1900_to_2000_chars": len(long_ms),
        "p50_ms_1900_to_2000_chars": round(float(np.percentile(long_ms, 50)), 3) if long_ms else None,
        "p99_ms_1900_to_2000_chars": round(float(np.percentile(long_ms, 99)), 3) if long_ms else None,
        "load_seconds_fresh_process_incl_imports": round(float(load.stdout.strip()), 4),
    }


def _fixed_texts(rows: list[training.Row], size: int, seed: int, count: int = 200) -> list[str]:
    rng = random.Random(seed * 1000 + size)
    pool = [r.text for r in rows if r.split == "test"]
    out = []
    for _ in range(count):
        parts: list[str] = []
        while sum(len(p) + 2 for p in parts) < size:
            parts.append(rng.choice(pool))
        out.append("\n\n".join(parts)[:size])
    return out


def _timed(detector: InjectionDetector, texts: list[str]) -> dict[str, Any]:
    for text in texts[:20]:
        detector.score(text)
    ms = []
    for text in texts:
        start = time.perf_counter()
        detector.score(text)
        ms.append((time.perf_counter() - start) * 1000)
    return {
        "texts": len(texts),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(np.mean(ms)), 3),
    }


def stage2(model: Path, rows: list[training.Row], seed: int) -> dict[str, Any]:
    """First stage alone against both stages on the held-out split, and the two-stage latency."""
    first = InjectionDetector.load(model, second_stage=False)
    both = InjectionDetector.load(model, second_stage=True)
    assert both.second_stage is not None
    band = both.second_stage.band
    test = [r for r in rows if r.split == "test"]
    s1 = [first.score(r.text).score for r in test]
    s2 = [both.score(r.text).score for r in test]
    out: dict[str, Any] = {
        "band": list(band),
        "threshold_first": first.threshold,
        "threshold_two_stage": both.decision_threshold,
        "enabled_by_default": both.second_stage.metadata.get("enabled_by_default"),
        "validation": both.second_stage.metadata,
        "share_in_band": _rate(sum(band[0] <= s < band[1] for s in s1), len(s1)),
    }
    for name, scores, threshold in (
        ("first_stage", s1, first.threshold),
        ("two_stage", s2, both.decision_threshold),
    ):
        flagged = [s >= threshold for s in scores]
        part: dict[str, Any] = {
            "overall": _confusion([(r.positive, f) for r, f in zip(test, flagged, strict=True)])
        }
        for key, attr in (("per_label", "label"), ("per_source", "source"), ("per_file", "file")):
            groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
            for r, f in zip(test, flagged, strict=True):
                groups[getattr(r, attr)].append((r.positive, f))
            part[key] = {k: _confusion(v) for k, v in sorted(groups.items())}
        pos = [s for r, s in zip(test, scores, strict=True) if r.positive]
        neg = [s for r, s in zip(test, scores, strict=True) if not r.positive]
        part["recall_at_1pct_fpr"] = _recall_at_fpr(pos, neg, 0.01)
        bipia = [(r, s) for r, s in zip(test, scores, strict=True) if r.source == "bipia"]
        part["bipia_recall_at_2pct_fpr_on_clean_docs"] = _recall_at_fpr(
            [s for r, s in bipia if r.positive], [s for r, s in bipia if not r.positive], 0.02
        )
        out[name] = part
    cut = [r.text[:2000] for r in test]
    out["latency"] = {}
    for label, texts in (
        ("fixed_400", _fixed_texts(rows, 400, seed)),
        ("fixed_2000", _fixed_texts(rows, 2000, seed)),
        ("heldout_cut_2000", cut),
    ):
        in_band = sum(band[0] <= first.score(t).score < band[1] for t in texts)
        out["latency"][label] = {
            "first_stage": _timed(first, texts),
            "two_stage": _timed(both, texts),
            "share_in_band": _rate(in_band, len(texts)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--skip-loso", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--stage2", action="store_true", help="compare with the embedding second stage")
    parser.add_argument("--stage2-only", action="store_true", help="only the --stage2 part")
    args = parser.parse_args(argv)

    detector = InjectionDetector.load(args.model, second_stage=False)
    seed = int(detector.metadata.get("seed", 13))
    c = float(detector.metadata.get("C", training.TrainSettings().c))
    rows = training.load_rows()
    training.assign_splits(rows, seed)
    size = sum(p.stat().st_size for p in args.model.iterdir())
    report: dict[str, Any] = {
        "detector": "garrison.llm.injection first stage: hashed char 2-5 (word-bounded) "
        "+ word 1-2 n-grams, logistic regression",
        "data": "../shared/data/llm dev-core.jsonl + dev-extra.jsonl",
        "model": {
            "threshold": detector.threshold,
            "calibration": detector.metadata.get("calibration"),
            "seed": seed,
            "C": c,
            "artefact_bytes": size,
        },
        "machine": {
            "python": platform.python_version(),
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "command": "python benchmarks/llm/bench_injection.py" + (" --skip-loso" if args.skip_loso else ""),
    }
    if args.stage2 or args.stage2_only:
        report["stage2"] = stage2(args.model, rows, seed)
        if args.stage2_only:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            summary2 = {k: report["stage2"][k] for k in ("band", "share_in_band", "enabled_by_default")}
            for name in ("first_stage", "two_stage"):
                summary2[name] = {
                    "overall": report["stage2"][name]["overall"],
                    "recall_at_1pct_fpr": report["stage2"][name]["recall_at_1pct_fpr"],
                }
            summary2["latency"] = report["stage2"]["latency"]
            print(json.dumps(summary2, indent=1), file=sys.stderr)
            return 0
    report["heldout"] = heldout(detector, rows)
    report["indirect"] = indirect(detector, rows, seed)
    report["multilingual"] = multilingual(detector)
    report["latency"] = latency(detector, rows)
    if not args.skip_loso:
        report["leave_one_source_out"] = leave_one_source_out(seed, c, args.workers)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {
        "recall": report["heldout"]["overall"]["recall"],
        "fpr": report["heldout"]["overall"]["fpr"],
        "bipia": report["indirect"]["bipia_test"],
        "buried": report["indirect"]["buried_payloads"]["recall"],
        "multilingual_fp": report["multilingual"]["false_positives"],
        "p50_ms": report["latency"]["p50_ms"],
        "p99_ms": report["latency"]["p99_ms"],
    }
    print(json.dumps(summary, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
