"""``garrison encrypt | decrypt | rewrap`` and ``garrison kek``: encryption at rest for files.

The format, the file operations and the key providers are in ``garrison.integrity.crypto``,
``crypto_files`` and ``crypto_keys``;
``docs/encryption.md`` specifies them. These commands only parse, pick a key provider, call the
library and report on stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from garrison.cli.common import note

if TYPE_CHECKING:
    from garrison.integrity.crypto_keys import KeyProvider

_KEYS = "Key-encryption key (exactly one)"

PathArgument = Annotated[
    Path, typer.Argument(help="The file to read.", show_default=False, metavar="PATH", dir_okay=False)
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", metavar="FILE", help="Where to write.", show_default=False, dir_okay=False
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace the output if it exists.")]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="A key file (mode 0600) made by `garrison kek generate`.",
        show_default=False,
        rich_help_panel=_KEYS,
    ),
]
KeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--key-env",
        metavar="VARIABLE",
        help="An environment variable holding the key in base64 (e.g. GARRISON_KEK).",
        show_default=False,
        rich_help_panel=_KEYS,
    ),
]
KeyringOption = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        metavar="DIR",
        help="A local keyring of versioned keys made by `garrison kek rotate`.",
        show_default=False,
        rich_help_panel=_KEYS,
    ),
]
KeySpecOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="SPEC",
        help="A key as NAME:ARG: file:PATH, env:VARIABLE, keyring:DIR, or a garrison.kms plugin.",
        show_default=False,
        rich_help_panel=_KEYS,
    ),
]


def _provider(
    key_file: Path | None, key_env: str | None, keyring: Path | None, key: str | None
) -> KeyProvider:
    from garrison.core.errors import UsageError
    from garrison.integrity.crypto_keys import provider_from_spec

    specs = [
        f"{name}:{value}"
        for name, value in (("file", key_file), ("env", key_env), ("keyring", keyring))
        if value is not None
    ]
    if key is not None:
        specs.append(key)
    if len(specs) != 1:
        raise UsageError(
            "name exactly one key-encryption key: --key-file, --key-env, --keyring or --key",
            hint="create one with `garrison kek generate FILE`",
        )
    return provider_from_spec(specs[0])


_BAR_FROM_BYTES = 64 << 20


@contextlib.contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for a large file on a terminal; ``None`` otherwise."""
    if total < _BAR_FROM_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda nbytes: progress.advance(task, nbytes)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def encrypt(
    path: PathArgument,
    output: OutOption = None,
    key_file: KeyFileOption = None,
    key_env: KeyEnvOption = None,
    keyring: KeyringOption = None,
    key: KeySpecOption = None,
    chunk_size: Annotated[
        int,
        typer.Option(
            "--chunk-size", metavar="BYTES", help="Plaintext bytes per chunk, 4096 to 67108864 (64 MiB)."
        ),
    ] = 1 << 20,
    force: ForceOption = False,
) -> None:
    """Encrypt a model or dataset file with AES-256-GCM (streaming, constant memory).

    Each file gets its own data key, wrapped by the key-encryption key you name. The output
    (default PATH.gar) appears only when encryption finished; the input is left as it is.

    \b
    Examples:
      garrison kek generate ~/.garrison/kek            # once: a new key, mode 0600
      garrison encrypt model.safetensors --key-file ~/.garrison/kek
      GARRISON_KEK=$(cat kek) garrison encrypt data.parquet --key-env GARRISON_KEK -o data.gar
      garrison encrypt model.pt --keyring ./keys        # wraps under the newest key version

    Exit codes: 0 encrypted, 2 usage error or unusable key.
    """
    from garrison.integrity.crypto_files import encrypt_file

    provider = _provider(key_file, key_env, keyring, key)
    target = output or path.with_name(path.name + ".gar")
    with _bar("encrypting", _size(path)) as progress:
        header = encrypt_file(
            path, target, provider, chunk_size=chunk_size, overwrite=force, progress=progress
        )
    note(f"encrypted {path} -> {target} ({header.chunks} chunks, key {header.wrapped.kid})")


def decrypt(
    path: PathArgument,
    output: OutOption = None,
    key_file: KeyFileOption = None,
    key_env: KeyEnvOption = None,
    keyring: KeyringOption = None,
    key: KeySpecOption = None,
    force: ForceOption = False,
) -> None:
    """Decrypt a file made by `garrison encrypt`, checking every chunk.

    The output (default: PATH without .gar, else PATH.dec) is written under a temporary name
    and appears, with mode 0600, only when the whole file authenticated: a modified, truncated,
    reordered or spliced file, or a wrong key, leaves nothing behind.

    \b
    Examples:
      garrison decrypt model.safetensors.gar --key-file ~/.garrison/kek
      garrison decrypt data.gar -o data.parquet --key-env GARRISON_KEK
      garrison decrypt model.pt.gar --keyring ./keys

    Exit codes: 0 decrypted, 1 authentication failed (wrong key, modified, truncated or
    reordered file), 2 usage error or unusable key, 3 not a Garrison encrypted file or an
    unsupported format version.
    """
    from garrison.integrity.crypto_files import decrypt_file

    provider = _provider(key_file, key_env, keyring, key)
    if output is not None:
        target = output
    elif path.suffix == ".gar":
        target = path.with_suffix("")
    else:
        target = path.with_name(path.name + ".dec")
    with _bar("decrypting", _size(path)) as progress:
        header = decrypt_file(path, target, provider, overwrite=force, progress=progress)
    note(f"decrypted {path} -> {target} ({header.plaintext_size} bytes, authenticated)")


def rewrap(
    path: PathArgument,
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="SPEC",
            help="The key that wraps the file now: file:PATH, env:VARIABLE, keyring:DIR or a plugin.",
            show_default=False,
        ),
    ],
    dest: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="SPEC",
            help="The key to wrap under instead. Default: the --from key (a keyring's newest version).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write a rewrapped copy here instead of replacing PATH.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Rewrap a file's data key under another key-encryption key, without re-encrypting the data.

    Only the header's key block changes; the encrypted chunks are copied byte for byte. PATH is
    replaced atomically unless --output is given. This is how keys are rotated: add a version to
    a keyring, then rewrap each file.

    \b
    Examples:
      garrison rewrap model.pt.gar --from file:old.kek --to file:new.kek
      garrison kek rotate ./keys && garrison rewrap model.pt.gar --from keyring:./keys
      garrison rewrap data.gar --from env:OLD_KEK --to keyring:./keys -o data.rewrapped.gar

    Exit codes: 0 rewrapped, 1 the --from key did not unwrap the data key, 2 usage error or
    unusable key, 3 not a Garrison encrypted file.
    """
    from garrison.integrity.crypto_files import read_header, rewrap_file
    from garrison.integrity.crypto_keys import provider_from_spec

    old = provider_from_spec(source)
    new = provider_from_spec(dest) if dest is not None else old
    before = read_header(path).wrapped.kid
    header = rewrap_file(path, old, new, out=output)
    note(f"rewrapped {output or path}: key {before} -> {header.wrapped.kid}")


kek_app = typer.Typer(
    help="Create key-encryption keys for `garrison encrypt`.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@kek_app.command("generate")
def kek_generate(
    path: Annotated[Path, typer.Argument(help="The key file to create.", show_default=False, metavar="FILE")],
) -> None:
    """Create a key file: 32 random bytes, base64, mode 0600. Never overwrites a file.

    \b
    Example:
      garrison kek generate ~/.garrison/kek
    """
    from garrison.integrity.crypto_keys import generate_key_file

    note(f"created {path} (key {generate_key_file(path)}); keep it secret and backed up")


@kek_app.command("rotate")
def kek_rotate(
    directory: Annotated[
        Path, typer.Argument(help="The keyring directory (created if missing).", show_default=False)
    ],
) -> None:
    """Add a new key version to a local keyring; new files and rewraps use it.

    Older versions stay so existing files still decrypt; remove one only after every file
    wrapped by it has been rewrapped.

    \b
    Example:
      garrison kek rotate ./keys
      garrison rewrap model.pt.gar --from keyring:./keys
    """
    from garrison.integrity.crypto_keys import rotate_keyring

    note(f"added {rotate_keyring(directory)} to {directory}")
