"""Manifests: digests, shards, determinism, ignores, links, comparison."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import InputError, MissingExtraError, UsageError
from garrison.integrity import manifest as mf
from garrison.integrity.manifest import DEFAULT_IGNORES, Manifest, ProblemKind, build_manifest
from garrison.integrity.manifest_diff import compare, render_diff


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


SAMPLE = {
    "config.json": b'{"a": 1}',
    "weights/part-0.bin": bytes(range(256)) * 40,
    "weights/part-1.bin": b"x" * 10_000,
    "a.b": b"dot",
    "a/b": b"slash",
    "empty": b"",
}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return _tree(tmp_path / "model", SAMPLE)


def _digests(m: Manifest) -> dict[str, str]:
    return {e.resource_name: e.digest for e in m.entries}


# ---------------------------------------------------------------- digests


def test_file_digests_equal_hashlib(model: Path) -> None:
    result = build_manifest(model)
    m = result.manifest
    assert result.problems == ()
    assert m.mode == "files"
    assert m.shard_size is None
    assert m.name == "model"
    assert _digests(m) == {rel: hashlib.sha256(data).hexdigest() for rel, data in SAMPLE.items()}
    assert {e.path: e.size for e in m.entries} == {rel: len(d) for rel, d in SAMPLE.items()}
    assert all(e.start is None and e.end is None for e in m.entries)


def test_blake3_digests_equal_blake3(model: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    m = build_manifest(model, algorithm="blake3").manifest
    assert m.algorithm == "blake3"
    assert _digests(m) == {rel: blake3.blake3(data).hexdigest() for rel, data in SAMPLE.items()}


def test_blake3_missing_names_the_extra(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "blake3", None)
    with pytest.raises(MissingExtraError) as info:
        build_manifest(model, algorithm="blake3")
    assert info.value.extra == "blake3"


def test_large_file_read_in_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mf, "_CHUNK", 1000)
    monkeypatch.setattr(mf, "_local", type(mf._local)())
    data = os.urandom(12_345)
    root = _tree(tmp_path / "m", {"big": data})
    assert _digests(build_manifest(root, workers=3).manifest) == {"big": hashlib.sha256(data).hexdigest()}
    m = build_manifest(root, shard_size=4096, workers=3).manifest
    assert _digests(m)["big:8192:12288"] == hashlib.sha256(data[8192:12288]).hexdigest()


@pytest.mark.parametrize("shard_size", [1, 7, 4096, 10_000, 1 << 30])
def test_shard_digests_equal_ranges(model: Path, shard_size: int) -> None:
    m = build_manifest(model, shard_size=shard_size).manifest
    assert m.mode == "shards"
    assert m.shard_size == shard_size
    expected: dict[str, str] = {}
    for rel, data in SAMPLE.items():
        if not data:
            expected[f"{rel}:0:0"] = hashlib.sha256(b"").hexdigest()
        for start in range(0, len(data), shard_size):
            end = min(start + shard_size, len(data))
            expected[f"{rel}:{start}:{end}"] = hashlib.sha256(data[start:end]).hexdigest()
    assert _digests(m) == expected
    assert m.file_sizes() == {rel: len(d) for rel, d in SAMPLE.items()}


def test_bad_arguments(model: Path) -> None:
    with pytest.raises(UsageError):
        build_manifest(model, shard_size=0)
    with pytest.raises(UsageError):
        build_manifest(model, algorithm="md5")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        build_manifest(model / "missing")


# ---------------------------------------------------------------- order and determinism


def test_entries_ordered_like_model_signing(model: Path) -> None:
    m = build_manifest(model, shard_size=4096).manifest
    names = [e.resource_name for e in m.entries]
    # path components first ("a/b" before "a.b"), then numeric start
    assert names.index("a/b:0:5") < names.index("a.b:0:3")
    parts = [n for n in names if n.startswith("weights/part-0.bin")]
    assert parts == [
        "weights/part-0.bin:0:4096",
        "weights/part-0.bin:4096:8192",
        "weights/part-0.bin:8192:10240",
    ]


@pytest.mark.parametrize("shard_size", [None, 333])
def test_independent_of_worker_count(model: Path, shard_size: int | None) -> None:
    digests = {
        build_manifest(model, shard_size=shard_size, workers=w).manifest.digest() for w in (1, 2, 3, 8)
    }
    assert len(digests) == 1


def test_independent_of_listing_order(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = build_manifest(model).manifest
    real_scandir = os.scandir

    class Reversed:
        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> list[os.DirEntry[str]]:
            return list(reversed(list(self._it)))

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr(mf.os, "scandir", Reversed)
    assert build_manifest(model).manifest == before


def test_independent_of_root_name_and_location(model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(model, copy)
    a, b = build_manifest(model).manifest, build_manifest(copy).manifest
    assert a.entries == b.entries
    assert a.root_digest() == b.root_digest()
    assert b.name == "renamed"


def test_round_trip_and_canonical_json(model: Path) -> None:
    m = build_manifest(model, shard_size=1000, ignore=["*.tmp"]).manifest
    again = Manifest.from_dict(m.to_dict())
    assert again == m
    assert again.to_json() == m.to_json()
    assert m.digest() == hashlib.sha256(m.to_json()).hexdigest()
    assert b" " not in m.to_json().replace(b'{"a": 1}', b"")
    with pytest.raises(InputError):
        Manifest.from_dict({**m.to_dict(), "format": "other/9"})
    with pytest.raises(InputError):
        Manifest.from_dict({"format": mf.FORMAT})


# Recorded with model-signing 1.1.1 (``model_signing.hashing.Config().hash(...)`` and the in-toto
# payload it signs) over the tree built by ``_interop_tree``: the subject digest, the resource names
# and the serialization block. A regression here breaks signatures made by the other tool.
MS_ROOT = {
    "files": "b8aeb995880235cc534b2c3d85e7782e8d65961ef802706bbfa36ab01f680a7d",
    "shards": "90e6db8c68647dff1face18fc52e074b4016299c1871c594081df43a98089391",
    "blake3": "66a4692cbbbe2c730e13234eabc4d96e173b3551521aa2a170253df1135098cd",
    "single": "03c3f501cfcb4cc5cd6c10162bea6482a59536ce6055eca0d23ffc9b749ab7db",
    "ignored": "2733f2441dcee31e0e85cbec5af8418929385aa4b7c7395a8c83872199c8d9c6",
}


def _interop_tree(root: Path) -> Path:
    files = {"a.b": b"dot", "a/b": b"slash", "w/big.bin": bytes(range(256)) * 1000, "empty": b""}
    return _tree(root, {**files, ".gitignore": b"x", ".git/HEAD": b"ref\n"})


def test_matches_model_signing_files_mode(tmp_path: Path) -> None:
    m = build_manifest(_interop_tree(tmp_path / "m")).manifest
    assert [r["name"] for r in m.resources()] == ["a/b", "a.b", "empty", "w/big.bin"]
    assert m.root_digest() == MS_ROOT["files"]
    assert m.serialization_parameters() == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": sorted(DEFAULT_IGNORES),
    }


def test_matches_model_signing_shards_mode(tmp_path: Path) -> None:
    m = build_manifest(_interop_tree(tmp_path / "m"), shard_size=100_000).manifest
    assert [r["name"] for r in m.resources()] == [
        "a/b:0:5",
        "a.b:0:3",
        "w/big.bin:0:100000",
        "w/big.bin:100000:200000",
        "w/big.bin:200000:256000",
    ]  # no shard for "empty", as in model-signing
    assert "empty" in {e.path for e in m.entries}  # but we keep it, for compare()
    assert m.root_digest() == MS_ROOT["shards"]
    assert m.serialization_parameters()["shard_size"] == 100_000
    assert m.serialization_parameters()["method"] == "shards"


def test_matches_model_signing_blake3_ignores_and_single_file(tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    root = _interop_tree(tmp_path / "m")
    assert build_manifest(root, algorithm="blake3").manifest.root_digest() == MS_ROOT["blake3"]
    ignored = build_manifest(root, ignore=["w"]).manifest
    assert ignored.root_digest() == MS_ROOT["ignored"]
    assert ignored.serialization_parameters()["ignore_paths"] == sorted([*DEFAULT_IGNORES, "w"])
    single = tmp_path / "single"
    single.write_bytes(b"single")
    m = build_manifest(single).manifest
    assert m.single_file
    assert [r["name"] for r in m.resources()] == ["."]
    assert m.root_digest() == MS_ROOT["single"]
    assert (
        "ignore_paths" not in build_manifest(root, default_ignores=False).manifest.serialization_parameters()
    )


# ---------------------------------------------------------------- ignores and edge cases


def test_default_ignores(model: Path) -> None:
    _tree(model, {".git/HEAD": b"ref", ".gitattributes": b"*", ".github/ci.yml": b"on", ".gitignore": b"x"})
    _tree(model, {"sub/.gitignore": b"nested, not ignored (model-signing ignores the root's only)"})
    m = build_manifest(model).manifest
    paths = {e.path for e in m.entries}
    assert paths == {*SAMPLE, "sub/.gitignore"}
    assert set(DEFAULT_IGNORES) <= set(m.ignore)
    kept = build_manifest(model, default_ignores=False).manifest
    assert {".git/HEAD", ".gitattributes", ".github/ci.yml", ".gitignore"} <= {e.path for e in kept.entries}


def test_user_ignore_patterns(model: Path) -> None:
    _tree(model, {"model.sig": b"sig", "logs/x.tmp": b"t", "logs/keep.txt": b"k"})
    m = build_manifest(model, ignore=["model.sig", "weights", "*.tmp"]).manifest
    paths = {e.path for e in m.entries}
    assert "model.sig" not in paths
    assert not any(p.startswith("weights/") for p in paths)
    assert "logs/x.tmp" not in paths
    assert "logs/keep.txt" in paths
    assert "model.sig" in m.ignore


def test_ignore_paths_are_literal_too_and_normalized(model: Path) -> None:
    _tree(model, {"data[1].bin": b"1", "data1.bin": b"other", "logs/x": b"x"})
    m = build_manifest(model, ignore=["data[1].bin", "./logs/"]).manifest
    paths = {e.path for e in m.entries}
    assert "data[1].bin" not in paths
    assert "data1.bin" not in paths  # "[1]" is also a character class
    assert "logs/x" not in paths
    assert "logs" in m.ignore


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "m" / "sub").mkdir(parents=True)
    result = build_manifest(tmp_path / "m")
    assert result.manifest.entries == ()
    assert result.problems == ()


def test_single_file_root(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"tensor bytes")
    m = build_manifest(f).manifest
    assert m.name == "model.safetensors"
    assert _digests(m) == {"model.safetensors": hashlib.sha256(b"tensor bytes").hexdigest()}
    f.write_bytes(b"")
    assert _digests(build_manifest(f, shard_size=8).manifest) == {
        "model.safetensors:0:0": hashlib.sha256(b"").hexdigest()
    }


# ---------------------------------------------------------------- links and special files


def _kinds(result: mf.ManifestResult) -> dict[str, ProblemKind]:
    return {p.path: p.kind for p in result.problems}


def test_symlinks_are_problems_and_never_followed(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"outside the tree")
    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    (outside_dir / "f").write_bytes(b"f")
    (model / "escape").symlink_to(outside)
    (model / "escape_rel").symlink_to("../secret")
    (model / "escape_dir").symlink_to(outside_dir)
    (model / "inside").symlink_to("config.json")
    (model / "to_dir").symlink_to("weights")
    (model / "loop").symlink_to(".")
    (model / "dangling").symlink_to("nope")
    result = build_manifest(model)
    assert _kinds(result) == {
        "escape": ProblemKind.SYMLINK_ESCAPES,
        "escape_rel": ProblemKind.SYMLINK_ESCAPES,
        "escape_dir": ProblemKind.SYMLINK_ESCAPES,
        "inside": ProblemKind.SYMLINK_NOT_ALLOWED,
        "to_dir": ProblemKind.SYMLINK_TO_DIRECTORY,
        "loop": ProblemKind.SYMLINK_TO_DIRECTORY,
        "dangling": ProblemKind.DANGLING_SYMLINK,
    }
    assert {e.path for e in result.manifest.entries} == set(SAMPLE)


def test_allow_symlinks_hashes_inside_links_only(model: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    (model / "inside").symlink_to("weights/part-1.bin")
    (model / "escape").symlink_to(tmp_path / "secret")
    result = build_manifest(model, allow_symlinks=True)
    assert _digests(result.manifest)["inside"] == hashlib.sha256(SAMPLE["weights/part-1.bin"]).hexdigest()
    assert result.manifest.allow_symlinks is True
    assert _kinds(result) == {"escape": ProblemKind.SYMLINK_ESCAPES}


def test_outside_target_is_never_opened(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not read")
    (model / "escape").symlink_to(secret)
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, flags: int, *args: int) -> int:
        opened.append(os.path.realpath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(mf.os, "open", spy)
    for allow in (False, True):
        result = build_manifest(model, allow_symlinks=allow, workers=1)
        assert _kinds(result) == {"escape": ProblemKind.SYMLINK_ESCAPES}
    assert opened
    assert all(p.startswith(str(model.resolve())) for p in opened)


def test_open_failure_is_unreadable(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def deny(path: str, flags: int, *args: int) -> int:
        if path.endswith("part-1.bin"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(mf.os, "open", deny)
    for shard_size in (None, 1000):
        result = build_manifest(model, shard_size=shard_size)
        assert _kinds(result) == {"weights/part-1.bin": ProblemKind.UNREADABLE}
        assert "Permission denied" in result.problems[0].detail
        assert "weights/part-1.bin" not in {e.path for e in result.manifest.entries}


def test_fifo_is_a_special_file(model: Path) -> None:
    os.mkfifo(model / "pipe")
    result = build_manifest(model)
    assert _kinds(result) == {"pipe": ProblemKind.SPECIAL_FILE}


def test_names_that_are_not_utf8_are_problems_written_out(model: Path) -> None:
    os.mkdir(os.path.join(os.fsencode(model), b"dir\xfe"))
    with open(os.path.join(os.fsencode(model), b"dir\xfe", b"inner.bin"), "wb") as f:
        f.write(b"below a bad directory name: never listed")
    with open(os.path.join(os.fsencode(model), b"w\xff.bin"), "wb") as f:
        f.write(b"x")
    result = build_manifest(model)
    assert _kinds(result) == {"dir\\xfe": ProblemKind.NAME_NOT_UTF8, "w\\xff.bin": ProblemKind.NAME_NOT_UTF8}
    assert all("inner" not in e.path and "xff" not in e.path for e in result.manifest.entries)
    result.manifest.to_json()  # the rest still makes a manifest


# ---------------------------------------------------------------- compare


@pytest.mark.parametrize("shard_size", [None, 1000])
def test_compare_detects_every_kind_of_change(model: Path, shard_size: int | None) -> None:
    old = build_manifest(model, shard_size=shard_size).manifest
    assert compare(old, old).is_empty
    part0 = model / "weights/part-0.bin"
    data = bytearray(part0.read_bytes())
    data[2500] ^= 0xFF
    part0.write_bytes(bytes(data))  # flip one byte
    with (model / "config.json").open("ab") as f:
        f.write(b"\n")  # append
    (model / "weights/part-1.bin").write_bytes(SAMPLE["weights/part-1.bin"][:4000])  # truncate
    (model / "a.b").rename(model / "renamed")  # rename
    (model / "new.txt").write_bytes(b"new")  # add
    (model / "a/b").unlink()  # delete
    diff = compare(old, build_manifest(model, shard_size=shard_size).manifest)
    changed = {c.path: c for c in diff.changed}
    assert set(changed) == {"weights/part-0.bin", "config.json", "weights/part-1.bin"}
    assert diff.added == ("new.txt", "renamed")
    assert diff.removed == ("a/b", "a.b")
    assert diff.unchanged == 1  # "empty"
    assert (changed["config.json"].old_size, changed["config.json"].new_size) == (8, 9)
    assert changed["weights/part-1.bin"].new_size == 4000
    if shard_size:
        assert changed["weights/part-0.bin"].ranges == ((2000, 3000),)
        assert changed["weights/part-1.bin"].ranges == ((4000, 10_000),)  # 3000:4000 still the same
    else:
        assert changed["weights/part-0.bin"].ranges == ()
    text = render_diff(diff)
    assert "changed  config.json (8 → 9 bytes" in text
    assert "removed  a.b" in text
    assert "added    new.txt" in text
    assert text.endswith(diff.summary())
    if shard_size:
        assert "bytes 2,000–3,000" in text


def test_compare_refuses_different_settings(model: Path) -> None:
    with pytest.raises(UsageError):
        compare(build_manifest(model).manifest, build_manifest(model, shard_size=100).manifest)


def test_render_no_changes(model: Path) -> None:
    m = build_manifest(model).manifest
    assert render_diff(compare(m, m)) == f"no changes ({len(SAMPLE)} files unchanged)"


_names = st.text(alphabet="abcXY_.-0", min_size=1, max_size=6).filter(lambda s: s not in {".", ".."})
_trees = st.dictionaries(
    st.lists(_names, min_size=1, max_size=3).map("/".join), st.binary(max_size=300), min_size=1, max_size=6
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=_trees, data=st.data())
def test_mutating_one_file_changes_exactly_that_path(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], data: st.DataObject
) -> None:
    # drop paths that are a prefix directory of another path (a name cannot be both file and dir)
    files = {p: b for p, b in files.items() if not any(o.startswith(p + "/") for o in files)}
    files = {p: b for p, b in files.items() if not any(part.startswith(".git") for part in p.split("/"))}
    if not files:
        return
    root = _tree(tmp_path_factory.mktemp("h") / "m", files)
    shard_size = data.draw(st.sampled_from([None, 16]))
    old = build_manifest(root, shard_size=shard_size, workers=2).manifest
    target = data.draw(st.sampled_from(sorted(files)))
    content = files[target]
    new_content = data.draw(st.binary(max_size=300).filter(lambda b: b != content))
    (root / target).write_bytes(new_content)
    diff = compare(old, build_manifest(root, shard_size=shard_size, workers=2).manifest)
    assert [c.path for c in diff.changed] == [target]
    assert diff.added == diff.removed == ()
    assert diff.unchanged == len(files) - 1


@pytest.mark.parametrize("shard_size", [None, 1000])
def test_file_truncated_after_listing(
    model: Path, monkeypatch: pytest.MonkeyPatch, shard_size: int | None
) -> None:
    real_walk = mf._walk

    def walk_then_truncate(*args: object, **kwargs: object) -> object:
        listed = real_walk(*args, **kwargs)  # type: ignore[arg-type]
        (model / "weights/part-1.bin").write_bytes(b"short")
        return listed

    monkeypatch.setattr(mf, "_walk", walk_then_truncate)
    result = build_manifest(model, shard_size=shard_size)
    if shard_size is None:  # files mode hashes what is there when read
        assert _digests(result.manifest)["weights/part-1.bin"] == hashlib.sha256(b"short").hexdigest()
        assert result.problems == ()
    else:
        assert _kinds(result) == {"weights/part-1.bin": ProblemKind.CHANGED_WHILE_HASHING}
        assert "weights/part-1.bin" not in {e.path for e in result.manifest.entries}
