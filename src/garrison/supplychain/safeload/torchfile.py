"""PyTorch checkpoints (zip and legacy layouts) through ``torch.load`` with the restricted unpickler.

``torch.load(weights_only=True)`` uses torch's own unpickler and refuses a ``pickle_module``, so the
restricted module is passed with ``weights_only=False``: torch keeps doing what only it knows
(storages, devices, byte order, the archive reader) while every global and every header pickle goes
through the gate. Three of ``torch.load``'s side doors are closed before it is called:

- a zip that torch would treat as TorchScript (it has ``constants.pkl``) would be handed to
  ``torch.jit.load``, which runs code: refused, whatever the scanner called the file;
- a legacy file that also parses as a tar archive would take torch's pre-0.4 tar path, which
  extracts members to a temporary directory: refused;
- ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` makes torch reject any ``pickle_module``: reported as such.
"""

from __future__ import annotations

import os
import tarfile
from typing import IO, Any

from garrison.core.errors import InputError, MissingExtraError, UnsupportedFormatError
from garrison.supplychain.safeload.unpickler import Gate, RestrictedPickleModule

_ZIP_MAGIC = b"PK\x03\x04"


def load_torch(fh: IO[bytes], fmt: str, gate: Gate, map_location: str | None) -> Any:
    """``torch.load`` of ``fh`` (format id ``pytorch-zip`` or ``pytorch-legacy``) through ``gate``."""
    try:
        import torch
    except ImportError:
        raise MissingExtraError(
            "safe loading of PyTorch checkpoints", extra="torch", module="torch"
        ) from None
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise InputError(
            "TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, so torch.load refuses Garrison's restricted unpickler",
            hint="unset it for this process; safe loading already restricts every global",
        )
    fh.seek(0)
    is_zip = fh.read(4) == _ZIP_MAGIC
    fh.seek(0)
    if is_zip != (fmt == "pytorch-zip"):
        raise InputError(f"torch would read this file differently from the scan (identified as {fmt})")
    if is_zip:
        _refuse_torchscript(torch, fh)
    else:
        _refuse_tar(fh)
    return torch.load(
        fh,
        map_location=map_location,
        pickle_module=RestrictedPickleModule(gate),
        weights_only=False,
        mmap=False,
    )


def _refuse_torchscript(torch: Any, fh: IO[bytes]) -> None:
    serialization = torch.serialization
    open_reader = getattr(serialization, "_open_zipfile_reader", None)
    is_torchscript = getattr(serialization, "_is_torchscript_zip", None)
    if open_reader is None or is_torchscript is None:
        raise InputError(
            f"cannot tell whether torch {torch.__version__} would treat this zip as TorchScript",
            hint="safe loading supports the torch version pinned by the 'torch' extra",
        )
    try:
        with open_reader(fh) as archive:
            script = bool(is_torchscript(archive))
    except RuntimeError as exc:
        raise InputError(f"torch cannot read the zip archive: {exc}") from None
    finally:
        fh.seek(0)
    if script:
        raise UnsupportedFormatError(
            "torch.load would hand this archive to torch.jit.load (it holds constants.pkl), which runs "
            "its TorchScript code",
            hint="TorchScript has no safe loader; ask for a state_dict or a safetensors file instead",
        )


def _refuse_tar(fh: IO[bytes]) -> None:
    try:
        with tarfile.open(fileobj=fh, mode="r:"):
            polyglot = True
    except (tarfile.TarError, OSError, ValueError):
        polyglot = False
    finally:
        fh.seek(0)
    if polyglot:
        raise UnsupportedFormatError(
            "this legacy checkpoint also parses as a tar archive, which torch.load would extract "
            "(the pre-0.4 layout)",
            hint="re-save the checkpoint with a current torch, from a trusted environment",
        )
