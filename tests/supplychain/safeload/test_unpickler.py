"""The restricted unpickler on its own: the second line of defence, without any scan."""

from __future__ import annotations

import collections
import contextlib
import copyreg
import datetime
import decimal
import io
import pickle
import sys
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError
from garrison.supplychain.safeload import (
    Gate,
    RefusedPickleError,
    RestrictedUnpickler,
    parse_trusted,
    restricted_loads,
)
from garrison.supplychain.safeload.unpickler import RestrictedPickleModule
from tests.supplychain.malicious import (
    BUILD,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    STOP,
    Sample,
    call,
    const,
    p4,
    sg,
)
from tests.supplychain.pickle.helpers import scan_bytes

PAYLOAD_NEVER_REACHED = {
    "second-pickle-in-stream": None,  # the first stream is `None`; the payload is a second stream
    "nested-pickle-in-bytes": bytes,  # the payload is an inert bytes constant nobody unpickles
}
"""Malicious samples whose first pickle stream holds no payload: loading it returns harmless data."""


class Trusted:
    """A class of the test's own, trusted by name in some tests."""

    def __init__(self, value: int) -> None:
        self.value = value


TRUSTED = f"{Trusted.__module__}.{Trusted.__qualname__}"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "_utils.os.system"),
        ("torch._utils", "os.system"),
        ("torch", "load"),
        ("collections", "OrderedDict.__init__.__globals__"),
        ("numpy", "load"),
        ("pickle", "loads"),
        ("__main__", "Anything"),
    ],
)
def test_find_class_refuses_globals_outside_the_allowlist(module: str, name: str) -> None:
    with pytest.raises(RefusedPickleError) as info:
        restricted_loads(p4(sg(module, name)))
    assert info.value.refusal.target == f"{module}.{name}"
    assert info.value.refusal.reason.startswith(("critical", "unknown"))


def test_a_refused_module_is_never_imported(capsys: pytest.CaptureFixture[str]) -> None:
    already = "this" in sys.modules
    with pytest.raises(RefusedPickleError):
        restricted_loads(p4(sg("this", "s")))  # importing `this` prints the Zen of Python
    assert already or "this" not in sys.modules
    assert "Beautiful is better" not in capsys.readouterr().out


def test_python_2_names_are_mapped_before_the_check_as_cpython_does() -> None:
    assert restricted_loads(b"\x80\x02c__builtin__\nset\n)R.") == set()
    with pytest.raises(RefusedPickleError) as info:
        restricted_loads(b"c__builtin__\neval\n(S'1'\ntR.")
    assert info.value.refusal.target == "builtins.eval"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips(protocol: int) -> None:
    data = {
        "list": [1, 2.5, "x", b"y", None, True],
        "set": {1, 2},
        "frozen": frozenset({3}),
        "ordered": collections.OrderedDict(k=1),
        "counter": collections.Counter("aab"),
        "when": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        "decimal": decimal.Decimal("1.5"),
        "complex": complex(1, 2),
        "bytearray": bytearray(b"zz"),
        "slice": slice(1, 5, 2),
    }
    assert restricted_loads(pickle.dumps(data, protocol=protocol)) == data


def test_the_unpickler_refuses_every_malicious_sample_without_any_scan(
    malicious: list[Sample], canary: Path
) -> None:
    not_refused: dict[str, object] = {}
    for sample in malicious:
        assert scan_bytes(sample.data), f"{sample.name}: the scanner would flag it; here it is not asked"
        try:
            value = restricted_loads(sample.data)
        except RefusedPickleError:
            continue
        not_refused[sample.name] = value
    assert set(not_refused) == set(PAYLOAD_NEVER_REACHED)
    assert not_refused["second-pickle-in-stream"] is None
    assert isinstance(not_refused["nested-pickle-in-bytes"], bytes)
    assert not canary.exists(), "a payload ran"
    assert len(malicious) >= 70


def test_build_on_an_allowlisted_global_is_refused(malicious: list[Sample]) -> None:
    sample = next(s for s in malicious if s.name == "build-on-allowlisted-global")
    with pytest.raises(RefusedPickleError) as info:
        restricted_loads(sample.data)
    assert "BUILD" in info.value.refusal.reason
    assert info.value.refusal.target == "collections.OrderedDict"


@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("SETITEMS", sg("collections", "OrderedDict") + MARK + const("k") + const(1) + b"u"),
        ("SETITEM", sg("collections", "OrderedDict") + const("k") + const(1) + b"s"),
        ("APPEND", sg("builtins", "list") + const(1) + b"a"),
        ("APPENDS", sg("builtins", "list") + MARK + const(1) + b"e"),
        ("ADDITEMS", sg("builtins", "set") + MARK + const(1) + b"\x90"),
    ],
)
def test_container_opcodes_never_modify_an_imported_global(label: str, body: bytes) -> None:
    with pytest.raises(RefusedPickleError) as info:
        restricted_loads(p4(body))
    assert label in info.value.refusal.reason


def test_build_on_a_fresh_object_of_an_allowed_class_still_works() -> None:
    data = pickle.dumps(collections.OrderedDict(a=1), protocol=4)
    assert restricted_loads(data) == collections.OrderedDict(a=1)
    assert (
        restricted_loads(p4(sg("collections", "OrderedDict") + EMPTY_TUPLE + NEWOBJ + const({}) + BUILD))
        == {}
    )


def test_ext_opcodes_are_refused_even_for_a_registered_allowed_global() -> None:
    copyreg.add_extension("collections", "OrderedDict", 0x7FFFFF01)
    try:
        with pytest.raises(RefusedPickleError) as info:
            restricted_loads(b"\x80\x02\x84\x01\xff\xff\x7f)R" + STOP)
    finally:
        copyreg.remove_extension("collections", "OrderedDict", 0x7FFFFF01)
    assert "EXT" in info.value.refusal.reason


def test_persistent_ids_are_refused() -> None:
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        restricted_loads(b"\x80\x02X\x01\x00\x00\x00aQ.")


def test_the_gate_records_refusals_even_when_the_exception_is_swallowed() -> None:
    gate = Gate()
    with contextlib.suppress(pickle.UnpicklingError):  # library code that swallows the refusal
        RestrictedUnpickler(io.BytesIO(p4(call(sg("os", "system"), "true"))), gate=gate).load()
    assert [r.target for r in gate.refusals] == ["os.system"]


def test_a_trusted_global_is_admitted_by_its_exact_name_only() -> None:
    data = pickle.dumps(Trusted(3), protocol=4)
    with pytest.raises(RefusedPickleError):
        restricted_loads(data)
    assert restricted_loads(data, allow=[TRUSTED]).value == 3
    module, _, name = TRUSTED.rpartition(".")
    head, _, tail = module.rpartition(".")
    dotted_elsewhere = p4(call(sg(head, f"{tail}.{name}"), 1))
    with pytest.raises(RefusedPickleError):
        restricted_loads(dotted_elsewhere, allow=[TRUSTED])
    with pytest.raises(RefusedPickleError):
        restricted_loads(p4(sg(module, f"{name}.__init__")), allow=[TRUSTED])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("os.system", "cannot be trusted"),
        ("builtins.eval", "cannot be trusted"),
        ("subprocess.Popen", "cannot be trusted"),
        ("torch.load", "cannot be trusted"),
        ("mypkg.Net.__reduce__", "dunder"),
        ("Net", "not a dotted name"),
        ("mypkg.models.", "not a dotted name"),
        ("my pkg.Net", "not a dotted name"),
    ],
)
def test_trusted_globals_are_validated(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_trusted([entry])


def test_a_gate_built_by_hand_still_refuses_critical_globals() -> None:
    gate = Gate(trusted=frozenset({("os", "system")}))
    with pytest.raises(RefusedPickleError):
        RestrictedUnpickler(io.BytesIO(p4(sg("os", "system"))), gate=gate).load()


def test_a_single_string_is_one_trusted_global() -> None:
    assert parse_trusted("mypkg.models.Net") == {("mypkg.models", "Net")}


def test_trusted_globals_accept_both_spellings() -> None:
    assert parse_trusted(["mypkg.models.Net", "mypkg.models:Outer.Inner", "__main__.Net"]) == {
        ("mypkg.models", "Net"),
        ("mypkg.models", "Outer.Inner"),
        ("__main__", "Net"),
    }


def test_torch_load_with_the_restricted_module_refuses_a_malicious_checkpoint(canary: Path) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    with pytest.raises(RefusedPickleError):
        torch.load(
            io.BytesIO(_swap_data_pkl(buf.getvalue(), p4(call(sg("os", "system"), f"touch {canary}")))),
            pickle_module=RestrictedPickleModule(Gate()),
            weights_only=False,
        )
    assert not canary.exists()
    buf.seek(0)
    loaded = torch.load(buf, pickle_module=RestrictedPickleModule(Gate()), weights_only=False)
    assert torch.equal(loaded["w"], torch.zeros(2))


def _swap_data_pkl(archive: bytes, data_pkl: bytes) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data_pkl if info.filename.endswith("/data.pkl") else src.read(info))
    return out.getvalue()
