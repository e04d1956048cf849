"""Encryption throughput beside raw AES-256-GCM from ``cryptography``, in the same run.

Writes a random file of ``--size`` bytes (``256M``, ``4G``; fresh random bytes) under
``benchmarks/.work`` and leaves it in the page cache, then measures, best of ``--repeat``:

- **raw**: ``AESGCM.encrypt`` (the allocating call) on 1 MiB chunks of in-memory data, one
  thread, no I/O, no format: the floor the issue's goal (>= 0.8x) is stated against. The data is a
  buffer of ``min(size, 256 MiB)`` encrypted over and over until ``size`` bytes are done, so a
  4 GiB run does not hold 4 GiB in memory (256 MiB is far beyond any CPU cache either way). It is
  timed before and after the file operations; the better run is the floor, both are printed.
- **encrypt_file / decrypt_file**: the library as the CLI uses it: read, seal or open, write on the
  background writer, ``fsync``, atomic rename. Durable: the number to quote.
- **encrypt_stream / decrypt_stream**: the same (write-behind included) into an open file, without
  ``fsync`` or rename: the cost of durability is the difference. Decryption is compared with the
  same raw floor (GCM opens at the speed it seals).
- **copy**: the I/O of ``encrypt_file`` with no cryptography at all (1 MiB ``readinto`` on one
  thread; write and the same write-behind on another, from four reused buffers; ``fsync``): the
  ceiling any durable encryption through the page cache can reach on this machine.

Each operation runs in a fresh child process, so its peak resident set (``VmHWM``, the whole
process: interpreter, imports, buffers) is its own; the child also reports its RSS before the
operation and, in a separate untimed run, the Python heap peak (``tracemalloc``). The plaintext
and each finished output are flushed to disk outside the timing; outputs are deleted before each
timed run (so a replaced output's page-cache pages are not freed inside the timing), and every
file is deleted at the end. The load average is printed at the start and the
end: the machine may be shared. A measurement, not a test.

Run: ``.venv/bin/python benchmarks/integrity/bench_encrypt.py --size 4G``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.integrity.crypto import decrypt_stream, encrypt_stream
from garrison.integrity.crypto_files import decrypt_file, encrypt_file
from garrison.integrity.crypto_keys import EnvKeyProvider

WORK = Path(__file__).resolve().parent.parent / ".work" / "encrypt"
PLAIN, SEALED, OPENED = WORK / "plain.bin", WORK / "plain.bin.gar", WORK / "opened.bin"
COPIED = WORK / "copied.bin"
CHUNK = 1 << 20
RAW_BUFFER = 256 << 20
KEK_VARIABLE = "GARRISON_BENCH_KEK"
LABELS = {
    "encrypt_stream": "encrypt_stream (no fsync)",
    "encrypt_file": "encrypt_file (fsync + rename)",
    "decrypt_stream": "decrypt_stream (no fsync)",
    "decrypt_file": "decrypt_file (fsync + rename)",
    "copy": "copy, no crypto (fsync): I/O ceil.",
}
OPERATIONS = ("encrypt_stream", "encrypt_file", "decrypt_stream", "decrypt_file", "copy")
WRITE_BEHIND = 8 << 20
_UNITS = {"K": 10, "M": 20, "G": 30}


def _size(text: str) -> int:
    unit = text[-1:].upper()
    if unit in _UNITS:
        return int(text[:-1]) << _UNITS[unit]
    return int(text)


def _operation(name: str) -> Callable[[], None]:
    key = EnvKeyProvider(KEK_VARIABLE)

    def encrypt_durably() -> None:
        encrypt_file(PLAIN, SEALED, key, overwrite=True)

    def encrypt_without_fsync() -> None:
        with PLAIN.open("rb") as src, SEALED.open("wb") as dst:
            encrypt_stream(src, dst, key, size=PLAIN.stat().st_size, write_behind=True)

    def decrypt_durably() -> None:
        decrypt_file(SEALED, OPENED, key, overwrite=True)

    def decrypt_without_fsync() -> None:
        with SEALED.open("rb") as src, OPENED.open("wb") as dst:
            decrypt_stream(src, dst, key, write_behind=True)

    def copy_durably() -> None:
        """encrypt_file's I/O with no cryptography: readinto here, write and write-behind on a
        second thread from a pool of four 1 MiB buffers (as the library does), fsync."""
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        for _ in range(4):
            free.put(bytearray(CHUNK))
        with PLAIN.open("rb", buffering=0) as src, COPIED.open("wb", buffering=0) as dst:

            def write() -> None:
                written = advised = 0
                while (item := full.get()) is not None:
                    buffer, got = item
                    dst.write(memoryview(buffer)[:got])
                    free.put(buffer)
                    written += got
                    if written - advised >= 2 * WRITE_BEHIND:
                        os.posix_fadvise(dst.fileno(), advised, WRITE_BEHIND, os.POSIX_FADV_DONTNEED)
                        if advised >= 2 * WRITE_BEHIND:
                            drop = advised - 2 * WRITE_BEHIND
                            os.posix_fadvise(dst.fileno(), drop, WRITE_BEHIND, os.POSIX_FADV_DONTNEED)
                        advised += WRITE_BEHIND

            writer = threading.Thread(target=write)
            writer.start()
            while got := src.readinto(buffer := free.get()):
                full.put((buffer, got))
            full.put(None)
            writer.join()
            os.fsync(dst.fileno())

    return {
        "encrypt_stream": encrypt_without_fsync,
        "encrypt_file": encrypt_durably,
        "decrypt_stream": decrypt_without_fsync,
        "decrypt_file": decrypt_durably,
        "copy": copy_durably,
    }[name]


def _child(name: str, repeat: int) -> None:
    """Time one operation ``repeat`` times in this process; print seconds and memory as JSON."""
    run = _operation(name)
    output = {"encrypt": SEALED, "decrypt": OPENED}.get(name.partition("_")[0], COPIED)
    rss_before = _rss_high_water()
    times = []
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
        _settle(output)
    rss_peak = _rss_high_water()
    output.unlink(missing_ok=True)
    tracemalloc.start()
    run()
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"seconds": min(times), "rss_before_kib": rss_before, "rss_peak_kib": rss_peak,
                      "heap_peak": heap_peak}))  # fmt: skip


def _rss_high_water() -> int:
    """This process's peak resident set in KiB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec`` on Linux, so a child would
    report its parent's peak (the raw floor's buffer) instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _settle(path: Path) -> None:
    """Flush a finished output to disk, outside the timing, so its writeback does not overlap the next run."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _raw(size: int, repeat: int) -> float:
    """Best seconds for raw AESGCM.encrypt over ``size`` bytes, 1 MiB at a time, one thread."""
    with PLAIN.open("rb") as handle:
        data = memoryview(handle.read(min(size, RAW_BUFFER)))
    cipher, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    starts = [start % len(data) for start in range(0, size, CHUNK)]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for start in starts:
            cipher.encrypt(nonce, data[start : start + CHUNK], b"header")
        best = min(best, time.perf_counter() - started)
    return best


def _write_plaintext(size: int) -> None:
    with PLAIN.open("wb") as handle:
        for start in range(0, size, 64 << 20):
            handle.write(os.urandom(min(64 << 20, size - start)))
        handle.flush()
        os.fsync(handle.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=_size, default=256 << 20, help="bytes, or with K, M, G: 256M, 4G")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=OPERATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.repeat)
        return
    os.environ[KEK_VARIABLE] = base64.b64encode(os.urandom(32)).decode("ascii")
    WORK.mkdir(parents=True, exist_ok=True)
    mib = args.size / (1 << 20)
    print(f"{mib:.0f} MiB, best of {args.repeat}, {os.cpu_count()} CPUs, load {_load()}")
    try:
        _write_plaintext(args.size)
        raw_before = _raw(args.size, args.repeat)
        results = {name: _run_child(name, args.repeat) for name in OPERATIONS}
        raw_after = _raw(args.size, args.repeat)
        floor = mib / min(raw_before, raw_after)
        print(
            f"raw AESGCM.encrypt, 1 MiB, in memory  {floor:6.0f} MiB/s  1.00x"
            f"  (before {mib / raw_before:.0f}, after {mib / raw_after:.0f})"
        )
        for name, result in results.items():
            speed = mib / result["seconds"]
            label = LABELS[name]
            print(
                f"{label:<37} {speed:6.0f} MiB/s  {speed / floor:.2f}x"
                f"  peak RSS {result['rss_peak_kib'] / 1024:5.1f} MiB"
                f" (+{(result['rss_peak_kib'] - result['rss_before_kib']) / 1024:.1f} over start-up)"
                f"  heap peak {result['heap_peak'] / (1 << 20):.1f} MiB"
            )
    finally:
        for path in (PLAIN, SEALED, OPENED, COPIED):
            path.unlink(missing_ok=True)
    print(f"load at the end {_load()}")


def _run_child(name: str, repeat: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", name, "--repeat", str(repeat)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
