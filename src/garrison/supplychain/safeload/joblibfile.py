"""joblib files, plain or compressed, read without joblib's loader.

``joblib.dump`` writes a pickle in which every NumPy array is replaced by a
``joblib.numpy_pickle.NumpyArrayWrapper`` whose ``BUILD`` is followed, outside the pickle opcodes, by
the array's raw bytes (after a padding byte and padding) or, for object arrays, by a nested pickle.
joblib reads that with its own unpickler; older joblib versions read the nested pickle with a plain
``pickle.Unpickler``, outside any ``find_class`` restriction.

Here the restricted unpickler reads the stream, the wrapper global is answered with a local
stand-in class (so joblib need not even be installed), and after its ``BUILD`` the array is read
from the stream: raw bytes into a NumPy array, or the nested pickle through the same restricted
unpickler and the same gate. The compression joblib used is recognised from the magic bytes and
undone by the scanner's bounded decompressors (LZ4 needs the ``lz4`` package).
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
from typing import IO, Any, ClassVar

from garrison.core.errors import UnsupportedFormatError
from garrison.formats.streams import open_stream, sniff_compression
from garrison.supplychain.containers.npjob import MAX_PICKLE_BYTES
from garrison.supplychain.safeload.unpickler import Gate, RestrictedUnpickler, TrailingDataError

_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_CHUNK = 1 << 24


class ArrayWrapper:
    """Stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: a bag for the state ``BUILD`` sets."""

    subclass: Any
    shape: Any
    order: Any
    dtype: Any


def open_decompressed(raw: IO[bytes]) -> IO[bytes]:
    """``raw`` itself when it is not compressed, else a stream of what it decompresses to.

    Decompression is the scanner's (:func:`garrison.formats.streams.decode_stream`), with the same
    output and ratio limits, so the loader reads exactly the bytes the scan could read.
    """
    head = raw.read(16)
    raw.seek(0)
    if head.startswith(b"ZF0x"):
        raise UnsupportedFormatError(
            "this is the joblib < 0.10 compressed layout, which keeps arrays in side files",
            hint="re-save it with a current joblib, from a trusted environment",
        )
    kind = sniff_compression(head)
    if kind is None:
        return raw
    if kind == "lz4":
        try:
            importlib.import_module("lz4.frame")
        except ImportError:
            raise UnsupportedFormatError(
                "this joblib file is LZ4-compressed and the lz4 package is not installed",
                hint="pip install lz4",
            ) from None
    return open_stream(raw.read, kind, max_bytes=MAX_PICKLE_BYTES)


class JoblibUnpickler(RestrictedUnpickler):
    """The restricted unpickler plus joblib's array layout."""

    def __init__(self, file: IO[bytes], *, gate: Gate | None = None, **kwargs: Any) -> None:
        super().__init__(file, gate=gate, **kwargs)
        self._source = file

    def find_class(self, module: str, name: str) -> Any:
        """As the restricted unpickler, but joblib's array wrapper is answered with the stand-in."""
        if (module, name) == _WRAPPER:
            self.gate.check(module, name)
            self._imported[id(ArrayWrapper)] = ArrayWrapper
            return ArrayWrapper
        return super().find_class(module, name)

    def _load_build_wrapper(self) -> None:
        self._load_build()
        if self.stack and type(self.stack[-1]) is ArrayWrapper:
            self.stack[-1] = self._read_array(self.stack[-1])

    def _read_array(self, wrapper: ArrayWrapper) -> Any:
        import numpy as np

        state = vars(wrapper)
        dtype, shape, order = state.get("dtype"), state.get("shape"), state.get("order", "C")
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or order not in ("C", "F"):
            raise pickle.UnpicklingError("joblib array wrapper without a valid dtype, shape and order")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"joblib array wrapper with an invalid shape {shape!r}")
        self._require_frame_end()
        if dtype.hasobject:
            array = type(self)(self._source, gate=self.gate).load()
            if not isinstance(array, np.ndarray):
                raise pickle.UnpicklingError("joblib object array did not unpickle to an array")
        else:
            if state.get("numpy_array_alignment_bytes") is not None:
                padding = self._exact(1)[0]
                self._exact(padding)
            count = math.prod(shape)
            data = self._read_exactly(count * dtype.itemsize)
            flat = np.frombuffer(data, dtype=dtype, count=count)
            array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
            if dtype.byteorder not in ("=", "|") and dtype.isnative is False:
                array = array.astype(dtype.newbyteorder("="))
        subclass = state.get("subclass")
        if isinstance(subclass, type) and subclass is not np.ndarray and issubclass(subclass, np.ndarray):
            array = array.view(subclass)
        return array

    def _require_frame_end(self) -> None:
        """joblib ends the pickle frame before array bytes; bytes read mid-frame would be a different
        stream from the one the scanner parsed."""
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if isinstance(frame, io.BytesIO) and frame.tell() != len(frame.getbuffer()):
            raise pickle.UnpicklingError("joblib array data starts inside a pickle frame")

    def _read_exactly(self, size: int) -> bytearray:
        """``size`` bytes of array data, allocated as they arrive (a header cannot reserve memory)."""
        data = bytearray()
        while len(data) < size:
            more = self._source.read(min(_CHUNK, size - len(data)))
            if not more:
                raise pickle.UnpicklingError("joblib array data is truncated")
            data += more
        return data

    def _exact(self, size: int) -> bytes:
        data = self._source.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("joblib array padding is truncated")
        return data

    dispatch: ClassVar[dict[int, Any]] = {
        **RestrictedUnpickler.dispatch,
        pickle.BUILD[0]: _load_build_wrapper,
    }


def load_joblib(raw: IO[bytes], gate: Gate) -> Any:
    """Load a joblib file (any compression) through the restricted unpickler; refuse trailing data."""
    stream = open_decompressed(raw)
    value = JoblibUnpickler(stream, gate=gate).load()
    if stream.read(1):
        raise TrailingDataError("data follows the end of the joblib stream")
    return value
