"""Format identification from bytes: which format a file is, whatever its name says.

Pure Python and standard library only. Nothing here unpickles, imports or executes what it reads,
and every read is bounded (:data:`HEAD_BYTES` from the engine, at most :data:`READ_BUDGET` more).
"""

from garrison.formats.identify import identify
from garrison.formats.info import (
    FORMATS,
    HEAD_BYTES,
    READ_BUDGET,
    FormatInfo,
    Identification,
    formats_for_extension,
)

__all__ = [
    "FORMATS",
    "HEAD_BYTES",
    "READ_BUDGET",
    "FormatInfo",
    "Identification",
    "formats_for_extension",
    "identify",
]
