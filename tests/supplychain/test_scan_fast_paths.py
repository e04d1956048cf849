"""The scan's fast paths give what the plain paths give.

Format identification parses pickle opcodes without :func:`pickletools.genops`'s generator; the
pickle engine remembers the analyses of short streams. Both must be invisible in results: the
parse is compared with a genops-based reference on many streams, good, broken and hostile, and a
remembered analysis with a fresh one.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import struct
from pathlib import Path

import pytest

from garrison.core.config import Settings
from garrison.detectors import default_registry
from garrison.engine import scan_path
from garrison.formats.pickles import PICKLE_PREFIX, PickleParse, classify_pickle, parse_opcodes
from garrison.supplychain.pickle import machine
from garrison.supplychain.pickle.machine import analyze_stream
from garrison.supplychain.pickle.model import PickleLimits
from tests.supplychain.malicious import benign_samples, malicious_samples

_CALLS = frozenset({"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def reference_parse(data: bytes) -> PickleParse:
    """The opcode parse written directly over :func:`pickletools.genops`."""
    stream = io.BytesIO(data[:PICKLE_PREFIX])
    depth, marks, count, protocol, pos, calls = 0, [], 0, 0, 0, False
    try:
        for op, arg, position in pickletools.genops(stream):
            pos = position or 0
            count += 1
            calls = calls or op.name in _CALLS
            protocol = max(protocol, op.proto)
            if op.name == "PROTO" and isinstance(arg, int):
                protocol = arg
            before = op.stack_before
            if pickletools.markobject in before:
                if not marks:
                    return PickleParse(
                        opcodes=count, protocol=protocol, error=f"{op.name} without MARK", error_offset=pos
                    )
                depth = marks.pop()
                need = before.index(pickletools.markobject)
            else:
                need = len(before)
            if depth < need:
                return PickleParse(
                    opcodes=count, protocol=protocol, error=f"{op.name} on a short stack", error_offset=pos
                )
            depth -= need
            if op.name == "MARK":
                marks.append(depth)
            else:
                depth += len(op.stack_after)
            if op.name == "STOP":
                return PickleParse(opcodes=count, protocol=protocol, stop=pos + 1, calls=calls)
    except (ValueError, OverflowError, struct.error, MemoryError, RecursionError) as exc:
        if stream.tell() >= len(stream.getbuffer()):
            return PickleParse(opcodes=count, protocol=protocol)
        return PickleParse(opcodes=count, protocol=protocol, error=str(exc)[:200], error_offset=pos)
    return PickleParse(opcodes=count, protocol=protocol)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The test suite's malicious and benign samples (the benign ones take seconds to build)."""
    tmp = tmp_path_factory.mktemp("samples")
    return [s.data for s in malicious_samples(tmp / "canary") + benign_samples(tmp)]


def _streams(samples: list[bytes]) -> list[bytes]:
    """Pickles of every protocol, the test suite's samples, and their cut and mutated copies."""
    values: list[object] = [
        None,
        {"a": [1, 2.5, "x" * 300, b"\x00\xff" * 200], "b": (True, frozenset({1}), bytearray(b"z"))},
        [list(range(50)), {"nested": {"k": "é" * 40}}],
        Path("/tmp/x"),
        2**80,
    ]
    base = [pickle.dumps(v, protocol=p) for v in values for p in range(6)]
    base += samples
    rng = random.Random(3)
    out = list(base)
    for data in (d for d in base if len(d) <= 16384):  # large samples are parsed once, above
        out.append(data[: len(data) // 2])
        out.append(data[:-1])
        for _ in range(6):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            out.append(bytes(mutated))
    out += [b"", b".", b"(", b"\x80", b"\x80\x09", b"(l.", b"0", b"\xff\xfe", b"plain text, not a pickle\n"]
    out += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) for _ in range(300)]
    return out


def test_opcode_parse_matches_genops(samples: list[bytes]) -> None:
    streams = _streams(samples)
    outcomes = {"stop": 0, "error": 0, "ran out": 0}
    for data in streams:
        got = parse_opcodes(data)
        assert got == reference_parse(data), data
        outcomes["stop" if got.stop is not None else "error" if got.error else "ran out"] += 1
    assert min(outcomes.values()) > 20, outcomes  # every branch is exercised


def test_classification_unchanged_on_text_and_pickles(samples: list[bytes]) -> None:
    for data in _streams(samples):
        found = classify_pickle(data, complete=True)
        if found is not None and found.format == "pickle" and data[:1] == b"\x80":
            assert found.detail("protocol") == str(reference_parse(data).protocol)


def test_remembered_analysis_equals_a_fresh_one(samples: list[bytes]) -> None:
    machine._memo.clear()
    for data in samples:
        first = analyze_stream(data)
        again = analyze_stream(bytes(data))  # an equal copy: served from the memo
        view = analyze_stream(memoryview(data))
        assert again == first
        assert view == machine._analyze_stream(memoryview(data), len(data), machine.DEFAULT_LIMITS, None)
        assert first == machine._analyze_stream(data, len(data), machine.DEFAULT_LIMITS, None)
        again.append(first[0])  # the caller's list is its own
        assert analyze_stream(data) == first
    assert 0 < len(machine._memo) <= machine.MEMO_ENTRIES


def test_memo_keys_on_limits_and_count_and_stays_bounded() -> None:
    machine._memo.clear()
    data = pickle.dumps([[1, 2], [3, 4], {"k": "v"}], protocol=2) * 3
    assert len(analyze_stream(data)) == 3
    assert len(analyze_stream(data, max_pickles=1)) == 1
    tight = analyze_stream(data, limits=PickleLimits(max_opcodes=3))
    assert tight[0].limit_hit == "max_opcodes"
    assert analyze_stream(data)[0].limit_hit is None
    for i in range(machine.MEMO_ENTRIES + 10):
        analyze_stream(pickle.dumps(i))
    assert len(machine._memo) == machine.MEMO_ENTRIES
    big = pickle.dumps(b"x" * (machine.MEMO_MAX_BYTES + 1))
    machine._memo.clear()
    assert analyze_stream(big)[0].malformed is None
    assert not machine._memo  # long streams are analysed every time


@pytest.mark.parametrize("jobs", [1, 2])
def test_identical_checkpoints_keep_their_own_findings(tmp_path: Path, jobs: int) -> None:
    # Many files with one pickle program: each reports its own locator, as when scanned alone.
    evil = next(s for s in malicious_samples(tmp_path / "canary") if s.data[:1] == b"\x80")
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(70):
        (folder / f"m{i:02d}.pkl").write_bytes(evil.data)
    machine._memo.clear()
    registry = default_registry()
    report = scan_path(folder, settings=Settings(store=False, jobs=jobs), registry=registry)
    alone = scan_path(folder / "m07.pkl", settings=Settings(store=False, jobs=1), registry=registry)
    by_file: dict[str, list[tuple[str, str]]] = {}
    for f in report.findings:
        by_file.setdefault(f.asset.locator, []).append((f.rule.id, f.message))
    assert len(by_file) == 70
    expected = [(f.rule.id, f.message) for f in alone.findings]
    assert expected
    assert by_file["m07.pkl"] == expected
    assert all(v == [(r, m.replace("m07", k[:3])) for r, m in expected] for k, v in by_file.items())
