"""Hashing and signing a model directory: Garrison beside ``model_signing sign`` and parallel ``sha256sum``.

Builds (and reuses) a directory of ``--files`` files totalling ``--size`` bytes under
``benchmarks/.work``, warms the page cache, then times, best of ``--repeat``, in one run:

- ``find | xargs -0 -P $(nproc) sha256sum``: hashing only, the practical limit on this machine
  (and ``openssl dgst -sha256`` the same way, which uses the CPU's SHA extensions as hashlib does);
- ``model_signing sign key DIR`` (model-signing 1.1.1, its command line, an ECDSA P-256 key);
- ``garrison sign DIR --key`` (the command line, same key, same files-mode format), and
  ``sign_path`` in-process (no interpreter start-up).

Each signature made is verified by the other tool before the numbers are reported, so the
comparison is between interchangeable outputs. Goals (issue 4): Garrison ≥ 0.9× the parallel
``sha256sum`` throughput and ≥ 1.5× ``model_signing``.

Run: ``.venv/bin/python benchmarks/integrity/bench_sign.py --size 4G --files 8``
(``--json PATH`` also writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_manifest import WORK, best_of, data_files, make_tree, parse_size, run_sha256sum

from garrison.integrity.bundle import KeyTrust, Signer, load_public_key
from garrison.integrity.signing import sign_path, verify_path

BIN = Path(sys.executable).parent


def make_key() -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private, public = WORK / "bench-key.pem", WORK / "bench-key.pub"
    if not private.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private, public


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4G", help="total bytes (K/M/G suffixes), default 4G")
    ap.add_argument("--files", type=int, default=8, help="number of files, default 8")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is reported")
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallelism of sha256sum and Garrison"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    model_signing = BIN / "model_signing"
    if not model_signing.exists():
        sys.exit(f"{model_signing} is missing: install garrison[dev], which pins model-signing 1.1.1")
    size = parse_size(args.size)
    root = make_tree(size, args.files)
    files = data_files(root)
    total = sum(p.stat().st_size for p in files)
    for p in files:  # warm the page cache so every tool reads from memory
        with p.open("rb") as f:
            while f.read(1 << 24):
                pass
    private, public = make_key()
    theirs, ours_cli, ours_lib = WORK / "ms.sig", WORK / "garrison-cli.sig", WORK / "garrison-lib.sig"
    ignore = [".complete"]

    rows: list[tuple[str, float]] = []
    peer = best_of(args.repeat, lambda: run_sha256sum(root, args.jobs))
    rows.append((f"sha256sum | xargs -P {args.jobs} (hash only)", peer))
    if shutil.which("openssl"):
        openssl = ("openssl", "dgst", "-sha256")
        rows.append(
            (
                f"openssl dgst | xargs -P {args.jobs} (hash only)",
                best_of(args.repeat, lambda: run_sha256sum(root, args.jobs, openssl)),
            )
        )
    ms_argv = [
        str(model_signing), "sign", "key", str(root), "--private_key", str(private),
        "--signature", str(theirs), "--ignore-paths", str(root / ".complete"),
    ]  # fmt: skip
    ms = best_of(args.repeat, lambda: run(ms_argv))
    rows.append(("model_signing sign key (CLI)", ms))
    g_argv = [
        str(BIN / "garrison"), "sign", str(root), "--key", str(private), "--signature", str(ours_cli),
        "--ignore", ".complete", "--jobs", str(args.jobs), "--chunks", "never",
    ]  # fmt: skip
    ours = best_of(args.repeat, lambda: run(g_argv))
    rows.append(("garrison sign (CLI)", ours))
    signer = Signer.from_files(private)
    lib = best_of(
        args.repeat,
        lambda: sign_path(root, signer, signature=ours_lib, ignore=ignore, workers=args.jobs, chunks="never"),
    )
    rows.append(("garrison sign_path (in-process)", lib))

    b3 = WORK / "garrison-b3.sig"
    b3_argv = [*g_argv[:6], str(b3), *g_argv[7:], "--hash", "blake3"]
    rows.append(
        ("garrison sign --hash blake3 (CLI, other digest)", best_of(args.repeat, lambda: run(b3_argv)))
    )

    # Interchangeable outputs: each tool verifies the other's signature, timed.
    if not verify_path(root, theirs, KeyTrust(load_public_key(public)), ignore=ignore).ok:
        raise RuntimeError("garrison could not verify model_signing's signature")
    ms_v_argv = [
        str(model_signing), "verify", "key", str(root), "--signature", str(ours_cli),
        "--public_key", str(public), "--ignore-paths", str(root / ".complete"),
    ]  # fmt: skip
    g_v_argv = [
        str(BIN / "garrison"), "verify", str(root), "--signature", str(theirs), "--key", str(public),
        "--ignore", ".complete", "--no-store",
    ]  # fmt: skip
    ms_verify = best_of(args.repeat, lambda: run(ms_v_argv))
    g_verify = best_of(args.repeat, lambda: run(g_v_argv))
    rows.append(("model_signing verify key (CLI), our signature", ms_verify))
    rows.append(("garrison verify (CLI), model_signing's signature", g_verify))

    print(
        f"{len(files)} files, {total / (1 << 30):.2f} GiB, {args.jobs} jobs, "
        f"best of {args.repeat}, page cache warm"
    )
    print(f"{'tool':<52} {'seconds':>8} {'GB/s':>7} {'vs sha256sum':>13}")
    for name, secs in rows:
        print(f"{name:<52} {secs:8.3f} {total / secs / 1e9:7.3f} {peer / secs:12.2f}x")
    print(f"garrison sign (CLI) vs model_signing sign: {ms / ours:.2f}x faster")
    print(f"garrison verify (CLI) vs model_signing verify: {ms_verify / g_verify:.2f}x faster")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "files": len(files),
                    "bytes": total,
                    "jobs": args.jobs,
                    "repeat": args.repeat,
                    "seconds": dict(rows),
                    "garrison_cli_vs_sha256sum": peer / ours,
                    "garrison_cli_vs_model_signing": ms / ours,
                    "garrison_verify_vs_model_signing": ms_verify / g_verify,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
