"""Encryption throughput beside raw AES-256-GCM from ``cryptography``, in the same run.

Writes a random file of ``--size`` bytes under ``benchmarks/.work`` (page cache warm), then times,
best of ``--repeat``: raw ``AESGCM.encrypt`` over the file's bytes in memory, 1 MiB at a time (the
floor: no I/O, no format); ``encrypt_file`` and ``decrypt_file`` (read, encrypt, write on the
background writer, fsync, atomic rename). Reports MiB/s and the ratio to the raw floor (issue goal:
>= 0.8) and the Python heap peak of each file operation (tracemalloc). A measurement, not a test.

Run: ``.venv/bin/python benchmarks/integrity/bench_encrypt.py --size 256M``.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.integrity.crypto_files import decrypt_file, encrypt_file
from garrison.integrity.crypto_keys import EnvKeyProvider

WORK = Path(__file__).resolve().parent.parent / ".work" / "encrypt"
CHUNK = 1 << 20


def _best(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--size", type=lambda t: int(t.rstrip("M")) << 20, default=256 << 20, help="MiB, e.g. 256M"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    plain, sealed, opened = WORK / "plain.bin", WORK / "plain.bin.gar", WORK / "opened.bin"
    plain.write_bytes(os.urandom(args.size))
    data = memoryview(plain.read_bytes())
    os.environ["GARRISON_BENCH_KEK"] = base64.b64encode(os.urandom(32)).decode("ascii")
    key = EnvKeyProvider("GARRISON_BENCH_KEK")
    cipher, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def raw() -> None:
        for start in range(0, len(data), CHUNK):
            cipher.encrypt(nonce, data[start : start + CHUNK], b"header")

    def enc() -> None:
        encrypt_file(plain, sealed, key, overwrite=True)

    def dec() -> None:
        decrypt_file(sealed, opened, key, overwrite=True)

    mib = args.size / (1 << 20)
    floor = mib / _best(raw, args.repeat)
    print(f"{mib:.0f} MiB, best of {args.repeat}")
    print(f"raw AES-256-GCM in memory  {floor:8.0f} MiB/s  1.00x")
    for name, run in (("encrypt_file", enc), ("decrypt_file", dec)):
        speed = mib / _best(run, args.repeat)
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
        tracemalloc.stop()
        print(f"{name:<26} {speed:8.0f} MiB/s  {speed / floor:.2f}x  heap peak {peak:.1f} MiB")
    for path in (plain, sealed, opened):
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
