"""Fixtures shared by the supply-chain tests: the generated malicious and benign samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.supplychain.malicious import Sample, benign_samples, malicious_samples


@pytest.fixture(scope="session")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A path no sample's payload may ever create."""
    return tmp_path_factory.mktemp("canary") / "CANARY"


@pytest.fixture(scope="session")
def malicious(canary: Path) -> list[Sample]:
    """Every malicious sample."""
    return malicious_samples(canary)


@pytest.fixture(scope="session")
def benign(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    """Every benign sample."""
    return benign_samples(tmp_path_factory.mktemp("benign"))
