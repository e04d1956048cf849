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
  final chunk all fail, and memory use is one chunk whatever the file size.
- The header also states the plaintext size (authenticated), so truncation and trailing data are
  reported as such, before any chunk is decrypted when the input is a regular file.
- The **key block** (kid and wrapped data key) follows the immutable header and is *not* part of
  the chunks' associated data, so :func:`rewrap_file` can replace it without touching a chunk. It
  is authenticated on its own: the built-in providers wrap with AES-GCM over the immutable header
  and the kid, so a key block moved from another file, or edited, fails to unwrap.

This module works on streams; ``crypto_files`` works on paths (atomic outputs, rewrap).
"""

from __future__ import annotations

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


_WRITE_AHEAD_BYTES = 3 << 20
"""Bytes of output that may wait for the writer thread."""


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class _BackgroundWriter:
    """Writes chunks on a second thread, so disk writes overlap with AES-GCM on this one.

    At most ``budget`` bytes wait in the queue (memory stays bounded); a write error is raised on
    the next :meth:`write` or at :meth:`close`, never lost.
    """

    def __init__(self, dst: BinaryIO, chunk_size: int, budget: int = _WRITE_AHEAD_BYTES) -> None:
        self._dst = dst
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max(1, budget // chunk_size))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="garrison-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._dst.write(data)
                except BaseException as exc:  # noqa: BLE001 - handed to the producing thread
                    self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        """Wait for every queued write; raise the first write error."""
        self.abort()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after the queued writes, for a caller that is already raising its own error."""
        self._queue.put(None)
        self._thread.join()


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
) -> Header:
    """Encrypt exactly ``size`` bytes from ``src`` into ``dst``; return the header written.

    Raises :class:`UsageError` for a chunk size out of range, an input larger than the format
    allows (2^32 chunks), or an input that changed size while it was being read.
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
    writer = _BackgroundWriter(dst, chunk_size)
    try:
        remaining = size
        for index in range(chunks):
            want = min(chunk_size, remaining)
            plain = _read_exact(src, want)
            if len(plain) != want:
                raise UsageError("the input became shorter while it was being encrypted; nothing was written")
            remaining -= want
            last = index == chunks - 1
            writer.write(cipher.encrypt(_nonce(prefix, index, last), plain, aad))
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
) -> Header:
    """Decrypt ``src`` into ``dst``; return the header.

    ``dst`` receives plaintext chunk by chunk, each authenticated before it is written, but the
    file as a whole is authentic only when this returns: callers must discard ``dst`` on an error
    (``crypto_files.decrypt_file`` does).
    """
    header = parse_header(src)
    aad = header.immutable()
    data_key = unwrap_data_key(provider, header)
    start = PREFIX_BYTES + len(header.key_block())
    _check_length(src, header.ciphertext_size)
    cipher = _payload_cipher(data_key, header.salt)
    writer = _BackgroundWriter(dst, header.chunk_size)
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
    for index in range(chunks):
        want = min(header.chunk_size, remaining) + TAG_BYTES
        sealed = _read_exact(src, want)
        if len(sealed) != want:
            raise AuthenticationError(
                f"file ends before its final chunk (truncated in chunk {index} of {chunks})"
            )
        last = index == chunks - 1
        try:
            plain = cipher.decrypt(_nonce(header.nonce_prefix, index, last), sealed, aad)
        except InvalidTag:
            raise AuthenticationError(
                f"chunk {index} of {chunks} (at byte {offset}) failed authentication "
                "(modified, reordered or from another file)"
            ) from None
        writer.write(plain)
        remaining -= len(plain)
        offset += want
        if progress is not None:
            progress(len(plain))
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
