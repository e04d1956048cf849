"""Key-encryption keys (KEKs): where they come from and how they wrap a file's data key.

Every encrypted file has its own random 32-byte data key. A :class:`KeyProvider` wraps that data
key under a key-encryption key and unwraps it again; the file keeps only the wrapped form and the
key id (``kid``) the provider returned. Three providers are built in:

- :class:`KeyFileProvider`: 32 random bytes in a file (raw, or base64 text), mode 0600. A key file
  that the group or others can read is refused.
- :class:`EnvKeyProvider`: the same 32 bytes, base64, in an environment variable
  (``GARRISON_KEK`` by default).
- :class:`KeyringProvider`: the local "KMS": a directory of numbered key versions (``v1.key``,
  ``v2.key``, ...). New files are wrapped under the highest version; any version still present
  unwraps. Rotation is adding a version and rewrapping files (see ``crypto.rewrap``).

The built-in providers wrap with AES-256-GCM: ``blob = nonce (12) || ciphertext (32) || tag (16)``,
with associated data ``aad || len(kid) || kid``, so the wrapped key is bound to the file's header
and to the key id. Other providers (a cloud KMS) are looked up by name through the ``garrison.kms``
entry point group: a callable taking the text after ``NAME:`` in a key spec and returning a
provider.

Key material never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.core.errors import ConfigError, InputError

KEY_BYTES = 32
DEFAULT_ENV_VAR = "GARRISON_KEK"
ENTRY_POINT_GROUP = "garrison.kms"
_WRAP_NONCE = 12
_KID_MAX = 255
_VERSION_FILE = re.compile(r"^v([1-9][0-9]{0,8})\.key$")


class KeyProviderError(ConfigError):
    """A key-encryption key could not be found, read or used (exit code 2)."""


class DecryptionError(InputError):
    """An encrypted file cannot be decrypted: not ours, an unsupported version, a malformed header."""


class AuthenticationError(DecryptionError):
    """Authentication failed: a wrong key, or the file was modified, truncated, reordered (exit 1)."""

    exit_code = 1


class UnwrapError(AuthenticationError):
    """The wrapped data key did not authenticate: wrong key-encryption key or a modified header."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """A data key in wrapped form, as stored in a file's key block."""

    #: Which key-encryption key wrapped it: printable ASCII, 1 to 255 characters.
    kid: str
    #: The provider's opaque wrapping of the data key (1 to 65535 bytes).
    blob: bytes


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under a key-encryption key.

    ``aad`` is the file's immutable header; a provider must bind the wrapped key to it (and to the
    kid) so that a key block moved to another file, or a changed kid, fails to unwrap.
    """

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        """Wrap ``data_key`` under the provider's current key."""
        ...

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Return the data key, or raise :class:`UnwrapError` (wrong key, modified header)."""
        ...


def key_fingerprint(key: bytes) -> str:
    """A key id derived from the key: ``kek:`` and 16 hex digits of a domain-separated SHA-256.

    The same key from a file or from the environment has the same id, so either unwraps the other's
    files; a wrong key is recognised by its id before any decryption is tried.
    """
    return "kek:" + hashlib.sha256(b"garrison kek id v1\x00" + key).hexdigest()[:16]


def _aad(aad: bytes, kid: str) -> bytes:
    kid_bytes = kid.encode("ascii")
    return aad + bytes([len(kid_bytes)]) + kid_bytes


def _gcm_wrap(key: bytes, kid: str, data_key: bytes, aad: bytes) -> WrappedKey:
    nonce = os.urandom(_WRAP_NONCE)
    return WrappedKey(kid=kid, blob=nonce + AESGCM(key).encrypt(nonce, data_key, _aad(aad, kid)))


def _gcm_unwrap(key: bytes, wrapped: WrappedKey, aad: bytes) -> bytes:
    blob = wrapped.blob
    if len(blob) != _WRAP_NONCE + KEY_BYTES + 16:
        raise UnwrapError("wrong key-encryption key or modified header (the wrapped key has the wrong size)")
    try:
        return AESGCM(key).decrypt(blob[:_WRAP_NONCE], blob[_WRAP_NONCE:], _aad(aad, wrapped.kid))
    except InvalidTag:
        raise UnwrapError(
            f"wrong key-encryption key or modified header (key {wrapped.kid} did not unwrap the data key)"
        ) from None


def _parse_key(raw: bytes, where: str) -> bytes:
    """32 raw bytes, or base64 text of them (surrounding white space ignored)."""
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyProviderError(
            f"{where} does not hold a key-encryption key: expected 32 raw bytes or their base64",
            hint="create one with `garrison kek generate FILE`",
        )
    return key


class _StaticKeyProvider:
    """A single 32-byte key-encryption key whose kid is its fingerprint."""

    def __init__(self, key: bytes, *, source: str) -> None:
        self._key = key
        self.source = source
        self.kid = key_fingerprint(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r}, kid={self.kid!r})"

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        return _gcm_wrap(self._key, self.kid, data_key, aad)

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        if wrapped.kid != self.kid:
            raise UnwrapError(
                f"wrong key-encryption key: the file's data key is wrapped by {wrapped.kid}, "
                f"and {self.source} holds {self.kid}"
            )
        return _gcm_unwrap(self._key, wrapped, aad)


class KeyFileProvider(_StaticKeyProvider):
    """A key-encryption key in a file only its owner can read."""

    def __init__(self, path: Path) -> None:
        super().__init__(read_key_file(path), source=f"key file {path}")
        self.path = path


class EnvKeyProvider(_StaticKeyProvider):
    """A base64 key-encryption key in an environment variable."""

    def __init__(self, variable: str = DEFAULT_ENV_VAR) -> None:
        value = os.environ.get(variable)
        if not value:
            raise KeyProviderError(
                f"environment variable {variable} is not set or empty",
                hint=f"export {variable}=$(head -c 32 /dev/urandom | base64)",
            )
        super().__init__(
            _parse_key(value.encode("ascii", "replace"), f"environment variable {variable}"),
            source=f"environment variable {variable}",
        )
        self.variable = variable


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing one that the group or others can read (or that is not a file)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise KeyProviderError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProviderError(f"key file {path} is not a regular file")
    if os.name == "posix" and info.st_mode & 0o077:
        raise KeyProviderError(
            f"key file {path} can be read or written by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "refusing to use it",
            hint=f"chmod 600 {path}",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyProviderError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    return _parse_key(raw, f"key file {path}")


def generate_key_file(path: Path) -> str:
    """Write a new random key-encryption key (base64 text) to ``path`` with mode 0600.

    Refuses to overwrite an existing file. Returns the new key's kid.
    """
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyProviderError(f"{path} already exists; a key file is never overwritten") from None
    except OSError as exc:
        raise KeyProviderError(f"cannot create key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
    return key_fingerprint(key)


class KeyringProvider:
    """The local KMS: a directory of versioned key-encryption keys, ``v1.key``, ``v2.key``, ...

    The kid of version *n* is ``keyring:vN``. Wrapping uses the highest version; unwrapping uses the
    version the file names. Each key file must be private to its owner (mode 0600).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.is_dir():
            raise KeyProviderError(
                f"keyring {directory} is not a directory",
                hint=f"create it with `garrison kek rotate {directory}`",
            )
        self.versions = sorted(_keyring_versions(directory))
        if not self.versions:
            raise KeyProviderError(
                f"keyring {directory} holds no key versions (v1.key, v2.key, ...)",
                hint=f"add one with `garrison kek rotate {directory}`",
            )

    def __repr__(self) -> str:
        return f"KeyringProvider(directory={str(self.directory)!r}, current={self.current})"

    @property
    def current(self) -> int:
        """The highest key version, used for new wraps."""
        return self.versions[-1]

    def _key(self, version: int) -> bytes:
        return read_key_file(self.directory / f"v{version}.key")

    def wrap(self, data_key: bytes, aad: bytes) -> WrappedKey:
        return _gcm_wrap(self._key(self.current), f"keyring:v{self.current}", data_key, aad)

    def unwrap(self, wrapped: WrappedKey, aad: bytes) -> bytes:
        match = re.fullmatch(r"keyring:v([1-9][0-9]{0,8})", wrapped.kid)
        if match is None:
            raise UnwrapError(
                f"wrong key-encryption key: the file's data key is wrapped by {wrapped.kid}, "
                f"not by a version of keyring {self.directory}"
            )
        version = int(match.group(1))
        if version not in self.versions:
            raise UnwrapError(
                f"wrong key-encryption key: the file's data key is wrapped by {wrapped.kid}, "
                f"which keyring {self.directory} does not hold"
            )
        return _gcm_unwrap(self._key(version), wrapped, aad)


def _keyring_versions(directory: Path) -> list[int]:
    versions = []
    for entry in directory.iterdir():
        match = _VERSION_FILE.match(entry.name)
        if match:
            versions.append(int(match.group(1)))
    return versions


def rotate_keyring(directory: Path) -> str:
    """Add the next key version to a keyring (creating the directory, mode 0700); return its kid."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyProviderError(f"cannot create keyring {directory}: {exc.strerror or exc}") from None
    version = max(_keyring_versions(directory), default=0) + 1
    generate_key_file(directory / f"v{version}.key")
    return f"keyring:v{version}"


ProviderFactory = Callable[[str], KeyProvider]

BUILTIN_PROVIDERS: dict[str, ProviderFactory] = {
    "file": lambda arg: KeyFileProvider(Path(arg).expanduser()),
    "env": lambda arg: EnvKeyProvider(arg or DEFAULT_ENV_VAR),
    "keyring": lambda arg: KeyringProvider(Path(arg).expanduser()),
}


def local_kms(arg: str) -> KeyProvider:
    """The ``local`` ``garrison.kms`` plugin: a keyring directory behind the plugin interface.

    It is registered as an entry point by Garrison's own package, so ``--key local:DIR`` goes
    through exactly the lookup a third-party KMS plugin does (``NAME:ARG`` → entry point → factory
    called with ``ARG`` → :class:`KeyProvider`). A cloud KMS plugin implements the same two
    methods, ``wrap`` and ``unwrap``.
    """
    if not arg:
        raise KeyProviderError(
            "local:DIR needs the keyring directory", hint="e.g. --key local:/etc/garrison/keys"
        )
    return KeyringProvider(Path(arg).expanduser())


def provider_from_spec(spec: str) -> KeyProvider:
    """A provider from ``NAME:ARG``: ``file:PATH``, ``env:VAR``, ``keyring:DIR``, or a plugin name.

    Plugins are entry points in the ``garrison.kms`` group; the entry point's object is called with
    ``ARG`` and must return a :class:`KeyProvider`. Built-in names cannot be overridden.
    """
    name, sep, arg = spec.partition(":")
    if not sep or not name:
        raise KeyProviderError(
            f"key {spec!r} is not NAME:ARG",
            hint="use file:PATH, env:VARIABLE, keyring:DIRECTORY or a garrison.kms plugin name",
        )
    factory = BUILTIN_PROVIDERS.get(name) or _plugin(name)
    provider = factory(arg)
    if not isinstance(provider, KeyProvider):
        raise KeyProviderError(f"key provider plugin {name!r} did not return a key provider")
    return provider


def _plugin(name: str) -> ProviderFactory:
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            factory: ProviderFactory = entry.load()
            return factory
    known = ", ".join(sorted(BUILTIN_PROVIDERS))
    raise KeyProviderError(
        f"no key provider named {name!r}",
        hint=f"built in: {known}; others come from packages registering a {ENTRY_POINT_GROUP} entry point",
    )
