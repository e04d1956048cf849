"""Encrypting, decrypting and rewrapping files by path, with atomic outputs.

Outputs are written to a temporary file beside the destination, flushed to disk, and renamed into
place only when everything succeeded, so a failed decryption never leaves unauthenticated plaintext
behind and a failed encryption or rewrap never leaves a half-written file. The format itself is in
``garrison.integrity.crypto``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from garrison.core.errors import UsageError
from garrison.integrity.crypto import (
    DEFAULT_CHUNK_SIZE,
    Header,
    Progress,
    check_wrapped,
    decrypt_stream,
    encrypt_stream,
    parse_header,
    unwrap_data_key,
)
from garrison.integrity.crypto_keys import KeyProvider

__all__ = ["decrypt_file", "encrypt_file", "read_header", "rewrap_file"]

_COPY_BUFFER = 1 << 20


def read_header(path: Path) -> Header:
    """The header of an encrypted file, unauthenticated (to show its kid, sizes, chunking)."""
    with _open_input(path) as src:
        return parse_header(src)


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[BinaryIO]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


@contextlib.contextmanager
def _atomic_output(target: Path, *, mode: int, overwrite: bool) -> Iterator[BinaryIO]:
    """A temporary file beside ``target``, renamed onto it only if the block succeeds."""
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists", hint="pass --force to replace it")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def encrypt_file(
    path: Path,
    out: Path,
    provider: KeyProvider,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Header:
    """Encrypt ``path`` into ``out`` (atomically; the input is never modified)."""
    if _same_file(path, out):
        raise UsageError(f"the output {out} is the input; choose another output")
    with _open_input(path) as src:
        size = os.fstat(src.fileno()).st_size
        with _atomic_output(out, mode=_default_mode(), overwrite=overwrite) as dst:
            return encrypt_stream(
                src, dst, provider, size=size, chunk_size=chunk_size, progress=progress, write_behind=True
            )


def decrypt_file(
    path: Path,
    out: Path,
    provider: KeyProvider,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Header:
    """Decrypt ``path`` into ``out``; ``out`` appears (mode 0600) only if the whole file authenticated."""
    if _same_file(path, out):
        raise UsageError(f"the output {out} is the input; choose another output")
    with _open_input(path) as src, _atomic_output(out, mode=0o600, overwrite=overwrite) as dst:
        return decrypt_stream(src, dst, provider, progress=progress, write_behind=True)


def rewrap_file(path: Path, old: KeyProvider, new: KeyProvider, *, out: Path | None = None) -> Header:
    """Unwrap the data key with ``old``, wrap it with ``new``, and write the file with the new key block.

    The chunks are copied byte for byte, never decrypted or re-encrypted. Without ``out`` the file
    is replaced atomically (its mode is kept); with ``out`` a rewrapped copy is written. Returns the
    new header. The chunks are not verified here: ``decrypt`` does that.
    """
    with _open_input(path) as src:
        header = parse_header(src)
        wrapped = new.wrap(unwrap_data_key(old, header), header.immutable())
        check_wrapped(wrapped)
        fresh = Header(
            chunk_size=header.chunk_size,
            plaintext_size=header.plaintext_size,
            salt=header.salt,
            nonce_prefix=header.nonce_prefix,
            wrapped=wrapped,
        )
        in_place = out is None or _same_file(path, out)
        target = path if in_place or out is None else out
        mode = os.fstat(src.fileno()).st_mode & 0o7777 if in_place else _default_mode()
        with _atomic_output(target, mode=mode, overwrite=in_place) as dst:
            dst.write(fresh.to_bytes())
            while block := src.read(_COPY_BUFFER):
                dst.write(block)
    return fresh
