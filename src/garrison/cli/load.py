"""``garrison load PATH``: scan a model file, load it through the restricted unpickler, summarise it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import ConfigOption, emit, note

if TYPE_CHECKING:
    from garrison.loading import LoadResult
    from garrison.supplychain.safeload import LoadRefusedError
    from garrison.supplychain.safeload.summary import Summary


def load(
    path: Annotated[
        Path, typer.Argument(help="The model or data file to load.", show_default=False, metavar="PATH")
    ],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="GLOBAL",
            help="Also trust this global, for a class of your own (mypkg.models.Net, or "
            "mypkg.models:Outer.Inner). Repeatable. Globals known to run code are never accepted.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="FORMAT", help="console or json."),
    ] = "console",
    map_location: Annotated[
        str,
        typer.Option(
            "--map-location", metavar="DEVICE", help="Device for PyTorch tensors (cpu, cuda:0, meta)."
        ),
    ] = "cpu",
    rows: Annotated[
        int,
        typer.Option("--rows", metavar="N", min=0, help="How many entries to list."),
    ] = 20,
    require_signature: Annotated[
        bool,
        typer.Option(
            "--require-signature",
            help="Refuse unless the file verifies against its signature (PATH.sig, or the .sig of "
            "an enclosing signed directory) with the key or certificates given here or in the "
            "configuration (signature-key, signature-certs).",
        ),
    ] = False,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            metavar="FILE",
            help="The signature to check (implies --require-signature).",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            metavar="PEM",
            help="Public key the signature must verify with (implies --require-signature).",
            show_default=False,
        ),
    ] = None,
    cert: Annotated[
        list[Path] | None,
        typer.Option(
            "--cert",
            metavar="PEM",
            help="CA certificate the signing certificate must chain to; repeatable (implies "
            "--require-signature).",
            show_default=False,
        ),
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Scan a file, then load it through Garrison's restricted unpickler, and summarise it.

    Loads pickle, joblib, PyTorch (zip and legacy), NumPy (.npy, .npz) and safetensors files.
    The file is scanned first and refused on any finding of medium severity or above; what
    passes is loaded with an unpickler that imports only allowlisted globals, so a global the
    scan missed is still refused. Nothing of a refused file runs. Rule selection and limits
    come from the configuration file, as for `garrison scan`.

    \b
    Examples:
      garrison load model.pt
      garrison load checkpoint.pt --allow mypkg.models.Net
      garrison load pipeline.joblib --format json
      garrison load weights.safetensors --rows 5
      garrison load model/weights.pt --key publisher.pub   # checks model.sig first

    Exit codes: 0 loaded, 1 refused (findings, a global outside the allowlist, no verified
    signature), 2 usage error or missing extra, 3 unsupported format or unreadable file.
    """
    from garrison.cli.common import load as load_settings
    from garrison.core.errors import UsageError
    from garrison.loading import safe_load_result
    from garrison.supplychain.safeload import LoadRefusedError
    from garrison.supplychain.safeload.summary import summarize

    if fmt not in ("console", "json"):
        raise UsageError(f"--format {fmt!r}: garrison load writes console or json")
    explicit = signature is not None or key is not None or bool(cert)
    settings = load_settings(
        {
            "require_signature": (require_signature or explicit) or None,
            "signature_key": key,
            "signature_certs": tuple(cert) if cert else None,
        },
        config_file,
    ).settings
    verifier = None
    if signature is not None:
        from garrison.integrity.gate import SignaturePolicy, make_verifier

        verifier = make_verifier(SignaturePolicy.from_settings(settings, signature=signature))
    try:
        result = safe_load_result(
            path,
            allow=tuple(allow or ()),
            map_location=map_location,
            settings=settings,
            verifier=verifier,
        )
    except LoadRefusedError as refused:
        if fmt == "json":
            emit(json.dumps(_refusal_json(refused), indent=2), None)
        note(f"garrison: {refused.diagnostics()}")
        raise typer.Exit(1) from None
    summary = summarize(result.value, limit=rows)
    if fmt == "json":
        emit(json.dumps(_result_json(result, summary), indent=2), None)
    else:
        emit(_console(result, summary), None)
    raise typer.Exit(0)


def _low_findings(result: LoadResult) -> list[dict[str, Any]]:
    return [
        {"rule": f.rule.id, "severity": f.severity.label, "message": f.message}
        for f in result.report.sorted_findings()
    ]


def _result_json(result: LoadResult, summary: Summary) -> dict[str, Any]:
    return {
        "loaded": True,
        "path": str(result.path),
        "format": result.format,
        "digest": result.digest,
        "signature_verified": result.signature_verified,
        "type": summary.kind,
        "entries": summary.entries,
        "arrays": summary.arrays,
        "elements": summary.elements,
        "bytes": summary.nbytes,
        "shown": [
            {
                "key": e.key,
                "type": e.kind,
                "shape": list(e.shape) if e.shape is not None else None,
                "dtype": e.dtype,
            }
            for e in summary.shown
        ],
        "scan": {"run_id": result.report.run_id, "findings": _low_findings(result)},
    }


def _refusal_json(refused: LoadRefusedError) -> dict[str, Any]:
    return {
        "loaded": False,
        "path": refused.path,
        "reason": refused.reason,
        "rules": list(refused.rule_ids),
        "refused_globals": list(refused.refused_globals),
        "findings": [
            {
                "rule": f.rule.id,
                "severity": f.severity.label,
                "member": f.location.member,
                "message": f.message,
            }
            for f in refused.findings
        ],
        "hint": refused.hint,
    }


def _console(result: LoadResult, summary: Summary) -> str:
    from garrison.formats import FORMATS
    from garrison.report.common import size_text

    name = FORMATS[result.format].label if result.format in FORMATS else result.format
    low = len(result.report.findings)
    scan = "scan clean" if not low else f"scan passed ({low} finding(s) below medium)"
    lines = [
        f"Loaded {result.path.name}: {name}, {result.digest[:19]}…, {scan}.",
        f"Type: {summary.kind}"
        + (f" with {summary.entries} entries" if summary.entries is not None else "")
        + (
            f"; {summary.arrays} tensor(s)/array(s), {summary.elements:,} elements, "
            f"{size_text(summary.nbytes)}"
            if summary.arrays
            else ""
        ),
    ]
    if summary.shown:
        table = [("key", "type", "shape", "dtype")] + [
            (
                e.key,
                e.kind,
                "×".join(str(n) for n in e.shape) if e.shape is not None else "",
                e.dtype or "",
            )
            for e in summary.shown
        ]
        widths = [min(max(len(row[i]) for row in table), 60) for i in range(4)]
        lines.append("")
        lines.extend(
            "  ".join(cell[:60].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in table
        )
        if summary.entries is not None and summary.entries > len(summary.shown):
            lines.append(f"(first {len(summary.shown)} of {summary.entries} entries; --rows for more)")
    return "\n".join(lines)
