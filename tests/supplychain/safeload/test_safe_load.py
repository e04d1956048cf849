"""``garrison.safe_load``: scan first, refuse on findings, load through the restricted unpickler."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import garrison
from garrison.core.config import Settings
from garrison.core.errors import (
    ConfigError,
    InputError,
    MissingExtraError,
    UnsupportedFormatError,
    UsageError,
)
from garrison.loading import safe_load, safe_load_result
from garrison.supplychain.safeload import LoadRefusedError
from tests.fixtures_gen import torchscript_zip
from tests.supplychain.malicious import Sample, call, p4, sg
from tests.supplychain.safeload.conftest import EXTENSIONS
from tests.supplychain.safeload.helpers import same
from tests.supplychain.safeload.test_unpickler import PAYLOAD_NEVER_REACHED

Write = Callable[[str, bytes], Path]
SCANNER_OFF = Settings(ignore=("GAR-PKL", "GAR-PT", "GAR-FMT"))
"""The pickle, PyTorch and inventory rules switched off: only the restricted unpickler stands."""


def torch_zip(data_pkl: bytes) -> bytes:
    """A well-formed PyTorch zip checkpoint whose data.pkl is ``data_pkl``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


def test_every_malicious_sample_is_refused_with_its_rules(
    malicious: list[Sample], canary: Path, write: Write
) -> None:
    wrong: dict[str, str] = {}
    named: dict[str, tuple[tuple[str, ...], str]] = {}
    for sample in malicious:
        path = write(f"{sample.name}.pkl", sample.data)
        try:
            safe_load(path)
        except LoadRefusedError as refused:
            if not sample.expected_rules <= set(refused.rule_ids):
                wrong[sample.name] = (
                    f"refused with {refused.rule_ids}, expected {sorted(sample.expected_rules)}"
                )
            if sample.name in ("denylist-gap-os-system", "memo-put-vs-memoize"):
                named[sample.name] = (refused.refused_globals, refused.message)
        else:
            wrong[sample.name] = "loaded"
    assert wrong == {}
    assert len(named) == 2
    for name, (globals_named, message) in named.items():
        assert "os.system" in globals_named
        assert "os.system" in message
        assert f"{name}.pkl" in message
    assert not canary.exists(), "a payload ran"


def test_every_malicious_sample_in_a_torch_checkpoint_is_refused(
    malicious: list[Sample], canary: Path, write: Write
) -> None:
    loaded = []
    for sample in malicious:
        path = write(f"{sample.name}.pt", torch_zip(sample.data))
        try:
            safe_load(path)
        except LoadRefusedError:
            continue
        loaded.append(sample.name)
    assert loaded == []
    assert not canary.exists(), "a payload ran"


def test_with_the_scanner_switched_off_the_unpickler_still_refuses(
    malicious: list[Sample], canary: Path, write: Write
) -> None:
    by_unpickler = 0
    for sample in malicious:
        if sample.name in PAYLOAD_NEVER_REACHED:
            continue
        for name, data in (
            (f"{sample.name}.pkl", sample.data),
            (f"{sample.name}.pt", torch_zip(sample.data)),
        ):
            with pytest.raises(LoadRefusedError) as info:
                safe_load(write(name, data), settings=SCANNER_OFF)
            if not info.value.findings and "restricted unpickler" in info.value.reason:
                by_unpickler += 1
    assert by_unpickler >= 2 * 60
    assert not canary.exists(), "a payload ran"


def test_a_second_stream_after_the_pickle_is_refused_even_without_the_scanner(write: Write) -> None:
    path = write("two.pkl", pickle.dumps([1]) + p4(call(sg("os", "system"), "true")))
    with pytest.raises(LoadRefusedError, match="data follows the end"):
        safe_load(path, settings=SCANNER_OFF)


def test_every_benign_sample_loads_and_equals_the_original(benign: list[Sample], write: Write) -> None:
    import joblib
    import torch

    differences: dict[str, list[str]] = {}
    for sample in benign:
        path = write(f"{sample.name}{EXTENSIONS[sample.format]}", sample.data)
        if sample.format == "joblib":
            original = joblib.load(path)
        elif sample.format.startswith("pytorch"):
            original = torch.load(io.BytesIO(sample.data), weights_only=False)
        else:
            original = pickle.loads(sample.data)  # the benign generator's own, trusted output
        found = same(safe_load(path), original)
        if found:
            differences[sample.name] = found[:3]
    assert differences == {}
    assert {s.format for s in benign} == {"pickle", "joblib", "pytorch-zip", "pytorch-legacy"}
    assert len(benign) >= 40


def _net_class() -> type:
    """The user's own model class (imported only when torch is installed)."""
    pytest.importorskip("torch")
    from tests.supplychain.safeload.models import TinyNet

    return TinyNet


@pytest.mark.parametrize("legacy", [False, True])
def test_a_torch_state_dict_loads(legacy: bool, write: Write) -> None:
    torch = pytest.importorskip("torch")
    net = _net_class()()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf, _use_new_zipfile_serialization=not legacy)
    result = safe_load_result(write("weights.pt", buf.getvalue()))
    assert result.format == ("pytorch-legacy" if legacy else "pytorch-zip")
    assert result.digest == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    assert same(result.value, net.state_dict()) == []


@pytest.mark.parametrize("legacy", [False, True])
def test_a_whole_torch_module_is_refused_unless_its_class_is_allowed(legacy: bool, write: Write) -> None:
    torch = pytest.importorskip("torch")
    cls = _net_class()
    net = cls()
    buf = io.BytesIO()
    torch.save(net, buf, _use_new_zipfile_serialization=not legacy)
    path = write("model.pt", buf.getvalue())
    name = f"{cls.__module__}.{cls.__qualname__}"
    with pytest.raises(LoadRefusedError) as info:
        safe_load(path)
    assert info.value.rule_ids == ("GAR-PKL-002",)
    assert info.value.refused_globals == (name,)
    assert f"--allow {name}" in (info.value.hint or "")
    with pytest.raises(LoadRefusedError) as unscanned:
        safe_load(path, settings=SCANNER_OFF)
    assert unscanned.value.refused_globals == (name,)
    loaded = safe_load(path, allow=[name])
    assert isinstance(loaded, cls)
    assert same(loaded.state_dict(), net.state_dict()) == []


def test_allowing_a_class_does_not_waive_other_findings(write: Write, canary: Path) -> None:
    cls = _net_class()
    payload = p4(call(sg("os", "system"), f"touch {canary}"))
    with pytest.raises(LoadRefusedError) as info:
        safe_load(write("evil.pkl", payload), allow=[f"{cls.__module__}.{cls.__qualname__}"])
    assert "GAR-PKL-001" in info.value.rule_ids
    with pytest.raises(ConfigError, match="cannot be trusted"):
        safe_load(write("evil2.pkl", payload), allow=["os.system"])
    assert not canary.exists()


def test_a_required_signature_without_a_verifier_refuses(write: Write) -> None:
    with pytest.raises(LoadRefusedError, match="no trusted key or certificate is configured"):
        safe_load(write("ok.pkl", pickle.dumps([1])), require_signature=True)


def test_the_verifier_runs_first_and_sees_the_digest_of_the_loaded_bytes(write: Write) -> None:
    data = pickle.dumps({"a": 1})
    path = write("ok.pkl", data)
    seen: list[tuple[Path, str]] = []

    def verifier(p: Path, digest: str) -> None:
        seen.append((p, digest))

    result = safe_load_result(path, require_signature=True, verifier=verifier)
    assert result.value == {"a": 1}
    assert result.signature_verified
    assert seen == [(path.resolve(), "sha256:" + hashlib.sha256(data).hexdigest())]

    def rejecting(p: Path, digest: str) -> None:
        raise ValueError("no signature for this digest")

    evil = write("evil.pkl", p4(call(sg("os", "system"), "true")))
    with pytest.raises(LoadRefusedError, match="signature verification failed: ValueError") as info:
        safe_load(evil, require_signature=True, verifier=rejecting)
    assert info.value.findings == ()  # refused before the scan ran
    with pytest.raises(LoadRefusedError, match="signature verification failed"):
        safe_load(path, verifier=rejecting)  # a verifier given is a verifier used


def test_a_file_swapped_after_it_was_opened_is_refused(write: Write, canary: Path) -> None:
    evil = p4(call(sg("os", "system"), f"touch {canary}"))
    path = write("model.pkl", evil)

    def swap(p: Path, digest: str) -> None:  # an attacker who replaces the file mid-load
        benign = p.with_name("benign.tmp")
        benign.write_bytes(pickle.dumps([1, 2, 3]))
        os.replace(benign, p)

    with pytest.raises(LoadRefusedError, match="changed while it was being checked"):
        safe_load(path, require_signature=True, verifier=swap)
    assert not canary.exists()


def test_an_incomplete_scan_refuses(write: Write) -> None:
    path = write("big.pkl", pickle.dumps(list(range(100))))
    with pytest.raises(LoadRefusedError, match="incomplete"):
        safe_load(path, settings=Settings(max_file_bytes=10))


def test_paths_that_are_not_one_regular_file_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        safe_load(tmp_path / "missing.pt")
    with pytest.raises(UsageError, match="not a regular file"):
        safe_load(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.pkl"
        os.mkfifo(fifo)
        with pytest.raises(UsageError, match="not a regular file"):
            safe_load(fifo)


def test_a_link_is_followed_to_the_file(write: Write) -> None:
    target = write("real.pkl", pickle.dumps({"x": 1}))
    link = target.with_name("link.pkl")
    link.symlink_to(target)
    assert safe_load(link) == {"x": 1}


def test_formats_without_a_safe_loader_are_unsupported(write: Write) -> None:
    with pytest.raises(UnsupportedFormatError, match="TorchScript") as info:
        safe_load(write("scripted.pt", torchscript_zip()))
    assert "state_dict" in (info.value.hint or "")
    with pytest.raises(UnsupportedFormatError, match="safe loading handles") as text:
        safe_load(write("notes.txt", b"just some text\n"))
    assert "pytorch-zip" in text.value.message


def test_a_real_torchscript_archive_is_unsupported(write: Write) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    with pytest.raises(UnsupportedFormatError, match="TorchScript"):
        safe_load(write("scripted.pt", buf.getvalue()))


def test_a_missing_torch_is_a_missing_extra(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buf)
    path = write("w.pt", buf.getvalue())
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError) as info:
        safe_load(path)
    assert info.value.extra == "torch"


def test_a_class_whose_module_is_missing_is_an_input_error(write: Write) -> None:
    data = p4(call(sg("garrison_no_such_module", "Model"), 1))
    with pytest.raises(InputError, match="garrison_no_such_module"):
        safe_load(write("m.pkl", data), allow=["garrison_no_such_module.Model"])


def test_garrison_safe_load_is_the_top_level_name_and_imported_lazily() -> None:
    assert garrison.safe_load is safe_load
    code = (
        "import sys, garrison\n"
        "assert 'garrison.supplychain.safeload' not in sys.modules\n"
        "assert callable(garrison.safe_load)\n"
        "assert 'garrison.supplychain.safeload' in sys.modules\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        _ = garrison.no_such_name  # type: ignore[attr-defined]


def test_a_file_over_the_scan_digest_limit_still_loads_and_is_hashed(tmp_path: Path) -> None:
    data = {"weights": list(range(1000))}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(data))
    result = safe_load_result(path, settings=Settings(store=False, digest_max_bytes=1))
    assert result.value == data
    assert result.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_policy_can_require_a_signature(tmp_path: Path) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps([1]))
    with pytest.raises(LoadRefusedError, match="no trusted key or certificate is configured"):
        safe_load(path, settings=Settings(require_signature=True))
    seen: list[str] = []
    assert safe_load(
        path, settings=Settings(require_signature=True), verifier=lambda p, d: seen.append(d)
    ) == [1]
    assert seen == ["sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()]
