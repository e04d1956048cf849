"""Every malicious sample is flagged with its rules; no benign sample is flagged; nothing ran."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from garrison.core.severity import Severity
from tests.supplychain.malicious import Sample
from tests.supplychain.pickle.helpers import scan_sample


def test_every_malicious_sample_is_flagged_with_its_rules(malicious: list[Sample], canary: Path) -> None:
    missed = {}
    for sample in malicious:
        found = {f.rule.id for f in scan_sample(sample)}
        if not sample.expected_rules <= found:
            missed[sample.name] = (sorted(sample.expected_rules - found), sorted(found))
    assert missed == {}
    assert not canary.exists(), "a payload ran"


def test_every_malicious_sample_is_at_least_high(malicious: list[Sample]) -> None:
    for sample in malicious:
        worst = max((f.severity for f in scan_sample(sample)), default=Severity.INFO)
        assert worst >= Severity.HIGH, sample.name


def test_no_benign_sample_is_flagged(benign: list[Sample]) -> None:
    flagged = {s.name: [f.message for f in scan_sample(s)] for s in benign}
    assert {name: msgs for name, msgs in flagged.items() if msgs} == {}


def test_the_generator_covers_every_family(malicious: list[Sample], benign: list[Sample]) -> None:
    families = Counter(s.technique for s in malicious)
    assert families["denylist-gap"] >= 50
    assert families["parser-differential"] >= 15
    assert families["nested-pickle"] >= 2
    formats = {s.format for s in benign}
    assert {"pickle", "joblib", "pytorch-zip", "pytorch-legacy"} <= formats
    assert len({s.name for s in malicious + benign}) == len(malicious) + len(benign)


def test_findings_name_the_callable_and_how_it_was_reached(malicious: list[Sample]) -> None:
    sample = next(s for s in malicious if s.name == "memo-put-vs-memoize")
    [finding] = [f for f in scan_sample(sample) if f.rule.id == "GAR-PKL-001"]
    assert "os.system" in finding.message
    assert "BINGET 0" in finding.message
    assert "BINGET 1" in finding.message
    assert "called by REDUCE" in finding.message
    opcode = finding.evidence[0]
    assert opcode.kind == "opcode"
    assert opcode.to_dict()["argument"] == "os.system"
    assert finding.location.offset is not None
