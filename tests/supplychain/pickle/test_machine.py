"""The symbolic unpickler's stack and memo model, opcode by opcode, against CPython's semantics."""

from __future__ import annotations

import contextlib
import io
import pickle
from typing import Any

import pytest

from garrison.supplychain.pickle import PickleLimits, analyze_pickle, analyze_stream
from tests.supplychain.malicious import MEMOIZE, POP, STACK_GLOBAL, call, const, p4, sg, su


class _Stand:
    """Stand-in for every global: accepts any call, any state. Nothing real is imported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stand:
        return _Stand()

    def __setstate__(self, state: Any) -> None:
        pass


class RecordingUnpickler(pickle.Unpickler):
    """CPython's own unpickler, with find_class recording names and returning a harmless stand-in."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.seen: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.seen.append((module, name))
        return _Stand


def cpython_globals(data: bytes) -> list[tuple[str, str]]:
    """What CPython's unpickler asks find_class for, before it stops."""
    unpickler = RecordingUnpickler(data)
    with contextlib.suppress(Exception):  # the stream may be broken on purpose
        unpickler.load()
    return unpickler.seen


def globals_of(data: bytes) -> list[tuple[str, str]]:
    return [(g.module, g.name) for g in analyze_pickle(data).globals]


MEMO_TABLE = [
    pytest.param(
        p4(su("os") + b"q\x00" + su("system") + b"q\x01" + su("a") + MEMOIZE + su("b") + MEMOIZE
           + POP * 4 + b"h\x00h\x01" + STACK_GLOBAL + const(("x",)) + b"R"),
        [("os", "system")], id="binput-then-memoize-appends-after-count",
    ),
    pytest.param(
        p4(su("x") + b"q\x05" + su("torch") + MEMOIZE + POP + POP + su("os") + b"q\x01" + POP
           + b"h\x01" + su("system") + STACK_GLOBAL),
        [("os", "system")], id="memoize-index-is-entry-count-not-max-key",
    ),
    pytest.param(
        p4(su("collections") + b"r\x00\x00\x01\x00" + su("OrderedDict") + b"q\x07" + POP + POP
           + b"j\x00\x00\x01\x00h\x07" + STACK_GLOBAL),
        [("collections", "OrderedDict")], id="long-binput-long-binget",
    ),
    pytest.param(
        b"(Vos\np0\nVsystem\np1\n0\x80\x04g0\ng1\n" + STACK_GLOBAL + b".",
        [("os", "system")], id="text-put-get-feeding-stack-global",
    ),
    pytest.param(
        p4(su("posix") + MEMOIZE + su("nt") + b"q\x00" + POP + POP + b"h\x00" + su("system") + STACK_GLOBAL),
        [("nt", "system")], id="put-overwrites-memoized-slot",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("data", "expected"), MEMO_TABLE)
def test_memo_semantics_match_cpython(data: bytes, expected: list[tuple[str, str]]) -> None:
    assert globals_of(data) == expected
    assert cpython_globals(data) == expected
    assert analyze_pickle(data).malformed is None


def test_get_of_a_missing_key_is_malformed_after_the_payload() -> None:
    data = p4(call(sg("os", "system"), "x") + b"h\x09")
    found = analyze_pickle(data)
    assert found.malformed is not None
    assert "memo" in found.malformed
    assert [g.name for g in found.globals] == ["system"]
    assert len(found.calls) == 1


def test_pop_removes_a_mark_when_the_top_is_a_mark() -> None:
    # MARK, POP (removes the mark), then TUPLE has no mark: CPython fails there.
    data = b"\x80\x04N(0t."
    assert analyze_pickle(data).malformed is not None
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)


def test_items_below_a_mark_are_out_of_reach() -> None:
    data = b"\x80\x04N(R."
    found = analyze_pickle(data)
    assert found.malformed == "unpickling stack underflow"


def test_popped_call_results_are_marked_discarded() -> None:
    found = analyze_pickle(p4(call(sg("os", "system"), "x") + POP + b"N"))
    assert found.calls[0].result_discarded
    kept = analyze_pickle(p4(call(sg("os", "system"), "x")))
    assert not kept.calls[0].result_discarded


def test_compat_mapping_applies_below_protocol_3_only() -> None:
    assert globals_of(b"c__builtin__\nset\n)R.") == [("builtins", "set")]
    assert globals_of(b"\x80\x02c__builtin__\nset\n)R.") == [("builtins", "set")]
    assert globals_of(b"\x80\x03c__builtin__\nset\n)R.") == [("__builtin__", "set")]
    assert globals_of(b"\x80\x02ccopy_reg\n_reconstructor\n.") == [("copyreg", "_reconstructor")]


def test_dotted_names_are_kept_whole() -> None:
    assert globals_of(p4(sg("torch", "_utils.os.system"))) == [("torch", "_utils.os.system")]


def test_persistent_ids_and_buffers_are_recorded() -> None:
    data = b"\x80\x05" + const(("storage", "0", 4)) + b"Q" + b"\x97\x98" + b"\x85."
    found = analyze_pickle(data)
    assert found.persistent_ids[0].value == ("storage", "0", 4)
    assert found.out_of_band_buffers == 1
    assert found.calls == ()


def test_large_constants_are_not_copied_and_nested_pickles_are_found() -> None:
    inner = p4(call(sg("os", "system"), "x"))
    data = b"\x80\x04\x8e" + len(inner).to_bytes(8, "little") + inner + b"."
    found = analyze_pickle(data)
    assert found.nested == ((11, len(inner)),)
    assert found.nested_analyses[0][1].globals[0].dotted == "os.system"


def test_analyze_stream_reports_each_pickle_and_trailing_junk() -> None:
    data = b"\x80\x04N." + p4(b"N") + b"\xff\xfe\xfd"
    found = analyze_stream(data)
    assert [a.start for a in found] == [0, 4]
    assert found[-1].trailing == 3


def test_protocol_0_text_forms_parse() -> None:
    data = b"(lp0\nI1\naL2L\naF1.5\naS'a\\x41'\naVb\\u00e9\naI01\na."
    found = analyze_pickle(data)
    assert found.malformed is None
    assert found.opcodes > 10
    assert pickle.loads(data) == [1, 2, 1.5, "aA", "bé", True]


@pytest.mark.parametrize(
    ("limits", "which"),
    [
        (PickleLimits(max_opcodes=10), "max_opcodes"),
        (PickleLimits(max_memo=3), "max_memo"),
        (PickleLimits(max_stack=5), "max_stack"),
        (PickleLimits(max_bytes=8), "max_bytes"),
    ],
)
def test_limits_end_the_analysis_with_the_payload_reported(limits: PickleLimits, which: str) -> None:
    data = p4(call(sg("os", "system"), "x") + (b"N\x94" * 20) + b"0" * 20)
    found = analyze_pickle(data, limits=limits)
    assert found.limit_hit == which


def test_a_long_pickle_stops_at_the_time_bound_with_the_payload_reported() -> None:
    # 400,000 opcodes: several clock checks; with no time allowed the first check ends it.
    data = p4(call(sg("os", "system"), "x") + b"N0" * 200_000)
    found = analyze_pickle(data, limits=PickleLimits(max_seconds=0.0))
    assert found.limit_hit == "max_seconds"
    assert 65_536 <= found.opcodes < 200_000
    assert [g.name for g in found.globals] == ["system"]
    assert analyze_pickle(data, limits=PickleLimits(max_seconds=None)).limit_hit is None
