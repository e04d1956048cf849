"""One regression test per published scanner bypass, citing its advisory.

Samples come from :mod:`tests.supplychain.malicious`; each test asserts the rules Garrison raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.supplychain.malicious import Sample, malicious_samples
from tests.supplychain.pickle.helpers import scan_sample

_CANARY = Path("/nonexistent/garrison-canary")
_ADVISORIES = sorted({s.advisory for s in malicious_samples(_CANARY) if s.advisory})


def _by_advisory(advisory: str) -> list[Sample]:
    return [s for s in malicious_samples(_CANARY) if s.advisory == advisory]


@pytest.mark.parametrize("advisory", _ADVISORIES)
def test_published_bypass_is_caught(advisory: str) -> None:
    """Each advisory's sample is flagged with its expected rules (picklescan, fickling, modelscan)."""
    for sample in _by_advisory(advisory):
        found = {f.rule.id for f in scan_sample(sample)}
        assert sample.expected_rules <= found, (advisory, sample.name, found)


def test_cve_2025_1716_pip_main() -> None:
    """CVE-2025-1716: picklescan did not treat pip as unsafe (pip.main installs packages)."""
    [sample] = _by_advisory("CVE-2025-1716")
    assert "GAR-PKL-001" in {f.rule.id for f in scan_sample(sample)}


def test_ghsa_vvpj_8cmc_gx39_pkgutil_resolve_name_universal_bypass() -> None:
    """GHSA-vvpj-8cmc-gx39: pkgutil.resolve_name reaches any callable; the call on its result is
    dynamic too."""
    found = set()
    for sample in _by_advisory("GHSA-vvpj-8cmc-gx39"):
        found |= {f.rule.id for f in scan_sample(sample)}
    assert {"GAR-PKL-001", "GAR-PKL-003"} <= found


def test_ghsa_mhc9_48gj_9gp3_reduce_followed_by_build() -> None:
    """GHSA-mhc9-48gj-9gp3 (fickling): a REDUCE followed by BUILD hid the call."""
    [sample] = _by_advisory("GHSA-mhc9-48gj-9gp3")
    assert "GAR-PKL-001" in {f.rule.id for f in scan_sample(sample)}


def test_cve_2026_56315_stdlib_command_helpers() -> None:
    """CVE-2026-56315: uuid, imaplib, _pyrepl.pager, _osx_support, _aix_support run commands."""
    samples = _by_advisory("CVE-2026-56315")
    assert len(samples) == 5
    for sample in samples:
        assert "GAR-PKL-001" in {f.rule.id for f in scan_sample(sample)}, sample.name


def test_picklescan_issue_14_memo_confusion() -> None:
    """picklescan issue #14 (2023): mixing BINPUT and MEMOIZE made the scanner resolve a safe name."""
    [sample] = [s for s in malicious_samples(_CANARY) if s.name == "memo-put-vs-memoize"]
    [finding] = [f for f in scan_sample(sample) if f.rule.id == "GAR-PKL-001"]
    assert "os.system" in finding.message


def test_modelscan_issue_267_nested_pickle_loads() -> None:
    """modelscan issue #267: pickle.loads of an embedded pickle was missed."""
    [sample] = [s for s in malicious_samples(_CANARY) if s.name == "nested-pickle-loads"]
    findings = scan_sample(sample)
    assert {"GAR-PKL-001", "GAR-PKL-004"} <= {f.rule.id for f in findings}
    assert any("nested pickle @" in f.message and "os.system" in f.message for f in findings)
