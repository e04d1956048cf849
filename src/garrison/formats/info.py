"""What Garrison knows about each file format, and what a file name's extension promises.

Every format id Garrison can assign lives in :data:`FORMATS`. Each entry says whether loading a file
of that format with its usual library can run code chosen by whoever wrote the file
(:attr:`FormatInfo.executes_code`); the file-inventory detector and the scan engine key off that.

How ``executes_code`` was decided, format by format:

* ``pickle``, ``joblib``, ``pytorch-zip``, ``pytorch-legacy``: the payload is a pickle, and unpickling
  calls any importable callable (``REDUCE``, ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``). ``torch.load``
  with ``weights_only=True`` restricts this, but the file cannot know how it will be loaded.
* ``torchscript``: a TorchScript archive holds TorchScript code (``code/``) that runs on load and on
  call, plus pickled constants.
* ``numpy-object`` / ``numpy-npz-object``: an object dtype array is stored as a pickle and is read back
  with ``pickle.load`` once ``allow_pickle=True`` is passed. Plain ``numpy``/``numpy-npz`` hold raw
  numbers only.
* ``keras-v3`` and ``hdf5-keras``: a Keras model config may contain ``Lambda`` layers whose Python
  bytecode (marshal) runs when the model is loaded (and custom objects are imported by name).
  Keras 3's ``safe_mode`` blocks Lambda deserialisation, older Keras does not. A plain ``hdf5`` file
  (weights only, or data) runs nothing.
* ``tf-savedmodel``: TensorFlow documents models as programs; a graph can hold ops that read and
  write files or load custom op libraries when it runs.
* ``safetensors``, ``onnx``, ``gguf``, ``parquet``, ``csv``, ``json``, ``jsonl``, ``text``: data
  plus metadata, parsed by libraries that do not evaluate it. (ONNX custom operators need an
  implementation registered by the loader; GGUF chat templates are templates that a careless
  runtime may render unsandboxed: that is a finding for the GGUF scanner, not a property of the
  format.)
* containers (``zip``, ``tar``, ``gzip``...): run nothing themselves; their members are identified
  on their own when the engine opens them.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 65536
"""How many leading bytes the engine reads and hands to :func:`garrison.formats.identify`."""

READ_BUDGET = 4 * 2**20
"""Most bytes :func:`~garrison.formats.identify` reads beyond the head of one file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FormatInfo:
    """One file format Garrison can recognise from content."""

    id: str
    """Stable kebab-case id, for example ``pytorch-zip``."""
    label: str
    """Name shown to people, for example ``PyTorch zip checkpoint``."""
    executes_code: bool
    """Whether loading it the usual way can run code chosen by the file's author."""
    extensions: tuple[str, ...]
    """Lower-case file name endings (with the dot) that promise this format."""
    category: str = "other"
    """``model``, ``data``, ``archive``, ``compressed``, ``text`` or ``other``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Identification:
    """What :func:`~garrison.formats.identify` concluded about one file."""

    format: str
    """A key of :data:`FORMATS`."""
    details: tuple[tuple[str, str], ...] = ()
    """Facts found on the way, for example ``(('protocol', '4'),)`` or ``(('members', '12'),)``."""
    malformed: str | None = None
    """Why the structure is broken or truncated, if it is; ``None`` for a well-formed file."""

    def detail(self, key: str) -> str | None:
        """The value of one detail, or ``None``."""
        for name, value in self.details:
            if name == key:
                return value
        return None


_PT = (".pt", ".pth", ".ckpt", ".pth.tar")
_ZIP = (".zip",)
_COMPRESSED = (".gz", ".bz2", ".xz", ".lz4")
_TEXTY = (".txt",)


def _formats() -> dict[str, FormatInfo]:
    rows: list[tuple[str, str, bool, tuple[str, ...], str]] = [
        ("pickle", "Python pickle", True, (".pkl", ".pickle", ".pck", ".pth.tar"), "model"),
        (
            "joblib",
            "joblib pickle",
            True,
            (".joblib", ".jbl", ".pkl", ".pickle", ".z", *_COMPRESSED),
            "model",
        ),
        ("pytorch-zip", "PyTorch zip checkpoint", True, (*_PT, *_ZIP), "model"),
        ("pytorch-legacy", "PyTorch legacy checkpoint", True, _PT, "model"),
        ("torchscript", "TorchScript archive", True, (".pt", ".pth", ".ptl", ".torchscript", *_ZIP), "model"),
        ("numpy", "NumPy array", False, (".npy",), "data"),
        ("numpy-object", "NumPy object array (pickled)", True, (".npy",), "data"),
        ("numpy-npz", "NumPy npz archive", False, (".npz", *_ZIP), "data"),
        ("numpy-npz-object", "NumPy npz archive with object arrays", True, (".npz", *_ZIP), "data"),
        ("safetensors", "safetensors", False, (".safetensors",), "model"),
        ("onnx", "ONNX model", False, (".onnx", ".pb"), "model"),
        ("gguf", "GGUF model", False, (".gguf",), "model"),
        ("hdf5", "HDF5", False, (".h5", ".hdf5", ".hdf", ".he5"), "data"),
        ("hdf5-keras", "Keras HDF5 model", True, (".h5", ".hdf5", ".hdf", ".keras"), "model"),
        ("keras-v3", "Keras v3 archive", True, (".keras", *_ZIP), "model"),
        ("tf-savedmodel", "TensorFlow SavedModel", True, (".pb",), "model"),
        ("zip", "zip archive", False, _ZIP, "archive"),
        (
            "tar",
            "tar archive",
            False,
            (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", *_COMPRESSED),
            "archive",
        ),
        ("gzip", "gzip stream", False, (".gz",), "compressed"),
        ("bz2", "bzip2 stream", False, (".bz2",), "compressed"),
        ("xz", "xz stream", False, (".xz",), "compressed"),
        ("lz4", "LZ4 frame", False, (".lz4",), "compressed"),
        ("7z", "7-Zip archive", False, (".7z",), "archive"),
        ("parquet", "Parquet", False, (".parquet", ".pq"), "data"),
        ("csv", "CSV", False, (".csv", ".tsv", *_TEXTY), "data"),
        ("jsonl", "JSON Lines", False, (".jsonl", ".ndjson", *_TEXTY), "data"),
        ("json", "JSON", False, (".json", ".jsonl", ".ndjson", *_TEXTY), "data"),
        ("text", "text", False, (".txt", ".csv", ".tsv", ".md", ".rst", ".log"), "text"),
        ("empty", "empty file", False, (), "other"),
        ("unknown", "unknown binary", False, (), "other"),
    ]
    return {
        fid: FormatInfo(id=fid, label=label, executes_code=code, extensions=exts, category=cat)
        for fid, label, code, exts, cat in rows
    }


FORMATS: dict[str, FormatInfo] = _formats()
"""Every format id :func:`~garrison.formats.identify` can return."""

_BY_EXTENSION: dict[str, frozenset[str]] = {}
for _info in FORMATS.values():
    for _ext in _info.extensions:
        _BY_EXTENSION[_ext] = _BY_EXTENSION.get(_ext, frozenset()) | {_info.id}


def formats_for_extension(name: str) -> frozenset[str] | None:
    """Format ids a file name's extension promises, or ``None`` when it promises nothing.

    Matching is case-insensitive and prefers the longest known ending, so ``model.pth.tar`` is read
    as a PyTorch checkpoint and ``data.tar.gz`` as a compressed tar. Generic endings such as
    ``.bin`` or ``.dat`` promise nothing.
    """
    parts = name.lower().rsplit("/", 1)[-1].split(".")
    for count in (3, 2, 1):
        if len(parts) <= count:
            continue
        ending = "." + ".".join(parts[-count:])
        if ending in _BY_EXTENSION:
            return _BY_EXTENSION[ending]
    return None
