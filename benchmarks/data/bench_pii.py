"""Garrison's PII scanner side by side with Presidio on the same labelled corpus, in the same run.

Presidio (presidio-analyzer 2.2.366) lives in its own virtual environment, never in Garrison's:

    python3 -m venv benchmarks/.work/presidio
    benchmarks/.work/presidio/bin/pip install presidio-analyzer==2.2.366

and runs there in a subprocess with the no-op NLP engine (no spaCy model can be installed here, see
``docs/design/PEERS.md``), at score threshold 0. Entities are compared with :data:`PRESIDIO_TO_GARRISON`;
a prediction is a true positive when it overlaps a gold span of the same entity. Presidio entities
mapped to ``None`` are dropped before scoring, neither hits nor false positives: US_BANK_NUMBER,
US_DRIVER_LICENSE and US_PASSPORT fire on any digit run and would only pad Presidio's false positives,
URL, UUID, crypto wallets and medical licences have no counterpart here. Garrison's scanner also gets
the column name of table cells (Presidio's analyzer has no such input); both see the same text.

Timing. Both tools scan every text of the corpus, after the same one-line warm-up, ``--repeat`` times,
and the fastest pass counts. Garrison scans the way ``garrison scan data`` does
(:func:`garrison.data.profile.profile_dataset`): the values of one column together, with
:meth:`~garrison.recognizers.pii.Scanner.scan_many`, which gives the same matches as scanning each text alone
(the tests check that). Each Garrison pass starts cold: a new scanner and its checksum caches
cleared, so a pass never profits from having seen the same texts in the one before. Wall-clock and
CPU time are both kept (``speedup`` and ``speedup_cpu``): on a shared machine the CPU time of each
tool's own process is the steadier of the two. For reference the JSON also holds ``warm_seconds``
(a second pass with the same scanner: repeated values, as in a real column) and
``per_text_seconds`` (one ``scan()`` call per text, cold).

    python benchmarks/data/bench_pii.py --count 2000 --seed 7 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pii_corpus import make

from garrison.recognizers.pii import Scanner
from garrison.recognizers.pii_numbers import clear_caches

ROOT = Path(__file__).resolve().parents[2]
PRESIDIO_PYTHON = ROOT / "benchmarks" / ".work" / "presidio" / "bin" / "python"
PRESIDIO_TO_GARRISON: dict[str, str | None] = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit-card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip-address",
    "MAC_ADDRESS": "mac-address",
    "DATE_TIME": "date-of-birth",  # Presidio's only date entity; it does not tell birth dates apart
    "US_SSN": "national-id",
    "UK_NHS": "national-id",
    "UK_NINO": "national-id",
    "ES_NIF": "national-id",
    "ES_NIE": "national-id",
    "IT_FISCAL_CODE": "national-id",
    "IN_AADHAAR": "national-id",
    "IN_VOTER": "national-id",
    "PL_PESEL": "national-id",
    "SG_NRIC_FIN": "national-id",
    "AU_TFN": "tax-id",
    "US_ITIN": "tax-id",
    "IN_PAN": "tax-id",
    "PERSON": "person-name",
    "LOCATION": "postal-address",
    "US_BANK_NUMBER": None,
    "US_DRIVER_LICENSE": None,
    "US_PASSPORT": None,
    "URL": None,
    "UUID": None,
    "CRYPTO": None,
    "MEDICAL_LICENSE": None,
    "NRP": None,
}
PRESIDIO_SCRIPT = r"""
import json, sys, time
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
provider = NlpEngineProvider(nlp_configuration={
    "nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]})
engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
engine.analyze(text="warm up 555-123-4567", language="en")
times, cpu = [], []
for _ in range(int(sys.argv[2])):
    t0, c0 = time.perf_counter(), time.process_time()
    out = [[(r.entity_type, r.start, r.end, r.score) for r in engine.analyze(text=t, language="en",
            score_threshold=0)] for t in texts]
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
json.dump({"elapsed": min(times), "cpu": min(cpu), "times": times, "predictions": out}, sys.stdout)
"""
WARM_UP = "warm up 555-123-4567"


def run_presidio(
    records: list[dict[str, Any]], repeat: int
) -> tuple[list[list[tuple[str, int, int]]], dict[str, float]]:
    """Presidio's predictions (mapped to our entities) and its best analysis time over ``repeat`` passes."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        env = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
        done = subprocess.run(
            [str(PRESIDIO_PYTHON), "-c", PRESIDIO_SCRIPT, str(corpus), str(repeat)],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
    result = json.loads(done.stdout)
    predictions = []
    for found in result["predictions"]:
        mapped = []
        for entity_type, start, end, _score in found:
            ours = PRESIDIO_TO_GARRISON.get(entity_type)
            if ours is not None:
                mapped.append((ours, start, end))
        predictions.append(mapped)
    return predictions, {"seconds": float(result["elapsed"]), "cpu_seconds": float(result["cpu"])}


def _by_column(records: list[dict[str, Any]]) -> dict[str | None, list[int]]:
    """Record indexes grouped by column name, as a table's values are scanned column by column."""
    groups: dict[str | None, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(record["column"], []).append(i)
    return groups


def _scan_columns(
    scanner: Scanner, records: list[dict[str, Any]], groups: dict[str | None, list[int]]
) -> list[Any]:
    """Every record's matches, each column's values scanned together (what ``profile_dataset`` does)."""
    found: list[Any] = [None] * len(records)
    for column, indexes in groups.items():
        matches = scanner.scan_many([records[i]["text"] for i in indexes], column=column)
        for i, m in zip(indexes, matches, strict=True):
            found[i] = m
    return found


def run_garrison(
    records: list[dict[str, Any]], repeat: int
) -> tuple[list[list[tuple[str, int, int]]], dict[str, float]]:
    """Our predictions and timings: best cold pass over ``repeat``, a warm pass, one call per text."""
    groups = _by_column(records)
    Scanner().scan(WARM_UP)
    best = best_cpu = float("inf")
    found: list[Any] = []
    scanner = Scanner()
    for _ in range(repeat):
        clear_caches()
        scanner = Scanner()
        t0, c0 = time.perf_counter(), time.process_time()
        found = _scan_columns(scanner, records, groups)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    t0 = time.perf_counter()
    _scan_columns(scanner, records, groups)
    warm = time.perf_counter() - t0
    clear_caches()
    single = Scanner()
    t0 = time.perf_counter()
    one_by_one = [single.scan(r["text"], column=r["column"]) for r in records]
    per_text = time.perf_counter() - t0
    if one_by_one != found:
        raise AssertionError("scan_many and scan disagree on the corpus")
    predictions = [[(m.entity.value, m.start, m.end) for m in f] for f in found]
    return predictions, {
        "seconds": best,
        "cpu_seconds": best_cpu,
        "warm_seconds": warm,
        "per_text_seconds": per_text,
    }


def score(
    records: list[dict[str, Any]], predictions: list[list[tuple[str, int, int]]]
) -> dict[str, dict[str, float]]:
    """Per-entity precision, recall and F1 by span overlap."""
    tp_pred: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    tp_gold: dict[str, int] = defaultdict(int)
    n_gold: dict[str, int] = defaultdict(int)
    for record, found in zip(records, predictions, strict=True):
        gold = [(s["entity"], s["start"], s["end"]) for s in record["spans"]]
        for entity, start, end in found:
            n_pred[entity] += 1
            if any(g == entity and gs < end and start < ge for g, gs, ge in gold):
                tp_pred[entity] += 1
        for entity, start, end in gold:
            n_gold[entity] += 1
            if any(p == entity and ps < end and start < pe for p, ps, pe in found):
                tp_gold[entity] += 1
    table = {}
    for entity in sorted(set(n_gold) | set(n_pred)):
        p = tp_pred[entity] / n_pred[entity] if n_pred[entity] else 0.0
        r = tp_gold[entity] / n_gold[entity] if n_gold[entity] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        table[entity] = {
            "precision": p,
            "recall": r,
            "f1": f1,
            "gold": n_gold[entity],
            "predicted": n_pred[entity],
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Garrison PII scanner vs Presidio")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per tool (the best is kept)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-presidio", action="store_true")
    args = parser.parse_args(argv)
    records = make(args.count, args.seed)
    size_mb = sum(len(r["text"].encode()) for r in records) / 1e6
    results: dict[str, Any] = {"count": len(records), "megabytes": size_mb, "tools": {}}
    ours, timings = run_garrison(records, args.repeat)
    results["tools"]["garrison"] = {**timings, "scores": score(records, ours)}
    if not args.no_presidio:
        theirs, timings_p = run_presidio(records, args.repeat)
        results["tools"]["presidio"] = {**timings_p, "scores": score(records, theirs)}
    for tool in results["tools"].values():
        tool["mb_per_s"] = size_mb / tool["seconds"]
        tool["mb_per_cpu_s"] = size_mb / tool["cpu_seconds"]
        tool["texts_per_s"] = len(records) / tool["seconds"]
    tools = list(results["tools"])
    entities = sorted({e for t in tools for e in results["tools"][t]["scores"]})
    header = f"{'entity':16}" + "".join(f"{t + ' P/R/F1':>24}" for t in tools) + f"{'gold':>6}"
    print(header)
    for entity in entities:
        cells = []
        gold = 0
        for t in tools:
            s = results["tools"][t]["scores"].get(entity)
            cells.append(f"{s['precision']:.2f}/{s['recall']:.2f}/{s['f1']:.2f}" if s else "-")
            gold = max(gold, int(s["gold"]) if s else 0)
        print(f"{entity:16}" + "".join(f"{c:>24}" for c in cells) + f"{gold:>6}")
    for t in tools:
        r = results["tools"][t]
        print(
            f"{t}: {r['seconds']:.3f} s ({r['cpu_seconds']:.3f} s CPU), {r['mb_per_s']:.2f} MB/s, "
            f"{r['texts_per_s']:.0f} texts/s"
        )
    g = results["tools"]["garrison"]
    print(f"garrison warm pass {g['warm_seconds']:.3f} s, one scan() per text {g['per_text_seconds']:.3f} s")
    if "presidio" in results["tools"]:
        tools_ = results["tools"]
        ratio = tools_["garrison"]["mb_per_s"] / tools_["presidio"]["mb_per_s"]
        cpu_ratio = tools_["garrison"]["mb_per_cpu_s"] / tools_["presidio"]["mb_per_cpu_s"]
        results["speedup"] = ratio
        results["speedup_cpu"] = cpu_ratio
        print(f"throughput ratio garrison/presidio: {ratio:.0f}x wall clock, {cpu_ratio:.0f}x CPU time")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
