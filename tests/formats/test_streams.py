"""Bounded decompression as a file-like reader (what the joblib loader reads through)."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest

from garrison.core.errors import ResourceLimitError
from garrison.formats.streams import open_stream, sniff_compression


def test_small_reads_return_exactly_the_decompressed_bytes() -> None:
    data = os.urandom(300_000) + b"\x00" * 2_000_000
    for packed in (zlib.compress(data), gzip.compress(data)):
        kind = sniff_compression(packed[:16])
        assert kind is not None
        reader = open_stream(io.BytesIO(packed).read, kind, max_bytes=len(data))
        parts = []
        while chunk := reader.read(7919):
            parts.append(chunk)
        assert b"".join(parts) == data


def test_output_and_ratio_limits_hold() -> None:
    packed = zlib.compress(b"\x00" * (8 << 20))
    with pytest.raises(ResourceLimitError, match="expands past"):
        open_stream(io.BytesIO(packed).read, "zlib", max_bytes=1 << 20, max_ratio=10**6).read()
    with pytest.raises(ResourceLimitError, match="decompression bomb"):
        open_stream(io.BytesIO(packed).read, "zlib", max_bytes=1 << 30).read()
