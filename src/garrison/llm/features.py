"""Hashed character and word n-gram features, computed with numpy only.

Every n-gram is hashed with a polynomial hash over code points (wrapping 64-bit arithmetic, so it is
the same in every process and on every platform: Python's own ``hash`` is salted per process), mixed
with the splitmix64 finaliser, and folded into ``2**bits`` buckets with a sign taken from the top
bit, so collisions cancel out on average rather than add up. Counts are damped (``1 + log(count)``)
and each family (character n-grams, word n-grams) is scaled to unit length before the two are added,
the word family weighted by ``word_weight``.

Character n-grams are word-boundary aware: an n-gram may start or end on a space but never has one
inside, so ``"ignore previous"`` yields ``" ign"`` and ``"ous "`` but no n-gram that straddles the
two words. Text without spaces (Chinese, Japanese) is one long "word", which is what a character
model of such text should see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_MOD = 1 << 64
_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_BASE_INV = pow(_BASE, -1, _MOD)
_SPACE_CODE = 32

U64 = npt.NDArray[np.uint64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureConfig:
    """What the featuriser computes. Saved beside the weights; a model only works with its own."""

    bits: int = 20
    """Number of hash buckets is ``2**bits``."""
    char_min: int = 2
    """Shortest character n-gram."""
    char_max: int = 5
    """Longest character n-gram."""
    word_max: int = 2
    """Longest word n-gram (1 = words only, 2 = words and pairs of adjacent words)."""
    word_weight: float = 0.7
    """Weight of the unit-length word family relative to the character family."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "bits": self.bits,
            "char_min": self.char_min,
            "char_max": self.char_max,
            "word_max": self.word_max,
            "word_weight": self.word_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(
            bits=int(data["bits"]),
            char_min=int(data["char_min"]),
            char_max=int(data["char_max"]),
            word_max=int(data["word_max"]),
            word_weight=float(data["word_weight"]),
        )


class _Powers:
    """``BASE**i`` and ``BASE**-i`` modulo 2**64, grown on demand.

    Safe to share between threads: both tables are replaced together in one assignment, and each
    caller works with the pair it got from :meth:`tables`.
    """

    def __init__(self) -> None:
        self._tables: tuple[U64, U64] = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    def tables(self, n: int) -> tuple[U64, U64]:
        """The forward and inverse tables, at least ``n`` long."""
        current = self._tables
        if n <= current[0].shape[0]:
            return current
        size = max(n, 2 * current[0].shape[0], 4096)
        fwd = np.full(size, _BASE, dtype=np.uint64)
        fwd[0] = 1
        inv = np.full(size, _BASE_INV, dtype=np.uint64)
        inv[0] = 1
        grown = (np.cumprod(fwd, dtype=np.uint64), np.cumprod(inv, dtype=np.uint64))
        self._tables = grown
        return grown


_POWERS = _Powers()


def _mix(x: U64) -> U64:
    """splitmix64 finaliser (array in, array out; uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _salt(family: int, n: int) -> np.uint64:
    return np.uint64((family * 0x9E3779B97F4A7C15 + n * 0xD1B54A32D192ED03) % _MOD)


def _is_word(codes: U64) -> npt.NDArray[np.bool_]:
    """Which code points ``\\w`` matches (``str.isalnum()`` or ``_``), looked up per distinct code."""
    small = codes < np.uint64(128)
    out = np.zeros(codes.shape[0], dtype=np.bool_)
    out[small] = _ASCII_WORD[codes[small].astype(np.intp)]
    if not small.all():
        wide = ~small
        distinct, where = np.unique(codes[wide], return_inverse=True)
        flags = np.asarray([chr(c).isalnum() or c == 0x5F for c in distinct.tolist()], dtype=np.bool_)
        out[wide] = flags[where.ravel()]
    return out


_ASCII_WORD = np.asarray([chr(c).isalnum() or c == 0x5F for c in range(128)], dtype=np.bool_)


def _buckets(
    families: Sequence[tuple[U64, I64]], bits: int, count: int
) -> tuple[I64, I64, npt.NDArray[np.float64], I64]:
    """(row, bucket, value, family) for the hashed keys of several texts, one entry per used bucket.

    ``families[f]`` holds the keys of family ``f`` and the text each key belongs to. Counts are signed
    by the hash's top bit, damped to ``1 + log(count)``, and scaled to unit length within each text and
    family. Entries come ordered by family, then text, then bucket. One sort serves every family: the
    sort key is ``(family, text, bucket, sign)`` packed into one integer.
    """
    parts: list[I64] = []
    for family, (keys, segments) in enumerate(families):
        mixed = _mix(keys)
        # bit 0: the hash's top bit (the sign); bits 1..bits: the bucket; above: family and text.
        low = (mixed & np.uint64((1 << bits) - 1)).view(np.int64) << np.int64(1)
        low |= (mixed >> np.uint64(63)).view(np.int64)
        owner = segments + np.int64(family * count)
        parts.append((owner << np.int64(bits + 1)) | low)
    packed = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    if packed.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64), empty
    composite = packed >> np.int64(1)
    first = np.empty(composite.shape[0], dtype=np.bool_)
    first[0] = True
    np.not_equal(composite[1:], composite[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    negatives = np.add.reduceat(packed & np.int64(1), starts)
    signed = (np.diff(starts, append=packed.shape[0]) - 2 * negatives).astype(np.float64)
    uniq = composite[starts]
    keep = signed != 0
    uniq, signed = uniq[keep], signed[keep]
    value = np.sign(signed) * (1.0 + np.log(np.abs(signed)))
    owner = uniq >> np.int64(bits)
    norms = np.sqrt(np.bincount(owner, weights=value * value, minlength=len(families) * count))
    value = value / norms[owner]
    family = owner // count
    return owner - family * count, uniq & np.int64((1 << bits) - 1), value, family


def featurize_many(normalized: Sequence[str], config: FeatureConfig) -> tuple[I64, I64, F32]:
    """Sparse feature vectors of several already normalised texts, computed together.

    Returns ``(rows, indices, values)``: entry ``k`` says that text ``rows[k]`` has ``values[k]`` in
    bucket ``indices[k]``. Pairs may repeat (the character and word families can share a bucket);
    a dot product or a sparse matrix built from them adds repeats up, which is what is meant.
    Doing many texts at once costs little more than one text of the same total length.
    """
    count = len(normalized)
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    padded = [" " + text + " " for text in normalized]
    joined = "".join(padded)
    segment = np.repeat(np.arange(count, dtype=np.int64), [len(p) for p in padded])
    # surrogatepass: a lone surrogate (legal in a str, and in JSON as "\ud800") is one code like any other
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    length = codes.shape[0]
    fwd_powers, inv_powers = _POWERS.tables(length + 1)
    prefix = np.zeros(length + 1, dtype=np.uint64)
    np.cumsum(codes * fwd_powers[:length], dtype=np.uint64, out=prefix[1:])
    spaces = np.zeros(length + 1, dtype=np.int64)
    np.cumsum(codes == _SPACE_CODE, out=spaces[1:])

    char_keys: list[U64] = []
    char_rows: list[I64] = []
    for n in range(config.char_min, config.char_max + 1):
        if length < n:
            break
        # Slices for the n-grams starting at 0 .. m-1: no space inside, and all in one text.
        m = length - n + 1
        ok = (spaces[n - 1 : n - 1 + m] == spaces[1 : 1 + m]) & (segment[:m] == segment[n - 1 : n - 1 + m])
        grams = ((prefix[n : n + m] - prefix[:m]) * inv_powers[:m])[ok]
        char_keys.append(grams ^ _salt(1, n))
        char_rows.append(segment[:m][ok])
    families: list[tuple[U64, I64]] = [
        (
            np.concatenate(char_keys) if char_keys else np.zeros(0, dtype=np.uint64),
            np.concatenate(char_rows) if char_rows else np.zeros(0, dtype=np.int64),
        )
    ]

    # Words are the runs of \w characters; every text is padded with spaces, so none crosses texts.
    word = _is_word(codes)
    edges = np.flatnonzero(np.diff(word.astype(np.int8)))
    if edges.shape[0]:
        word_start, word_end = edges[0::2] + 1, edges[1::2] + 1
        word_row = segment[word_start]
        words = _mix((prefix[word_end] - prefix[word_start]) * inv_powers[word_start])
        word_keys = [words ^ _salt(2, 1)]
        word_rows = [word_row]
        total = words.shape[0]
        for n in range(2, config.word_max + 1):
            if total < n:
                break
            combined = words[: total - n + 1].copy()
            for k in range(1, n):
                combined = _mix(combined * np.uint64(_BASE) + words[k : total - n + 1 + k])
            same = word_row[: total - n + 1] == word_row[n - 1 :]
            word_keys.append(combined[same] ^ _salt(2, n))
            word_rows.append(word_row[: total - n + 1][same])
        families.append((np.concatenate(word_keys), np.concatenate(word_rows)))
    rows, index, values, family = _buckets(families, config.bits, count)
    out = values.astype(np.float32)
    is_word = family == 1
    out[is_word] *= np.float32(config.word_weight)
    return rows, index, out


def featurize(normalized: str, config: FeatureConfig) -> tuple[I64, F32]:
    """Sparse feature vector of one already normalised text: (bucket indices, values)."""
    _, index, values = featurize_many([normalized], config)
    return index, values
