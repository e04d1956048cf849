"""The JSON report's own encoder writes exactly what ``json.dumps(..., indent=2)`` writes."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.evidence import Metric
from garrison.core.findings import Finding
from garrison.core.results import ScanReport
from garrison.report.json import _encode, render_json, report_to_dict


def _standard(report: ScanReport) -> str:
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def test_sample_report_renders_byte_for_byte_as_the_standard_library(sample_report: ScanReport) -> None:
    assert render_json(sample_report) == _standard(sample_report)


def test_many_findings_of_one_rule_share_its_references(sample_report: ScanReport) -> None:
    first = sample_report.findings[0]
    many = tuple(
        replace(first, message=f"finding {i} \u00e9\u2028", fingerprint=f"{i:032x}") for i in range(50)
    )
    report = replace(sample_report, findings=many + sample_report.findings)
    text = render_json(report)
    assert text == _standard(report)
    assert len(json.loads(text)["findings"]) == len(report.findings)


def test_a_nan_metric_is_null_in_both(sample_report: ScanReport) -> None:
    base = sample_report.findings[0]
    nan = Finding.create(
        rule=base.rule,
        asset=base.asset,
        message="metric that came out NaN",
        detector="test",
        evidence=(Metric(name="auc", value=math.nan, threshold=math.inf),),
    )
    report = replace(sample_report, findings=(nan,))
    assert render_json(report) == _standard(report)
    assert json.loads(render_json(report))["findings"][0]["evidence"][0]["value"] is None


def test_a_value_the_encoder_does_not_know_falls_back_to_the_standard_library(
    sample_report: ScanReport,
) -> None:
    # A non-string key and a non-finite float outside evidence: the standard encoder's outcome wins.
    for value in ({1: "a"}, {"k": (1, 2)}):
        out: list[str] = []
        try:
            _encode(value, 0, out)
            encoded: str | None = "".join(out)
        except Exception:  # noqa: BLE001 - the fast encoder declines; render_json then asks json.dumps
            encoded = None
        assert encoded in (None, json.dumps(value, indent=2, ensure_ascii=True, allow_nan=False))
    out = []
    with pytest.raises(ValueError, match="Out of range float"):
        _encode({"x": [math.inf]}, 0, out)


_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.integers(min_value=0, max_value=20))
def test_encoder_matches_json_dumps_at_every_level(value: Any, level: int) -> None:
    out: list[str] = []
    _encode(value, level, out)
    expected = json.dumps(value, indent=2, ensure_ascii=True, allow_nan=False)
    assert "".join(out) == expected.replace("\n", "\n" + "  " * level)
