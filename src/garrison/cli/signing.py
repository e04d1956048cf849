"""``garrison sign``, ``garrison verify`` and ``garrison watch``: signed manifests of models and datasets.

The format and the checks live in ``garrison.integrity.bundle``, ``signing`` and ``watch``;
``docs/signing.md`` explains them. These commands parse, call the library, record findings and
events in the store, and report.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import ConfigOption, DbOption, OutputOption, ReportFormatOption, emit, note

if TYPE_CHECKING:
    from garrison.core.config import LoadedSettings
    from garrison.integrity.bundle import Trust
    from garrison.integrity.signing import Verification

_TRUST = "Trust (exactly one)"

PathArgument = Annotated[
    Path,
    typer.Argument(
        help="A model or dataset directory, or a single file.", show_default=False, metavar="PATH"
    ),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        metavar="PEM",
        help="Public key (or a certificate whose key) the signature must verify with.",
        show_default=False,
        rich_help_panel=_TRUST,
    ),
]
CertOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--cert",
        metavar="PEM",
        help="CA certificate(s) the signing certificate must chain to; repeatable.",
        show_default=False,
        rich_help_panel=_TRUST,
    ),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="PATTERN",
        help="Leave out a path or fnmatch pattern relative to PATH; repeatable.",
        show_default=False,
    ),
]
StoreOption = Annotated[
    bool | None,
    typer.Option("--store/--no-store", help="Save findings and the event in the store.", show_default=False),
]

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """``4096``, ``64M`` (10^6), ``1GiB`` (2^30) → bytes; :class:`UsageError` otherwise."""
    from garrison.core.errors import UsageError

    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"--shard-size {text!r} is not a size", hint="for example 1G, 500M or 1073741824")
    unit = (match[2] or "").lower()
    factor = (
        1024 ** " kmgt".index(unit[0]) if unit.startswith(tuple("kmgt")) and "i" in unit else _UNITS[unit[:1]]
    )
    value = int(match[1]) * factor
    if value <= 0:
        raise UsageError("--shard-size must be positive")
    return value


def _trust(key: Path | None, cert: list[Path] | None) -> Trust:
    from garrison.integrity.gate import SignaturePolicy

    return SignaturePolicy(require=True, key=key, certs=tuple(cert or ())).trust()


def sign(
    path: PathArgument,
    key: Annotated[
        Path,
        typer.Option(
            "--key", metavar="PEM", help="Private key: ECDSA P-256/P-384 or Ed25519, PEM.", show_default=False
        ),
    ],
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            "-s",
            metavar="FILE",
            help="Where to write the signature. Default: PATH.sig.",
            show_default=False,
        ),
    ] = None,
    signing_cert: Annotated[
        Path | None,
        typer.Option(
            "--signing-cert",
            metavar="PEM",
            help="Certificate of the key: sign with a certificate chain.",
            show_default=False,
        ),
    ] = None,
    chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--chain",
            metavar="PEM",
            help="Intermediate certificates to include; repeatable.",
            show_default=False,
        ),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            metavar="VARIABLE",
            help="Environment variable holding the key's password.",
            show_default=False,
        ),
    ] = None,
    hash_type: Annotated[
        str, typer.Option("--hash", metavar="ALG", help="sha256 or blake3 (the blake3 extra).")
    ] = "sha256",
    shard_size: Annotated[
        str | None,
        typer.Option(
            "--shard-size",
            metavar="SIZE",
            help="Hash files as shards of SIZE (e.g. 1G) in parallel; default whole files.",
            show_default=False,
        ),
    ] = None,
    ignore: IgnoreOption = None,
    allow_symlinks: Annotated[
        bool,
        typer.Option("--allow-symlinks", help="Hash links to files inside the tree under their own name."),
    ] = False,
    chunks: Annotated[
        str,
        typer.Option(
            "--chunks",
            metavar="MODE",
            help="Row-level digests of dataset files (Parquet, CSV, JSONL, text): auto (files of 1 MiB "
            "or more), always, never.",
        ),
    ] = "auto",
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", metavar="N", min=1, help="Hashing threads (default: CPUs).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="console or json.")
    ] = "console",
) -> None:
    """Sign a model or dataset: a digest of every file, in the OpenSSF model-signing format.

    The signature verifies with `garrison verify` and with `model_signing verify key|certificate`
    (ECDSA keys). Paths that cannot be hashed safely (links out of the tree, special files)
    make signing fail rather than be left out silently. Dataset files also get row-level chunk
    digests, so a later change is reported as the rows that changed.

    \b
    Examples:
      openssl ecparam -name prime256v1 -genkey -noout -out signing.pem
      openssl ec -in signing.pem -pubout -out signing.pub
      garrison sign ./model --key signing.pem
      garrison sign ./data --key signing.pem --signing-cert me.crt --chain ca.crt
      garrison sign big.safetensors --key signing.pem --shard-size 1G

    Exit codes: 0 signed, 2 usage error (bad key, unsafe path), 3 unreadable input.
    """
    from garrison.core.errors import UsageError
    from garrison.integrity.bundle import Signer
    from garrison.integrity.signing import sign_path

    if hash_type not in ("sha256", "blake3"):
        raise UsageError(f"--hash {hash_type!r}: use sha256 or blake3")
    if chunks not in ("auto", "always", "never"):
        raise UsageError(f"--chunks {chunks!r}: use auto, always or never")
    if fmt not in ("console", "json"):
        raise UsageError(f"--format {fmt!r}: garrison sign writes console or json")
    password = None
    if password_env is not None:
        if password_env not in os.environ:
            raise UsageError(f"--password-env {password_env}: the variable is not set")
        password = os.environ[password_env].encode()
    signer = Signer.from_files(key, certificate=signing_cert, chain=tuple(chain or ()), password=password)
    started = time.perf_counter()
    result = sign_path(
        path,
        signer,
        signature=signature,
        algorithm=hash_type,  # type: ignore[arg-type]  # checked above
        shard_size=parse_size(shard_size) if shard_size else None,
        ignore=tuple(ignore or ()),
        allow_symlinks=allow_symlinks,
        workers=jobs,
        chunks=chunks,  # type: ignore[arg-type]  # checked above
    )
    elapsed = time.perf_counter() - started
    for line in result.notes:
        note(f"note: {line}")
    sizes = result.manifest.file_sizes()
    total = sum(sizes.values())
    if fmt == "json":
        emit(
            json.dumps(
                {
                    "signature": str(result.signature),
                    "signer": result.signer,
                    "files": len(sizes),
                    "bytes": total,
                    "resources": len(result.manifest.resources()),
                    "root_digest": result.manifest.root_digest(),
                    "chunked": list(result.chunked),
                    "seconds": round(elapsed, 3),
                },
                indent=2,
            ),
            None,
        )
    else:
        rate = (
            f", {total / elapsed / 1e6:,.0f} MB/s"
            if elapsed > 0 and total > 1e6 and not result.chunked
            else ""
        )
        chunked = f"; row-level digests for {len(result.chunked)} dataset file(s)" if result.chunked else ""
        emit(
            f"signed {len(sizes)} file(s), {total:,} bytes, in {elapsed:.2f} s{rate}{chunked}\n"
            f"signer: {result.signer}\nsignature: {result.signature}",
            None,
        )
    raise typer.Exit(0)


def _settings(flags: dict[str, Any], config_file: Path | None) -> LoadedSettings:
    from garrison.cli.common import load

    return load(flags, config_file)


def _record(
    loaded: LoadedSettings, result: Verification, label: str, report: Any, event_type: str | None = None
) -> None:
    from garrison.cli.common import open_store
    from garrison.integrity.verify_report import verification_event

    event = verification_event(result, label=label)
    if event_type is not None:
        from dataclasses import replace

        event = replace(event, type=event_type)
    with open_store(loaded) as st:
        st.save_report(report)
        st.append_events([event])


def verify(
    path: PathArgument,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature", "-s", metavar="FILE", help="The signature. Default: PATH.sig.", show_default=False
        ),
    ] = None,
    key: KeyOption = None,
    cert: CertOption = None,
    ignore: IgnoreOption = None,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Verify a model or dataset against its signature, and say exactly what changed.

    Checks the signature with the public key (--key) or the CA certificates (--cert), then
    rehashes PATH with the settings the signature records and lists every file that changed
    (with the rows that changed, for datasets signed with row-level digests), appeared or
    disappeared, and every path that cannot be checked safely. Findings (GAR-INT-*) and an
    integrity.verify.* event are saved in the store unless --no-store.

    \b
    Examples:
      garrison verify ./model --key signing.pub
      garrison verify ./model --signature model.sig --cert ca.crt --format sarif -o verify.sarif

    Exit codes: 0 verified, 1 signature invalid or content differs, 2 usage error.
    """
    from garrison.core.events import utc_now
    from garrison.integrity.signing import default_signature_path, verify_path
    from garrison.integrity.verify_report import describe, verification_report

    loaded = _settings({"format": fmt, "store": store, "db": db}, config_file)
    settings = loaded.settings
    trust = _trust(key, cert)
    sig = signature or default_signature_path(path)
    started = utc_now()
    result = verify_path(path, sig, trust, ignore=tuple(ignore or ()))
    label = str(path)
    report = verification_report(result, label=label, started_at=started)
    if settings.store:
        _record(loaded, result, label, report)
    if settings.format == "console" and output is None:
        emit(describe(result), None)
    else:
        from garrison.report import render

        emit(render(report, settings.format), output)
    raise typer.Exit(0 if result.ok else 1)


def watch(
    path: PathArgument,
    baseline: Annotated[
        Path,
        typer.Option(
            "--baseline", "-b", metavar="SIG", help="The signature to compare with.", show_default=False
        ),
    ],
    key: KeyOption = None,
    cert: CertOption = None,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="Compare every SECONDS; 0 compares once.", min=0),
    ] = 0.0,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            metavar="N",
            min=1,
            help="Stop after N comparisons (default: until stopped).",
            show_default=False,
        ),
    ] = None,
    ignore: IgnoreOption = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="FORMAT", help="console, or json (one JSON object per line)."),
    ] = "console",
    store: StoreOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Detect unauthorized changes: compare PATH with a signed baseline, once or periodically.

    Each comparison verifies the baseline's signature again and rehashes PATH. A change of state
    (clean → changed, one set of changes → another, changed → clean) is printed and recorded
    once: findings and an integrity.watch.changed or integrity.watch.clean event in the store.
    SIGINT or SIGTERM stops a periodic watch after the current comparison.

    \b
    Examples:
      garrison watch ./model --baseline model.sig --key signing.pub            # cron, CI
      garrison watch ./data --baseline data.sig --key signing.pub --interval 300

    Exit codes: 0 unchanged, 1 a change (or a bad signature) was seen at any comparison,
    2 usage error.
    """
    from garrison.core.errors import UsageError
    from garrison.core.events import utc_now
    from garrison.integrity.verify_report import describe, verification_report
    from garrison.integrity.watch import Cycle
    from garrison.integrity.watch import watch as run_watch

    if fmt not in ("console", "json"):
        raise UsageError(f"--format {fmt!r}: garrison watch writes console or json lines")
    loaded = _settings({"store": store, "db": db}, config_file)
    trust = _trust(key, cert)
    label = str(path)
    worst = 0

    def on_cycle(cycle: Cycle) -> None:
        nonlocal worst
        result = cycle.result
        worst = max(worst, 0 if result.ok else 1)
        if not cycle.changed_state:
            return
        stamp = utc_now()
        if loaded.settings.store:
            kind = "integrity.watch.clean" if result.ok else "integrity.watch.changed"
            _record(loaded, result, label, verification_report(result, label=label, started_at=stamp), kind)
        if fmt == "json":
            emit(json.dumps(_cycle_json(cycle, stamp.isoformat())), None)
        else:
            emit(f"[{stamp:%Y-%m-%d %H:%M:%S}Z] comparison {cycle.number}\n{describe(result)}", None)

    stop = threading.Event()
    previous = (
        {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        if interval
        else {}
    )
    try:
        cycles = run_watch(
            path,
            baseline,
            trust,
            interval=interval,
            count=count,
            on_cycle=on_cycle,
            stop=stop,
            ignore=tuple(ignore or ()),
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    note(f"{len(cycles)} comparison(s); exit {worst}")
    raise typer.Exit(worst)


def _cycle_json(cycle: Any, stamp: str) -> dict[str, Any]:
    result: Verification = cycle.result
    diff = result.diff
    return {
        "time": stamp,
        "comparison": cycle.number,
        "ok": result.ok,
        "signer": result.signer,
        "failure": result.failure,
        "changed": [{"path": c.path, "rows": result.rows.get(c.path)} for c in diff.changed] if diff else [],
        "added": list(diff.added) if diff else [],
        "removed": list(diff.removed) if diff else [],
        "unsafe": [{"path": p.path, "problem": str(p.kind)} for p in result.problems],
    }
