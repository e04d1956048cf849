"""Scanning helpers for the pickle tests: samples in, findings out."""

from __future__ import annotations

import io
import zipfile

from garrison.core.assets import Asset, AssetKind
from garrison.core.findings import Finding
from garrison.formats.streams import sniff_compression
from garrison.supplychain.containers.npjob import joblib_pickle
from garrison.supplychain.pickle import analyze_stream, pickle_findings
from tests.supplychain.malicious import Sample

ASSET = Asset(kind=AssetKind.FILE, locator="sample.pkl")


def pickles_of(sample: Sample) -> list[tuple[str | None, bytes]]:
    """The raw pickle streams inside a sample (data.pkl members of a PyTorch zip, compressed joblib)."""
    if sample.format == "joblib" and (kind := sniff_compression(sample.data[:64])) is not None:
        return [(None, joblib_pickle(io.BytesIO(sample.data).read, kind))]
    if sample.format != "pytorch-zip":
        return [(None, sample.data)]
    with zipfile.ZipFile(io.BytesIO(sample.data)) as archive:
        return [(n, archive.read(n)) for n in archive.namelist() if n.endswith(".pkl")]


def scan_bytes(data: bytes, *, legacy: bool = False, member: str | None = None) -> list[Finding]:
    """Every finding the pickle engine raises on ``data``."""
    analyses = analyze_stream(data, max_pickles=5 if legacy else None)
    return list(
        pickle_findings(
            analyses,
            asset=ASSET,
            detector="pickle-scanner",
            member=member,
            expected_pickles=5 if legacy else 1,
            allow_trailing=legacy,
        )
    )


def scan_sample(sample: Sample) -> list[Finding]:
    """Every finding on every pickle of a sample."""
    out: list[Finding] = []
    for member, data in pickles_of(sample):
        out.extend(scan_bytes(data, legacy=sample.format == "pytorch-legacy", member=member))
    return out
