"""``garrison.safe_load``: verify, scan, then load through the restricted unpickler.

The steps, each of which fails closed:

1. open the file once (a regular file, links resolved) and hash it: the SHA-256 of exactly the
   bytes that will be loaded;
2. refuse formats with no safe loader (TorchScript, Keras, ONNX, GGUF, ...) before any work;
3. when a verifier is given or ``require_signature`` is set, call the verifier with the path and
   that digest; a missing verifier (when required) or a verifier that raises is a refusal;
4. scan the file with every registered detector (the same scan as ``garrison scan``) and refuse on
   any finding of severity medium or above, on any scan error, or when the bytes scanned are not
   the bytes opened in step 1 (:mod:`~garrison.supplychain.safeload.refusal`);
5. load from the handle opened in step 1, by the format the scan identified, with the restricted
   unpickler: it imports only allowlisted globals, whatever the scan said.

Composition note: this module runs the engine and the default registry (imported when called), so it
sits above the other supply-chain modules, where ARCHITECTURE.md puts ``garrison.load``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from garrison.core.errors import (
    GarrisonError,
    InputError,
    MissingExtraError,
    UnsupportedFormatError,
    UsageError,
)
from garrison.supplychain.safeload.errors import LoadRefusedError
from garrison.supplychain.safeload.refusal import check_scan, unpickler_refusal
from garrison.supplychain.safeload.unpickler import Gate, RefusedPickleError, TrailingDataError, parse_trusted

if TYPE_CHECKING:
    from garrison.core.config import Settings
    from garrison.core.registry import Registry
    from garrison.core.results import ScanReport

SUPPORTED_FORMATS: Mapping[str, str] = {
    "pickle": "Python pickle",
    "joblib": "joblib file (plain, zlib, gzip, bz2, xz, lzma; lz4 with the lz4 package)",
    "pytorch-zip": "PyTorch checkpoint (zip layout)",
    "pytorch-legacy": "PyTorch checkpoint (legacy layout)",
    "numpy": "NumPy .npy array",
    "numpy-object": "NumPy .npy object array",
    "numpy-npz": "NumPy .npz archive",
    "numpy-npz-object": "NumPy .npz archive with object arrays",
    "safetensors": "safetensors (into NumPy arrays)",
}
"""Format ids :func:`safe_load` loads, and what they are."""

_ELSEWHERE: Mapping[str, str] = {
    "torchscript": "TorchScript archives run their own code when loaded; there is no safe loader. "
    "Ask for a state_dict checkpoint or a safetensors file",
    "keras-v3": "scan it with `garrison scan`, then load it with keras.saving.load_model(path)",
    "hdf5-keras": "scan it with `garrison scan`, then load it with keras.saving.load_model(path)",
    "tf-savedmodel": "scan it with `garrison scan`; a SavedModel's graph can read and write files when run",
    "onnx": "ONNX holds no Python code: scan it with `garrison scan`, then load it with onnx or onnxruntime",
    "gguf": "GGUF holds no Python code: scan it with `garrison scan`, then load it with the gguf package",
}

_EXTRAS = {
    "torch": "torch",
    "sklearn": "sklearn",
    "joblib": "sklearn",
    "numpy": "sklearn",
    "scipy": "sklearn",
}


class SignatureVerifier(Protocol):
    """Checks that a trusted signature covers a file before it is loaded.

    Called with the file's path and ``sha256:<hex>`` of exactly the bytes that will be loaded; a
    verifier must check that the signature covers that digest (not just whatever the path holds at
    the time), and raise to refuse. :func:`garrison.integrity.gate.make_verifier` builds one from a
    :class:`~garrison.integrity.gate.SignaturePolicy`; with ``signature-key`` or ``signature-certs``
    set, safe loading builds it from the settings.
    """

    def __call__(self, path: Path, digest: str) -> None:
        """Return when the signature is valid for ``digest``; raise otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What :func:`safe_load_result` loaded, and the evidence it was safe to."""

    value: Any
    """The loaded object."""
    path: Path
    """The file loaded (links resolved)."""
    format: str
    """Format id the scan identified, a key of :data:`SUPPORTED_FORMATS`."""
    digest: str
    """``sha256:<hex>`` of the bytes loaded (and scanned)."""
    report: ScanReport
    """The scan that cleared the file; findings below :data:`REFUSE_AT` remain in it."""
    signature_verified: bool
    """Whether a verifier accepted the file's signature."""


def safe_load(
    path: str | os.PathLike[str],
    *,
    allow: Iterable[str] = (),
    map_location: str | None = "cpu",
    require_signature: bool = False,
    verifier: SignatureVerifier | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> Any:
    """Load a pickle, joblib, PyTorch, NumPy or safetensors file only if it is safe to.

    The file is scanned first and refused on any finding of medium severity or above, then loaded
    through a restricted unpickler that imports only the globals on Garrison's allowlist (the one
    the scanner uses). Nothing from a refused file runs.

    Args:
        path: The file to load.
        allow: Extra globals you trust, such as your own model class: ``"mypkg.models.Net"`` or
            ``"mypkg.models:Outer.Inner"``. Only exact names; globals known to run code are never
            accepted (``ConfigError``).
        map_location: Where PyTorch tensors go (``torch.load``'s ``map_location``); default CPU.
        require_signature: Refuse unless a verifier accepts the file's signature (with no verifier,
            every file is refused).
        verifier: Called, whenever given, with the path and the digest of the bytes to be loaded,
            before the scan; it raises to refuse.
        settings: Settings for the scan (rule selection, limits); defaults when omitted.
        registry: Detector registry for the scan; the default registry when omitted.

    Returns:
        The loaded object: a state dict, module, estimator, array, dict of arrays, ...

    Raises:
        LoadRefusedError: the scan flagged the file, the unpickler met a global outside the allowlist,
            the signature was required and not verified, or the file changed while it was checked.
        UnsupportedFormatError: the format has no safe loader here (the message says what to use).
        MissingExtraError: the format needs an optional dependency (``garrison[torch]``, ...).
        InputError: the file is broken in a way the loader could not read.
        UsageError: the path does not exist or is not a regular file.
    """
    return safe_load_result(
        path,
        allow=allow,
        map_location=map_location,
        require_signature=require_signature,
        verifier=verifier,
        settings=settings,
        registry=registry,
    ).value


def safe_load_result(
    path: str | os.PathLike[str],
    *,
    allow: Iterable[str] = (),
    map_location: str | None = "cpu",
    require_signature: bool = False,
    verifier: SignatureVerifier | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> LoadResult:
    """:func:`safe_load`, returning the loaded object together with its format, digest and scan."""
    from garrison.formats import HEAD_BYTES, identify

    label = os.fspath(path)
    gate = Gate(trusted=parse_trusted(allow))
    target, handle = _open_regular(Path(label))
    with handle:
        digest, size = _digest(handle)
        handle.seek(0)
        early = identify(target, handle.read(HEAD_BYTES), size).format
        _require_supported(label, early)
        required = require_signature or (settings is not None and settings.require_signature)
        verified = required or verifier is not None
        if verified:
            _verify(label, target, digest, verifier or _configured_verifier(settings))
        report = _scan(target, label, settings, registry)
        fmt = check_scan(label, target, report, digest, gate)
        _require_supported(label, fmt)
        handle.seek(0)
        value = _load(label, handle, fmt, gate, map_location)
    return LoadResult(
        value=value,
        path=target,
        format=fmt,
        digest=digest,
        report=report,
        signature_verified=verified,
    )


def is_onnx_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file's content identifies as an ONNX model (False when it cannot be read)."""
    from garrison.formats import HEAD_BYTES, identify

    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        return identify(Path(path), head, Path(path).stat().st_size).format == "onnx"
    except (OSError, GarrisonError):
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class OnnxLoadResult:
    """What :func:`safe_load_onnx` loaded, and the evidence it was safe to."""

    model: Any
    """The :class:`~garrison.assess.adapters_onnx.OnnxModel` over a hardened ONNX Runtime session."""
    path: Path
    """The file loaded (links resolved)."""
    digest: str
    """``sha256:<hex>`` of the bytes loaded (and scanned)."""
    report: ScanReport
    """The scan that cleared the file."""
    signature_verified: bool
    """Whether a verifier accepted the file's signature."""


def safe_load_onnx(
    path: str | os.PathLike[str],
    *,
    allow_external: bool = True,
    threads: int | None = None,
    require_signature: bool = False,
    verifier: SignatureVerifier | None = None,
    settings: Settings | None = None,
) -> OnnxLoadResult:
    """The ONNX counterpart of :func:`safe_load_result`, in the same order, each step failing closed.

    The file is read once and hashed; the signature is checked against that digest when required (by
    ``require_signature`` or the settings) or when a verifier is given or configured; the scan runs
    and refuses as for pickles (and must have scanned exactly those bytes); the bytes are checked
    again for custom operator domains and for external data (refused outright unless
    ``allow_external``: a signature covers only the ``.onnx`` file); then those bytes in memory,
    never the path again, become a hardened ONNX Runtime session
    (:func:`~garrison.assess.adapters_onnx.hardened_session`; ``threads`` bounds its intra-op threads).
    """
    from garrison.assess.adapters_onnx import (
        OnnxModel,
        OnnxRefusedError,
        check_onnx_bytes,
        hardened_session,
        read_regular,
    )

    label = os.fspath(path)
    target, data = read_regular(Path(label))
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    required = require_signature or (settings is not None and settings.require_signature)
    verified = required or verifier is not None
    if verified:
        _verify(label, target, digest, verifier or _configured_verifier(settings))
    report = _scan(target, label, settings, None)
    fmt = check_scan(label, target, report, digest, Gate())
    if fmt != "onnx":
        raise OnnxRefusedError(f"the scan read {label} as {fmt}, not ONNX")
    external = check_onnx_bytes(data, target.parent, label, allow_external=allow_external)
    session = hardened_session(data, external_dir=target.parent if external else None, threads=threads)
    return OnnxLoadResult(
        model=OnnxModel(session, name=target.name),
        path=target,
        digest=digest,
        report=report,
        signature_verified=verified,
    )


def _open_regular(path: Path) -> tuple[Path, IO[bytes]]:
    try:
        target = path.resolve(strict=True)
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise UsageError(f"path not found: {path}", hint="check the spelling") from None
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # O_NONBLOCK: a FIFO must not hang the open
        os.close(fd)
        raise UsageError(
            f"{path} is not a regular file",
            hint="safe loading loads one file; use `garrison scan` for a directory",
        )
    os.set_blocking(fd, True)
    return target, os.fdopen(fd, "rb")


def _digest(handle: IO[bytes]) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    while chunk := handle.read(1 << 20):
        sha.update(chunk)
        size += len(chunk)
    return f"sha256:{sha.hexdigest()}", size


def _require_supported(label: str, fmt: str) -> None:
    if fmt in SUPPORTED_FORMATS:
        return
    from garrison.formats import FORMATS

    name = FORMATS[fmt].label if fmt in FORMATS else fmt
    advice = _ELSEWHERE.get(fmt, "use the framework's own loader after a clean `garrison scan`")
    raise UnsupportedFormatError(
        f"{label} is a {name} file; safe loading handles " + ", ".join(sorted(SUPPORTED_FORMATS)),
        hint=advice,
    )


def _configured_verifier(settings: Settings | None) -> SignatureVerifier | None:
    """The integrity check of ``verify_before_load`` with the trust anchors in the settings, if any."""
    if settings is None or (settings.signature_key is None and not settings.signature_certs):
        return None
    from garrison.integrity.gate import SignaturePolicy, make_verifier

    return make_verifier(
        SignaturePolicy(require=True, key=settings.signature_key, certs=tuple(settings.signature_certs))
    )


def _verify(label: str, target: Path, digest: str, verifier: SignatureVerifier | None) -> None:
    if verifier is None:
        raise LoadRefusedError(
            label,
            "a verified signature is required, but no trusted key or certificate is configured",
            hint="set signature-key or signature-certs in garrison.toml (or pass --key/--cert to "
            "`garrison load`), or pass verifier=...",
        )
    try:
        verifier(target, digest)
    except GarrisonError as exc:
        raise LoadRefusedError(label, f"signature verification failed: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a verifier is a refusal, never a pass
        raise LoadRefusedError(label, f"signature verification failed: {type(exc).__name__}: {exc}") from None


def _scan(target: Path, label: str, settings: Settings | None, registry: Registry | None) -> ScanReport:
    from garrison.core.config import Settings
    from garrison.detectors import default_registry
    from garrison.engine import scan_path

    # The scan must hash the whole file, whatever its size: its digest is compared with the bytes loaded.
    scan_settings = (settings or Settings()).model_copy(update={"digest": "full"})
    return scan_path(
        target, settings=scan_settings, registry=registry or default_registry(), target_label=label
    )


def _dispatch(handle: IO[bytes], fmt: str, gate: Gate, map_location: str | None) -> Any:
    if fmt == "pickle":
        from garrison.supplychain.safeload.unpickler import RestrictedUnpickler

        value = RestrictedUnpickler(handle, gate=gate).load()
        if handle.read(1):
            raise TrailingDataError("data follows the end of the pickle stream")
        return value
    if fmt == "joblib":
        from garrison.supplychain.safeload.joblibfile import load_joblib

        return load_joblib(handle, gate)
    if fmt in ("pytorch-zip", "pytorch-legacy"):
        from garrison.supplychain.safeload.torchfile import load_torch

        return load_torch(handle, fmt, gate, map_location)
    if fmt in ("numpy", "numpy-object"):
        from garrison.supplychain.safeload.numpyfile import load_npy

        return _with_numpy(lambda: load_npy(handle, gate))
    if fmt in ("numpy-npz", "numpy-npz-object"):
        from garrison.supplychain.safeload.numpyfile import load_npz

        return _with_numpy(lambda: load_npz(handle, gate))
    from garrison.supplychain.safeload.numpyfile import load_safetensors

    return _with_numpy(lambda: load_safetensors(handle))


def _with_numpy(load: Any) -> Any:
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "safe loading of NumPy and safetensors files", extra="sklearn", module="numpy"
        ) from None
    return load()


def _load(label: str, handle: IO[bytes], fmt: str, gate: Gate, map_location: str | None) -> Any:
    try:
        value = _dispatch(handle, fmt, gate, map_location)
    except RefusedPickleError:
        raise unpickler_refusal(label, gate) from None
    except TrailingDataError as exc:
        raise LoadRefusedError(
            label, f"{exc}: a second stream that this loader would not read, but another reader might"
        ) from None
    except GarrisonError:
        if gate.refusals:
            raise unpickler_refusal(label, gate) from None
        raise
    except ModuleNotFoundError as exc:
        if gate.refusals:
            raise unpickler_refusal(label, gate) from None
        module = exc.name or "?"
        extra = _EXTRAS.get(module.split(".")[0])
        if extra is not None:
            raise MissingExtraError(f"loading {label}", extra=extra, module=module) from None
        raise InputError(f"{label} needs the module {module!r}, which is not installed") from None
    except Exception as exc:  # noqa: BLE001 - whatever a loader raises, the answer is "not loaded"
        if gate.refusals:
            raise unpickler_refusal(label, gate) from None
        raise InputError(f"{label} could not be loaded: {type(exc).__name__}: {exc}") from None
    if gate.refusals:  # refused inside library code that swallowed the exception: still refused
        raise unpickler_refusal(label, gate)
    return value
