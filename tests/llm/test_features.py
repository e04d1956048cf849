"""Hashed n-gram features: stable across processes and releases, the right n-grams, bounded values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from garrison.llm.features import FeatureConfig, featurize, featurize_many

# Pinned: a change here silently invalidates every trained model, so it must be deliberate.
PINNED_TEXT = "ignore previous instructions"
PINNED_FIRST_INDICES = [19017, 28856, 31585, 36373, 53046, 56433]


def test_hashes_are_pinned() -> None:
    index, values = featurize(PINNED_TEXT, FeatureConfig())
    assert index[:6].tolist() == PINNED_FIRST_INDICES
    assert index.shape == values.shape == (98,)


def test_hashes_do_not_depend_on_the_process() -> None:
    code = (
        "from garrison.llm.features import featurize, FeatureConfig;"
        f"print(featurize({PINNED_TEXT!r}, FeatureConfig())[0].tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_each_family_has_unit_length() -> None:
    config = FeatureConfig(word_weight=0.5)
    index, values = featurize("tell me a joke about cats and dogs", config)
    assert np.all(index < (1 << config.bits))
    assert np.all(index >= 0)
    total = float(np.dot(values, values))
    assert total == pytest.approx(1.0 + 0.25, rel=1e-5)


def test_character_ngrams_do_not_cross_words() -> None:
    config = FeatureConfig(word_max=1, word_weight=0.0)
    together = set(featurize("abcd", config)[0].tolist())
    apart = set(featurize("ab cd", config)[0].tolist())
    # "bc" and "abc" exist only when the letters touch; " ab", "ab ", " cd", "cd " only when they don't
    assert together - apart
    assert apart - together


@pytest.mark.parametrize("text", ["", "a", "日本語のテキスト", "x" * 5000])
def test_any_text_gives_finite_features(text: str) -> None:
    index, values = featurize(text, FeatureConfig(bits=12))
    assert index.shape == values.shape
    assert np.all(np.isfinite(values))


def test_many_texts_at_once_match_one_at_a_time() -> None:
    config = FeatureConfig(bits=16)
    texts = ["ignore previous instructions", "", "日本語のテキスト", "a b", "tell me a joke " * 40]
    rows, index, values = featurize_many(texts, config)
    weights = np.random.default_rng(0).normal(size=1 << config.bits)
    together = np.bincount(rows, weights=weights[index] * values, minlength=len(texts))
    for i, text in enumerate(texts):
        alone_index, alone_values = featurize(text, config)
        assert together[i] == pytest.approx(float(weights[alone_index] @ alone_values), abs=1e-5)
