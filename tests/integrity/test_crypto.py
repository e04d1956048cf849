"""The encrypted-file format: round trips, tampering, truncation, wrong keys, rewrap, streaming."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import UsageError
from garrison.integrity import crypto
from garrison.integrity.crypto import (
    PREFIX_BYTES,
    TAG_BYTES,
    AuthenticationError,
    DecryptionError,
    Header,
    decrypt_stream,
    encrypt_stream,
)
from garrison.integrity.crypto_files import decrypt_file, encrypt_file, read_header, rewrap_file
from garrison.integrity.crypto_keys import (
    EnvKeyProvider,
    KeyFileProvider,
    KeyProvider,
    KeyProviderError,
    KeyringProvider,
    UnwrapError,
    generate_key_file,
    key_fingerprint,
    provider_from_spec,
    rotate_keyring,
)

CHUNK = crypto.MIN_CHUNK_SIZE  # 4 KiB: several chunks with little data


class StaticKey(KeyFileProvider):
    """A key-file provider built from bytes, for in-memory tests."""

    def __init__(self, key: bytes) -> None:  # skip reading a file
        super(KeyFileProvider, self).__init__(key, source="test key")


KEY = StaticKey(b"\x01" * 32)
OTHER_KEY = StaticKey(b"\x02" * 32)


def seal(data: bytes, provider: KeyProvider = KEY, chunk_size: int = CHUNK) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, provider, size=len(data), chunk_size=chunk_size)
    return out.getvalue()


def unseal(blob: bytes, provider: KeyProvider = KEY) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, provider)
    return out.getvalue()


def header_len(blob: bytes) -> int:
    kid_len = blob[PREFIX_BYTES]
    blob_len = int.from_bytes(blob[PREFIX_BYTES + 1 + kid_len : PREFIX_BYTES + 3 + kid_len], "big")
    return PREFIX_BYTES + 3 + kid_len + blob_len


def chunks_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    """Split a sealed file into its header and its sealed chunks."""
    start = header_len(blob)
    body = blob[start:]
    step = CHUNK + TAG_BYTES
    return blob[:start], [body[i : i + step] for i in range(0, len(body), step)]


# -- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 17])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) == header_len(blob) + size + TAG_BYTES * chunks
    assert unseal(blob) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3 * CHUNK + 100))
def test_decrypt_inverts_encrypt(data: bytes) -> None:
    assert unseal(seal(data)) == data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2 * CHUNK + 50), where=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_single_byte_change_fails(data: bytes, where: int, flip: int) -> None:
    blob = bytearray(seal(data))
    position = where % len(blob)
    blob[position] ^= flip
    with pytest.raises(DecryptionError):
        unseal(bytes(blob))


def test_every_byte_of_a_small_file_is_covered() -> None:
    """Exhaustive version of the property for one small two-chunk file."""
    blob = seal(os.urandom(CHUNK + 3))
    for position in range(len(blob)):
        changed = bytearray(blob)
        changed[position] ^= 0x80
        with pytest.raises(DecryptionError):
            unseal(bytes(changed))


def test_two_encryptions_differ() -> None:
    data = b"same plaintext" * 100
    assert seal(data) != seal(data)


# -- tampering, with precise messages ------------------------------------------------------------------


def test_swapped_chunks_are_detected() -> None:
    header, chunks = chunks_of(seal(os.urandom(3 * CHUNK + 5)))
    chunks[0], chunks[1] = chunks[1], chunks[0]
    with pytest.raises(AuthenticationError, match=r"^chunk 0 of 4 \(at byte \d+\) failed authentication"):
        unseal(header + b"".join(chunks))


def test_chunk_from_another_file_is_detected() -> None:
    header, chunks = chunks_of(seal(os.urandom(3 * CHUNK)))
    _, foreign = chunks_of(seal(os.urandom(3 * CHUNK)))
    chunks[1] = foreign[1]
    with pytest.raises(AuthenticationError, match=r"chunk 1 of 3 .*from another file"):
        unseal(header + b"".join(chunks))


def test_dropped_last_chunk_is_truncation() -> None:
    header, chunks = chunks_of(seal(os.urandom(2 * CHUNK + 9)))
    with pytest.raises(
        AuthenticationError, match=r"^file ends before its final chunk \(truncated in chunk 2"
    ):
        unseal(header + b"".join(chunks[:-1]))


def test_dropped_last_chunk_of_a_file_is_reported_before_decrypting(tmp_path: Path) -> None:
    blob = seal(os.urandom(2 * CHUNK + 9))
    header, chunks = chunks_of(blob)
    path = tmp_path / "f.gar"
    path.write_bytes(header + b"".join(chunks[:-1]))
    missing = len(chunks[-1])
    with pytest.raises(AuthenticationError, match=rf"truncated: {missing} bytes missing"):
        decrypt_file(path, tmp_path / "out", KEY)


def test_final_flag_is_authenticated() -> None:
    """Even a header re-made with the KEK to end the file early fails: chunk 0 was sealed as not final."""
    header, chunks = chunks_of(seal(os.urandom(2 * CHUNK)))
    parsed = crypto.parse_header(io.BytesIO(header))
    data_key = KEY.unwrap(parsed.wrapped, parsed.immutable())
    shorter = Header(
        chunk_size=CHUNK,
        plaintext_size=CHUNK,
        salt=parsed.salt,
        nonce_prefix=parsed.nonce_prefix,
        wrapped=KEY.wrap(data_key, b""),
    )
    forged = Header(
        chunk_size=CHUNK,
        plaintext_size=CHUNK,
        salt=parsed.salt,
        nonce_prefix=parsed.nonce_prefix,
        wrapped=KEY.wrap(data_key, shorter.immutable()),
    )
    with pytest.raises(AuthenticationError, match=r"^chunk 0 of 1 .*failed authentication"):
        unseal(forged.to_bytes() + chunks[0])


def test_truncated_mid_chunk() -> None:
    blob = seal(os.urandom(2 * CHUNK))
    with pytest.raises(AuthenticationError, match="truncated"):
        unseal(blob[:-100])


def test_appended_junk_is_detected() -> None:
    with pytest.raises(AuthenticationError, match=r"^data after the final chunk"):
        unseal(seal(b"hello") + b"junk")


def test_appended_junk_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "f.gar"
    path.write_bytes(seal(b"hello") + b"junk")
    with pytest.raises(AuthenticationError, match=r"^data after the final chunk \(4 extra bytes\)"):
        decrypt_file(path, tmp_path / "out", KEY)


def test_wrong_key() -> None:
    with pytest.raises(
        UnwrapError, match=r"^wrong key-encryption key: the file's data key is wrapped by kek:"
    ):
        unseal(seal(b"x"), OTHER_KEY)


def test_wrong_key_with_the_same_kid_fails_authentication(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    rotate_keyring(ring)
    blob = seal(b"data", KeyringProvider(ring))
    (ring / "v1.key").unlink()
    generate_key_file(ring / "v1.key")  # a different key under the same version
    with pytest.raises(UnwrapError, match=r"^wrong key-encryption key or modified header"):
        unseal(blob, KeyringProvider(ring))


def test_not_ours_and_unsupported_version() -> None:
    blob = seal(b"data")
    with pytest.raises(DecryptionError, match=r"^not a Garrison encrypted file"):
        unseal(b"PK\x03\x04" + blob[4:])
    with pytest.raises(DecryptionError, match=r"^unsupported version 2 "):
        unseal(blob[:6] + b"\x02" + blob[7:])
    with pytest.raises(DecryptionError, match="not a Garrison encrypted file"):
        unseal(b"")


def test_modified_header_fails_unwrap() -> None:
    blob = bytearray(seal(b"data"))
    blob[30] ^= 1  # inside the salt
    with pytest.raises(UnwrapError, match="modified header"):
        unseal(bytes(blob))


def test_key_block_from_another_file_fails() -> None:
    a, b = seal(b"a" * 10), seal(b"b" * 10)
    spliced = a[:PREFIX_BYTES] + b[PREFIX_BYTES : header_len(b)] + a[header_len(a) :]
    with pytest.raises(UnwrapError, match="modified header"):
        unseal(spliced)


def test_chunk_size_bounds() -> None:
    for bad in (crypto.MIN_CHUNK_SIZE - 1, crypto.MAX_CHUNK_SIZE + 1):
        with pytest.raises(UsageError, match="chunk size"):
            seal(b"x", chunk_size=bad)


def test_input_that_shrinks_while_encrypting() -> None:
    with pytest.raises(UsageError, match="became shorter"):
        encrypt_stream(io.BytesIO(b"abc"), io.BytesIO(), KEY, size=10, chunk_size=CHUNK)
    with pytest.raises(UsageError, match="grew"):
        encrypt_stream(io.BytesIO(b"abcdef"), io.BytesIO(), KEY, size=3, chunk_size=CHUNK)


# -- files: atomicity, modes, overwrite ------------------------------------------------------------


def test_file_round_trip_and_modes(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * CHUNK + 1))
    encrypt_file(source, tmp_path / "model.gar", KEY, chunk_size=CHUNK)
    header = decrypt_file(tmp_path / "model.gar", tmp_path / "plain.bin", KEY)
    assert (tmp_path / "plain.bin").read_bytes() == source.read_bytes()
    assert header.plaintext_size == source.stat().st_size
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o600
    assert read_header(tmp_path / "model.gar").wrapped.kid == KEY.kid


def test_failed_decryption_leaves_no_output(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * CHUNK))
    encrypt_file(source, tmp_path / "model.gar", KEY, chunk_size=CHUNK)
    blob = bytearray((tmp_path / "model.gar").read_bytes())
    blob[-1] ^= 1  # the last chunk's tag: the first chunks decrypt and are written before this fails
    (tmp_path / "model.gar").write_bytes(bytes(blob))
    with pytest.raises(AuthenticationError, match="chunk 2 of 3"):
        decrypt_file(tmp_path / "model.gar", tmp_path / "out.bin", KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.gar"]


def test_existing_output_and_output_equal_to_input(tmp_path: Path) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"keep")
    with pytest.raises(UsageError, match="already exists"):
        encrypt_file(source, tmp_path / "b", KEY)
    assert (tmp_path / "b").read_bytes() == b"keep"
    with pytest.raises(UsageError, match="is the input"):
        encrypt_file(source, source, KEY)
    encrypt_file(source, tmp_path / "b", KEY, overwrite=True)
    assert (tmp_path / "b").read_bytes().startswith(b"GARENC\x01")


# -- rewrap and rotation -------------------------------------------------------------------------------


def test_rewrap_changes_only_the_key_block(tmp_path: Path) -> None:
    source = tmp_path / "m"
    source.write_bytes(os.urandom(2 * CHUNK + 1))
    encrypt_file(source, tmp_path / "m.gar", KEY, chunk_size=CHUNK)
    before = (tmp_path / "m.gar").read_bytes()
    header = rewrap_file(tmp_path / "m.gar", KEY, OTHER_KEY)
    after = (tmp_path / "m.gar").read_bytes()
    assert header.wrapped.kid == OTHER_KEY.kid
    assert after[:PREFIX_BYTES] == before[:PREFIX_BYTES]
    assert after[header_len(after) :] == before[header_len(before) :]
    decrypt_file(tmp_path / "m.gar", tmp_path / "new", OTHER_KEY)
    assert (tmp_path / "new").read_bytes() == source.read_bytes()
    with pytest.raises(UnwrapError, match="wrong key-encryption key"):
        decrypt_file(tmp_path / "m.gar", tmp_path / "old", KEY)
    assert not (tmp_path / "old").exists()


def test_rewrap_with_the_wrong_old_key_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"model")
    encrypt_file(tmp_path / "m", tmp_path / "m.gar", KEY)
    before = (tmp_path / "m.gar").read_bytes()
    with pytest.raises(UnwrapError):
        rewrap_file(tmp_path / "m.gar", OTHER_KEY, KEY)
    assert (tmp_path / "m.gar").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.gar"]


def test_rewrap_to_a_copy(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"model")
    encrypt_file(tmp_path / "m", tmp_path / "m.gar", KEY)
    before = (tmp_path / "m.gar").read_bytes()
    rewrap_file(tmp_path / "m.gar", KEY, OTHER_KEY, out=tmp_path / "copy.gar")
    assert (tmp_path / "m.gar").read_bytes() == before
    decrypt_file(tmp_path / "copy.gar", tmp_path / "plain", OTHER_KEY)
    assert (tmp_path / "plain").read_bytes() == b"model"


def test_keyring_rotation(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    assert rotate_keyring(ring) == "keyring:v1"
    (tmp_path / "m").write_bytes(b"weights" * 1000)
    header = encrypt_file(tmp_path / "m", tmp_path / "m.gar", KeyringProvider(ring))
    assert header.wrapped.kid == "keyring:v1"
    assert rotate_keyring(ring) == "keyring:v2"
    provider = KeyringProvider(ring)
    assert rewrap_file(tmp_path / "m.gar", provider, provider).wrapped.kid == "keyring:v2"
    (ring / "v1.key").unlink()  # the old version can go once every file is rewrapped
    decrypt_file(tmp_path / "m.gar", tmp_path / "plain", KeyringProvider(ring))
    assert (tmp_path / "plain").read_bytes() == b"weights" * 1000


def test_keyring_without_the_files_version(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    rotate_keyring(ring)
    blob = seal(b"x", KeyringProvider(ring))
    rotate_keyring(ring)
    (ring / "v1.key").unlink()
    with pytest.raises(UnwrapError, match=r"keyring:v1, which keyring .* does not hold"):
        unseal(blob, KeyringProvider(ring))


# -- key providers -------------------------------------------------------------------------------------


def test_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    kid = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert KeyFileProvider(path).kid == kid
    path.chmod(0o644)
    with pytest.raises(KeyProviderError, match=r"can be read or written by others \(mode 0644\)") as info:
        KeyFileProvider(path)
    assert info.value.hint == f"chmod 600 {path}"


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyProviderError, match="never overwritten"):
        generate_key_file(path)
    assert path.read_bytes() == before


def test_key_file_raw_bytes_and_bad_content(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(b"\x07" * 32)
    raw.chmod(0o600)
    assert KeyFileProvider(raw).kid == key_fingerprint(b"\x07" * 32)
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a key")
    bad.chmod(0o600)
    with pytest.raises(KeyProviderError, match="does not hold a key-encryption key"):
        KeyFileProvider(bad)


def test_env_provider_matches_the_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kek"
    generate_key_file(path)
    monkeypatch.setenv("GARRISON_KEK", path.read_text())
    env = EnvKeyProvider()
    assert env.kid == KeyFileProvider(path).kid
    (tmp_path / "m").write_bytes(b"data")
    encrypt_file(tmp_path / "m", tmp_path / "m.gar", env)
    decrypt_file(tmp_path / "m.gar", tmp_path / "plain", KeyFileProvider(path))
    assert (tmp_path / "plain").read_bytes() == b"data"


def test_env_provider_errors_never_show_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEK", raising=False)
    with pytest.raises(KeyProviderError, match="NO_SUCH_KEK is not set"):
        EnvKeyProvider("NO_SUCH_KEK")
    monkeypatch.setenv("SHORT_KEK", "c2VjcmV0LXZhbHVl")
    with pytest.raises(KeyProviderError) as info:
        EnvKeyProvider("SHORT_KEK")
    assert "c2VjcmV0LXZhbHVl" not in info.value.diagnostics()


def test_repr_never_shows_the_key() -> None:
    key = b"\x5a" * 32
    text = repr(StaticKey(key))
    assert key.hex() not in text
    assert "ZZZZ" not in text


def test_provider_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_key_file(tmp_path / "kek")
    rotate_keyring(tmp_path / "ring")
    monkeypatch.setenv("MY_KEK", (tmp_path / "kek").read_text())
    assert isinstance(provider_from_spec(f"file:{tmp_path / 'kek'}"), KeyFileProvider)
    assert isinstance(provider_from_spec("env:MY_KEK"), EnvKeyProvider)
    assert isinstance(provider_from_spec(f"keyring:{tmp_path / 'ring'}"), KeyringProvider)
    with pytest.raises(KeyProviderError, match="no key provider named 'vault'"):
        provider_from_spec("vault:secret/kek")
    with pytest.raises(KeyProviderError, match="is not NAME:ARG"):
        provider_from_spec("kek")


# -- constant memory ---------------------------------------------------------------------------------


def test_encrypt_and_decrypt_stream_in_constant_memory(tmp_path: Path) -> None:
    source = tmp_path / "big"
    with source.open("wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(64):
            handle.write(block)
    tracemalloc.start()
    try:
        encrypt_file(source, tmp_path / "big.gar", KEY)
        _, peak_encrypt = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decrypt_file(tmp_path / "big.gar", tmp_path / "plain", KEY)
        _, peak_decrypt = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_encrypt < 8 << 20
    assert peak_decrypt < 8 << 20
    assert (tmp_path / "plain").stat().st_size == 64 << 20


class _FullDisk(io.BytesIO):
    """A destination that fails like a full disk after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("limit", [200, 5000, 40_000])
def test_a_write_error_in_the_writer_thread_surfaces_and_nothing_hangs(limit: int) -> None:
    data = os.urandom(64 * 4096)
    with pytest.raises(OSError, match="No space left"):
        encrypt_stream(io.BytesIO(data), _FullDisk(limit), KEY, size=len(data), chunk_size=4096)
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sealed, KEY, size=len(data), chunk_size=4096)
    sealed.seek(0)
    with pytest.raises(OSError, match="No space left"):
        decrypt_stream(sealed, _FullDisk(limit), KEY)


# -- the buffer pool, the writer thread and write-behind -------------------------------------------


def test_a_write_error_while_every_buffer_is_queued_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_BUFFER_BYTES", 0)  # two buffers: the producer waits on the writer
    data = os.urandom(64 * 4096)
    with pytest.raises(OSError, match="No space left"):
        encrypt_stream(io.BytesIO(data), _FullDisk(3 * 4096), KEY, size=len(data), chunk_size=4096)
    sealed = seal(data)
    with pytest.raises(OSError, match="No space left"):
        decrypt_stream(io.BytesIO(sealed), _FullDisk(3 * 4096), KEY)


@pytest.mark.parametrize("size", [0, 1, CHUNK, 5 * CHUNK + 7, 40 * CHUNK])
def test_reused_buffers_round_trip_with_the_smallest_pool(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(crypto, "_BUFFER_BYTES", 0)
    data = os.urandom(size)
    assert unseal(seal(data)) == data


def test_a_tampered_chunk_in_the_middle_stops_before_its_plaintext_is_written() -> None:
    data = os.urandom(40 * CHUNK)
    head, chunks = chunks_of(seal(data))
    chunks[20] = bytes([chunks[20][0] ^ 1]) + chunks[20][1:]
    out = io.BytesIO()
    with pytest.raises(AuthenticationError, match="chunk 20 of 40"):
        decrypt_stream(io.BytesIO(head + b"".join(chunks)), out, KEY)
    assert out.getvalue() == data[: 20 * CHUNK]  # only chunks that authenticated reached the output


def test_a_tampered_chunk_in_the_middle_of_a_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto, "_WRITE_BEHIND_BYTES", CHUNK)  # write-behind runs many times
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(40 * CHUNK))
    encrypt_file(source, tmp_path / "model.gar", KEY, chunk_size=CHUNK)
    blob = bytearray((tmp_path / "model.gar").read_bytes())
    blob[header_len(bytes(blob)) + 20 * (CHUNK + TAG_BYTES) + 5] ^= 1
    (tmp_path / "model.gar").write_bytes(bytes(blob))
    with pytest.raises(AuthenticationError, match="chunk 20 of 40"):
        decrypt_file(tmp_path / "model.gar", tmp_path / "out.bin", KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.gar"]


def test_write_behind_round_trip_through_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_WRITE_BEHIND_BYTES", CHUNK)
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(50 * CHUNK + 3))
    encrypt_file(source, tmp_path / "model.gar", KEY, chunk_size=CHUNK)
    assert unseal((tmp_path / "model.gar").read_bytes()) == source.read_bytes()
    decrypt_file(tmp_path / "model.gar", tmp_path / "plain.bin", KEY)
    assert (tmp_path / "plain.bin").read_bytes() == source.read_bytes()


class _ReadOnly:
    """An input with ``read`` but no ``readinto``, handing out a few bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1000) if size >= 0 else size)


class _ShortWrites(io.RawIOBase):
    """A raw output that takes at most 1000 bytes per write, as a raw stream may."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        taken = bytes(data[:1000])
        self.data += taken
        return len(taken)


def test_streams_without_readinto_and_with_short_writes() -> None:
    data = os.urandom(3 * CHUNK + 5)
    out = _ShortWrites()
    encrypt_stream(_ReadOnly(data), out, KEY, size=len(data), chunk_size=CHUNK)  # type: ignore[arg-type]
    plain = _ShortWrites()
    decrypt_stream(_ReadOnly(bytes(out.data)), plain, KEY)  # type: ignore[arg-type]
    assert bytes(plain.data) == data


def test_write_behind_starts_each_window_and_drops_the_one_two_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(crypto, "_WRITE_BEHIND_BYTES", CHUNK)
    monkeypatch.setattr(crypto, "_drop_pages", lambda fd, offset, length: calls.append((offset, length)))
    out = tmp_path / "out.gar"
    with out.open("wb") as dst:
        encrypt_stream(
            io.BytesIO(bytes(10 * CHUNK)), dst, KEY, size=10 * CHUNK, chunk_size=CHUNK, write_behind=True
        )
        start = header_len(out.read_bytes())
    assert calls  # the schedule ran: window k started, window k - 2 dropped
    offsets = [offset - start for offset, _ in calls]
    assert offsets[:4] == [0, CHUNK, 2 * CHUNK, 0]
    assert all(length == CHUNK for _, length in calls)
    calls.clear()
    with (tmp_path / "plain.gar").open("wb") as dst:
        encrypt_stream(io.BytesIO(bytes(10 * CHUNK)), dst, KEY, size=10 * CHUNK, chunk_size=CHUNK)
    assert calls == []  # only on request: it costs CPU that only pays off before an fsync
