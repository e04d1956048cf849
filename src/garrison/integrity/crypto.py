"""Encryption at rest: a streaming AES-256-GCM file format with envelope keys (format version 1).

The construction (specified byte by byte in ``docs/encryption.md``):

- Each file gets a random 32-byte **data key**, wrapped by a key-encryption key through a
  :class:`~garrison.integrity.crypto_keys.KeyProvider`. The payload key is
  ``HKDF-SHA256(ikm=data key, salt=header salt, info="garrison-enc v1 payload")``.
- The plaintext is cut into chunks of ``chunk_size`` bytes (the last one may be shorter, or empty
  when the file is empty). Chunk *i* is sealed with AES-256-GCM under the nonce
  ``nonce prefix (7) || i (4, big-endian) || last (1)``, ``last`` being 1 for the final chunk
  only, with the file's **immutable header** (magic to nonce prefix, 59 bytes) as associated data.
  This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as used by age and
  Tink: reordering, splicing from another file, truncation at a chunk boundary and data after the
  final chunk all fail, and memory use is a few chunks (about 5 MiB by default) whatever the
  file size.
- The header also states the plaintext size (authenticated), so truncation and trailing data are
  reported as such, before any chunk is decrypted when the input is a regular file.
- The **key block** (kid and wrapped data key) follows the immutable header and is *not* part of
  the chunks' associated data, so :func:`rewrap_file` can replace it without touching a chunk. It
  is authenticated on its own: the built-in providers wrap with AES-GCM over the immutable header
  and the kid, so a key block moved from another file, or edited, fails to unwrap.

This module works on streams; ``crypto_files`` works on paths (atomic outputs, rewrap).
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from garrison.core.errors import UsageError
from garrison.integrity.crypto_keys import (
    KEY_BYTES,
    AuthenticationError,
    DecryptionError,
    KeyProvider,
    WrappedKey,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "VERSION",
    "AuthenticationError",
    "DecryptionError",
    "Header",
    "decrypt_stream",
    "encrypt_stream",
    "parse_header",
    "unwrap_data_key",
]

MAGIC = b"GARENC"
VERSION = 1
#: Algorithm 1: AES-256-GCM STREAM, payload key from HKDF-SHA256, 7-byte nonce prefix.
ALGORITHM = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 4 << 10
MAX_CHUNK_SIZE = 64 << 20
TAG_BYTES = 16
SALT_BYTES = 32
NONCE_PREFIX_BYTES = 7
MAX_CHUNKS = 1 << 32
_HKDF_INFO = b"garrison-enc v1 payload"
#: magic, version, algorithm, chunk size, plaintext size, salt, nonce prefix.
_PREFIX = struct.Struct(">6sBBIQ32s7s")
PREFIX_BYTES = _PREFIX.size  # 59

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The header of an encrypted file: the immutable part and the key block."""

    #: Plaintext bytes per chunk (every chunk but the last holds exactly this many).
    chunk_size: int
    #: Total plaintext bytes.
    plaintext_size: int
    #: Random HKDF salt, 32 bytes.
    salt: bytes
    #: Random 7-byte prefix of every chunk nonce.
    nonce_prefix: bytes
    #: The wrapped data key and the id of the key that wrapped it.
    wrapped: WrappedKey

    def immutable(self) -> bytes:
        """Magic to nonce prefix: the associated data of every chunk and of the key wrap."""
        return _PREFIX.pack(
            MAGIC, VERSION, ALGORITHM, self.chunk_size, self.plaintext_size, self.salt, self.nonce_prefix
        )

    def key_block(self) -> bytes:
        """The kid and the wrapped data key, length-prefixed."""
        kid = self.wrapped.kid.encode("ascii")
        blob = self.wrapped.blob
        return bytes([len(kid)]) + kid + struct.pack(">H", len(blob)) + blob

    def to_bytes(self) -> bytes:
        """The whole header as written at the start of the file."""
        return self.immutable() + self.key_block()

    @property
    def chunks(self) -> int:
        """How many chunks follow the header (an empty file has one, empty)."""
        return _chunk_count(self.plaintext_size, self.chunk_size)

    @property
    def ciphertext_size(self) -> int:
        """The size of the chunk area: plaintext plus one tag per chunk."""
        return self.plaintext_size + TAG_BYTES * self.chunks


def _chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(
            f"chunk size {chunk_size} is outside {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes (4 KiB to 64 MiB)"
        )


def _payload_cipher(data_key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(data_key))


_BUFFER_BYTES = 4 << 20
"""Bytes of output buffers per stream: the chunks that may wait for the writer thread."""

_WRITE_BEHIND_BYTES = 8 << 20
"""How far behind the writer the kernel is asked to start writing a regular file to disk."""


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class _BackgroundWriter:
    """Writes chunks on a second thread, so disk writes overlap with AES-GCM on this one.

    Chunks are sealed or opened straight into buffers taken from a fixed pool (:meth:`buffer`)
    and handed back by :meth:`write`; the writer returns each buffer to the pool once written,
    so memory stays at ``_BUFFER_BYTES`` (at least two buffers) and no chunk is allocated or copied
    on the way. A write error is raised on the next :meth:`buffer` or :meth:`write`, or at
    :meth:`close`, never lost.

    With ``write_behind``, for a caller that will ``fsync`` ``dst`` (a regular file), the writer
    also asks the kernel to start writing each ``_WRITE_BEHIND_BYTES`` to disk once it is that far
    behind, and to drop it from the page cache two windows later (:meth:`_write_behind`): the disk
    works while AES-GCM does, the final ``fsync`` has little left to wait for, and the page cache
    holds a few windows of the output instead of all of it (a 4 GiB output otherwise takes 4 GiB
    of fresh page cache, which made encryption two to three times slower here). It costs some
    CPU: a small output that is never fsynced is written about 20 % faster without it.
    """

    def __init__(self, dst: BinaryIO, buffer_size: int, *, write_behind: bool) -> None:
        self._dst = dst
        self._buffer_size = buffer_size
        self._buffers_left = max(2, _BUFFER_BYTES // max(1, buffer_size))
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._fd, self._offset = _regular_file(dst) if write_behind else (None, 0)
        self._thread = threading.Thread(target=self._run, name="garrison-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        advised = written = 0
        while (item := self._full.get()) is not None:
            buf, length = item
            if self._error is None:
                try:
                    _write_all(self._dst, memoryview(buf)[:length])
                    written += length
                    if self._fd is not None and written - advised >= 2 * _WRITE_BEHIND_BYTES:
                        self._write_behind(self._fd, advised)
                        advised += _WRITE_BEHIND_BYTES
                except BaseException as exc:  # noqa: BLE001 - handed to the producing thread
                    self._error = exc
            self._free.put(buf)

    def _write_behind(self, fd: int, start: int) -> None:
        """Start writing the window at ``start`` to disk; drop the one two windows back.

        ``POSIX_FADV_DONTNEED`` starts writeback of dirty pages without waiting, but keeps pages
        still under writeback; two windows later those pages are clean, and a second call lets
        them go, so the page cache holds a few windows of the output instead of all of it.
        """
        window = _WRITE_BEHIND_BYTES
        _drop_pages(fd, self._offset + start, window)
        if start >= 2 * window:
            _drop_pages(fd, self._offset + start - 2 * window, window)

    def buffer(self) -> bytearray:
        """A buffer of ``buffer_size`` bytes to fill; waits for the writer when all are queued."""
        if self._error is not None:
            raise self._error
        if self._buffers_left and self._free.empty():
            self._buffers_left -= 1
            return bytearray(self._buffer_size)
        return self._free.get()

    def write(self, buf: bytearray, length: int) -> None:
        """Queue the first ``length`` bytes of ``buf`` (from :meth:`buffer`; not to be touched after)."""
        if self._error is not None:
            raise self._error
        self._full.put((buf, length))

    def close(self) -> None:
        """Wait for every queued write; raise the first write error."""
        self.abort()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after the queued writes, for a caller that is already raising its own error."""
        self._full.put(None)
        self._thread.join()


def _regular_file(dst: BinaryIO) -> tuple[int | None, int]:
    """The descriptor and position of ``dst`` if it is a regular file that takes write-behind hints."""
    if not hasattr(os, "posix_fadvise"):
        return None, 0
    try:
        fd = dst.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, 0
        return fd, dst.tell()
    except (OSError, AttributeError, ValueError):
        return None, 0


def _drop_pages(fd: int, offset: int, length: int) -> None:
    """Start writing a written range to disk without waiting, and let its clean pages go."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _write_all(dst: BinaryIO, view: memoryview) -> None:
    """Write all of ``view``, also to a raw stream that may take only part of it."""
    while view:
        done = dst.write(view)
        if done is None or done >= len(view):
            return
        view = view[done:]


def _read_into(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src``; fewer bytes only at the end of the stream. Returns the count."""
    readinto = getattr(src, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            more = readinto(view[got:])
        else:
            data = src.read(len(view) - got)
            more = len(data)
            view[got : got + more] = data
        if not more:
            break
        got += more
    return got


def _read_exact(src: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


# -- encryption ------------------------------------------------------------------------------------


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    provider: KeyProvider,
    *,
    size: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    write_behind: bool = False,
) -> Header:
    """Encrypt exactly ``size`` bytes from ``src`` into ``dst``; return the header written.

    Raises :class:`UsageError` for a chunk size out of range, an input larger than the format
    allows (2^32 chunks), or an input that changed size while it was being read. Pass
    ``write_behind=True`` when ``dst`` is a file that will be ``fsync``-ed, or a large one: the
    kernel is asked to write it to disk as it goes and to drop it from the page cache, which makes
    the ``fsync`` short and keeps a large output from filling memory (``crypto_files`` does this).
    """
    _check_chunk_size(chunk_size)
    chunks = _chunk_count(size, chunk_size)
    if size < 0 or chunks > MAX_CHUNKS:
        raise UsageError(f"cannot encrypt {size} bytes with {chunk_size}-byte chunks (at most 2^32 chunks)")
    data_key = os.urandom(KEY_BYTES)
    salt = os.urandom(SALT_BYTES)
    prefix = os.urandom(NONCE_PREFIX_BYTES)
    unwrapped = Header(
        chunk_size=chunk_size,
        plaintext_size=size,
        salt=salt,
        nonce_prefix=prefix,
        wrapped=WrappedKey(kid="-", blob=b"-"),
    )
    aad = unwrapped.immutable()
    wrapped = provider.wrap(data_key, aad)
    check_wrapped(wrapped)
    header = Header(
        chunk_size=chunk_size, plaintext_size=size, salt=salt, nonce_prefix=prefix, wrapped=wrapped
    )
    cipher = _payload_cipher(data_key, salt)
    dst.write(header.to_bytes())
    largest = min(chunk_size, size)
    plain = memoryview(bytearray(largest))
    writer = _BackgroundWriter(dst, largest + TAG_BYTES, write_behind=write_behind)
    try:
        remaining = size
        for index in range(chunks):
            want = min(chunk_size, remaining)
            if _read_into(src, plain[:want]) != want:
                raise UsageError("the input became shorter while it was being encrypted; nothing was written")
            remaining -= want
            last = index == chunks - 1
            sealed = writer.buffer()
            cipher.encrypt_into(
                _nonce(prefix, index, last), plain[:want], aad, memoryview(sealed)[: want + TAG_BYTES]
            )
            writer.write(sealed, want + TAG_BYTES)
            if progress is not None:
                progress(want)
        if src.read(1):
            raise UsageError("the input grew while it was being encrypted; nothing was written")
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return header


def check_wrapped(wrapped: WrappedKey) -> None:
    """Refuse a provider's output that the key block cannot hold."""
    kid = wrapped.kid
    if not 1 <= len(kid) <= 255 or not kid.isascii() or not kid.isprintable():
        raise UsageError(f"the key provider returned an invalid key id {kid!r}")
    if not 1 <= len(wrapped.blob) <= 0xFFFF:
        raise UsageError("the key provider returned a wrapped key of an invalid size")


# -- headers ---------------------------------------------------------------------------------------


def parse_header(src: BinaryIO) -> Header:
    """Read and check the header at the start of ``src`` (not yet authenticated: unwrap does that)."""
    prefix = _read_exact(src, PREFIX_BYTES)
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        raise DecryptionError("not a Garrison encrypted file (no GARENC magic at the start)")
    if len(prefix) > len(MAGIC) and prefix[len(MAGIC)] != VERSION:
        raise DecryptionError(
            f"unsupported version {prefix[len(MAGIC)]} of the Garrison encrypted-file format "
            f"(this Garrison reads version {VERSION})",
            hint="a newer Garrison may read it",
        )
    if len(prefix) < PREFIX_BYTES:
        raise AuthenticationError("file ends inside its header (truncated)")
    _magic, _version, algorithm, chunk_size, size, salt, nonce_prefix = _PREFIX.unpack(prefix)
    if algorithm != ALGORITHM:
        raise DecryptionError(f"unsupported algorithm {algorithm} in the header (this Garrison knows 1)")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or _chunk_count(size, chunk_size) > MAX_CHUNKS:
        raise AuthenticationError(
            f"modified header: chunk size {chunk_size} or plaintext size {size} is out of range"
        )
    truncated = AuthenticationError("file ends inside its header (truncated)")
    kid_len = _read_exact(src, 1)
    if not kid_len:
        raise truncated
    kid = _read_exact(src, kid_len[0])
    blob_len = _read_exact(src, 2)
    if len(kid) != kid_len[0] or len(blob_len) != 2:
        raise truncated
    (blob_size,) = struct.unpack(">H", blob_len)
    blob = _read_exact(src, blob_size)
    if len(blob) != blob_size:
        raise truncated
    if not kid or not kid.isascii() or not kid.decode("ascii").isprintable() or not blob:
        raise AuthenticationError("wrong key-encryption key or modified header (malformed key block)")
    return Header(
        chunk_size=chunk_size,
        plaintext_size=size,
        salt=salt,
        nonce_prefix=nonce_prefix,
        wrapped=WrappedKey(kid=kid.decode("ascii"), blob=blob),
    )


# -- decryption ------------------------------------------------------------------------------------


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    provider: KeyProvider,
    *,
    progress: Progress | None = None,
    write_behind: bool = False,
) -> Header:
    """Decrypt ``src`` into ``dst``; return the header.

    ``dst`` receives plaintext chunk by chunk, each authenticated before it is written, but the
    file as a whole is authentic only when this returns: callers must discard ``dst`` on an error
    (``crypto_files.decrypt_file`` does). ``write_behind`` is as for :func:`encrypt_stream`.
    """
    header = parse_header(src)
    aad = header.immutable()
    data_key = unwrap_data_key(provider, header)
    start = PREFIX_BYTES + len(header.key_block())
    _check_length(src, header.ciphertext_size)
    cipher = _payload_cipher(data_key, header.salt)
    writer = _BackgroundWriter(dst, min(header.chunk_size, header.plaintext_size), write_behind=write_behind)
    try:
        _decrypt_chunks(src, writer, cipher, header, aad, start, progress)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return header


def _decrypt_chunks(
    src: BinaryIO,
    writer: _BackgroundWriter,
    cipher: AESGCM,
    header: Header,
    aad: bytes,
    offset: int,
    progress: Progress | None,
) -> None:
    chunks = header.chunks
    remaining = header.plaintext_size
    sealed = memoryview(bytearray(min(header.chunk_size, remaining) + TAG_BYTES))
    for index in range(chunks):
        size = min(header.chunk_size, remaining)
        want = size + TAG_BYTES
        if _read_into(src, sealed[:want]) != want:
            raise AuthenticationError(
                f"file ends before its final chunk (truncated in chunk {index} of {chunks})"
            )
        last = index == chunks - 1
        plain = writer.buffer()
        try:
            cipher.decrypt_into(
                _nonce(header.nonce_prefix, index, last), sealed[:want], aad, memoryview(plain)[:size]
            )
        except InvalidTag:
            # decrypt_into has written the unauthenticated plaintext into ``plain``: wipe it, and
            # never queue it.
            plain[:size] = bytes(size)
            raise AuthenticationError(
                f"chunk {index} of {chunks} (at byte {offset}) failed authentication "
                "(modified, reordered or from another file)"
            ) from None
        writer.write(plain, size)
        remaining -= size
        offset += want
        if progress is not None:
            progress(size)
    if src.read(1):
        raise AuthenticationError("data after the final chunk (the file was appended to)")


def unwrap_data_key(provider: KeyProvider, header: Header) -> bytes:
    """The file's data key, unwrapped by ``provider`` (authenticates the immutable header and kid)."""
    data_key = provider.unwrap(header.wrapped, header.immutable())
    if len(data_key) != KEY_BYTES:
        raise AuthenticationError("wrong key-encryption key or modified header (data key of the wrong size)")
    return data_key


def _check_length(src: BinaryIO, expected: int) -> None:
    """Report truncation or trailing data up front when the input is a regular file.

    ``expected`` is the size of the chunk area, which starts at the current position.
    """
    try:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            return
        actual = info.st_size - src.tell()
    except (OSError, AttributeError, ValueError):
        return
    if actual < expected:
        raise AuthenticationError(
            f"file ends before its final chunk (truncated: {expected - actual} bytes missing)"
        )
    if actual > expected:
        raise AuthenticationError(f"data after the final chunk ({actual - expected} extra bytes)")
