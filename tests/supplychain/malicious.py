"""Generator of HARMLESS malicious pickle samples, and of benign model files, for scanner tests.

Every malicious sample is hand-assembled opcode bytes. Its payload is at most a call that would
create a canary file (``touch CANARY``, ``open(CANARY, 'w')``) or print a version: the tests pass a
canary path in a temporary directory and assert after scanning that it does not exist, which proves
nothing ran. Scanners must never load these samples; nothing in this module loads them either.

Shared with the other supply-chain helpers (containers, Keras, ONNX, ...): import
:func:`malicious_samples` and :func:`benign_samples` and extend them with your own families; keep
:class:`Sample`'s fields stable. Assembler helpers (:func:`sg`, :func:`call`, :func:`p4`, ...) are
public for the same reason.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import ipaddress
import pickle
import struct
import types
from dataclasses import dataclass, field
from pathlib import Path

PKL_CRITICAL = "GAR-PKL-001"
PKL_UNLISTED = "GAR-PKL-002"
PKL_DYNAMIC = "GAR-PKL-003"
PKL_NESTED = "GAR-PKL-004"
PKL_MALFORMED = "GAR-PKL-101"
PKL_MULTIPLE = "GAR-PKL-102"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One test file."""

    name: str
    """Unique, kebab-case."""
    data: bytes
    """The file's bytes."""
    expected_rules: frozenset[str]
    """Rule ids a scanner must raise (at least these); empty for benign samples."""
    technique: str
    """Technique family (``denylist-gap``, ``parser-differential``, ``benign``, ...)."""
    advisory: str = ""
    """GHSA or CVE id of the published bypass it reproduces, or ``''``."""
    format: str = "pickle"
    """Format id the file has (``pickle``, ``joblib``, ``pytorch-zip``, ``pytorch-legacy``)."""
    notes: str = field(default="")
    """What the sample does, in a sentence."""


# -- assembler -------------------------------------------------------------------------------------
MARK, STOP, TUPLE, REDUCE, BUILD, POP, EMPTY_DICT = b"(", b".", b"t", b"R", b"b", b"0", b"}"
STACK_GLOBAL, MEMOIZE, NEWOBJ, EMPTY_TUPLE, NONE = b"\x93", b"\x94", b"\x81", b")", b"N"


def su(text: str) -> bytes:
    """A str constant (SHORT_BINUNICODE or BINUNICODE)."""
    raw = text.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def sb(data: bytes) -> bytes:
    """A bytes constant (SHORT_BINBYTES or BINBYTES)."""
    if len(data) < 256:
        return b"C" + bytes([len(data)]) + data
    return b"B" + struct.pack("<I", len(data)) + data


def const(value: object) -> bytes:
    """A constant: str, bytes, int, None, empty dict, or a tuple of those."""
    if isinstance(value, str):
        return su(value)
    if isinstance(value, bytes):
        return sb(value)
    if value is None:
        return NONE
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if isinstance(value, dict):
        return EMPTY_DICT
    if isinstance(value, list):
        return b"]" + (MARK + b"".join(const(v) for v in value) + b"e" if value else b"")
    if isinstance(value, tuple):
        return MARK + b"".join(const(v) for v in value) + TUPLE
    raise TypeError(f"no constant for {value!r}")


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL of ``module.name`` (protocol 4)."""
    return su(module) + su(name) + STACK_GLOBAL


def g0(module: str, name: str) -> bytes:
    """GLOBAL of ``module.name`` (protocol 0 text form)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(func: bytes, *args: object) -> bytes:
    """``func(*args)`` with REDUCE."""
    return func + const(tuple(args)) + REDUCE


def p4(body: bytes) -> bytes:
    """A protocol 4 pickle around ``body``."""
    return b"\x80\x04" + body + STOP


def _gadget(module: str, name: str, *args: object) -> bytes:
    return p4(call(sg(module, name), *args))


# -- malicious samples -----------------------------------------------------------------------------
def _denylist_gaps(canary: Path) -> list[Sample]:
    touch = f"touch {canary}"
    code = f"open({str(canary)!r}, 'w').close()"
    c = str(canary)
    table: list[tuple[str, str, str, tuple[object, ...], str]] = [
        ("os", "system", "os-system", (touch,), ""),
        ("posix", "system", "posix-system", (touch,), ""),
        ("subprocess", "Popen", "subprocess-popen", ([ "touch", c],), ""),
        ("builtins", "exec", "builtins-exec", (code,), ""),
        ("builtins", "eval", "builtins-eval", (code,), ""),
        ("pip", "main", "pip-main", (["--version"],), "CVE-2025-1716"),
        ("ensurepip", "_run_pip", "ensurepip-run-pip", (["--version"],), "GHSA-xp4f-hrf8-rxw7"),
        ("timeit", "timeit", "timeit-timeit", (code,), "GHSA-v7x6-rv5q-mhwc"),
        ("cProfile", "runctx", "cprofile-runctx", (code, {}, {}), "GHSA-9w88-8rmg-7g2p"),
        ("profile", "Profile.run", "profile-profile-run", (code,), "GHSA-x696-vm39-cp64"),
        ("profile", "Profile.runctx", "profile-profile-runctx", (code, {}, {}), "GHSA-6vqj-c2q5-j97w"),
        ("trace", "Trace.run", "trace-trace-run", (code,), "GHSA-5qwp-399c-mjwf"),
        ("trace", "Trace.runctx", "trace-trace-runctx", (code, {}, {}), "GHSA-g344-hcph-8vgg"),
        ("pydoc", "locate", "pydoc-locate", ("os.system",), ""),
        ("pkgutil", "resolve_name", "pkgutil-resolve-name", ("os:system",), "GHSA-vvpj-8cmc-gx39"),
        ("importlib", "import_module", "importlib-import-module", ("os",), ""),
        ("operator", "methodcaller", "operator-methodcaller", ("system", touch), ""),
        ("_operator", "attrgetter", "operator-attrgetter", ("system",), "GHSA-955r-x9j8-7rhh"),
        ("_operator", "methodcaller", "operator-methodcaller-c", ("system", touch), "GHSA-46h3-79wf-xr6c"),
        ("marshal", "loads", "marshal-loads", (b"\xe3",), ""),
        ("types", "FunctionType", "types-functiontype", (None, {}), ""),
        ("types", "CodeType", "types-codetype", (0,), ""),
        ("idlelib.run", "Executive.runcode", "idlelib-executive-runcode", (code,), "GHSA-m869-42cg-3xwr"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode", "idlelib-pyshell-runcode", (code,),
         "GHSA-3gf5-cxq9-w223"),
        ("idlelib.autocomplete", "AutoComplete.get_entity", "idlelib-autocomplete-get-entity", (code,),
         "GHSA-6w4w-5w54-rjvr"),
        ("idlelib.debugobj", "ObjectTreeItem", "idlelib-objecttreeitem", ("x", None, None),
         "GHSA-3vg9-h568-4w9m"),
        ("code", "InteractiveInterpreter.runcode", "code-interactive-runcode", (code,), ""),
        ("doctest", "debug_script", "doctest-debug-script", (code,), "GHSA-fqq6-7vqf-w3fg"),
        ("lib2to3.pgen2.grammar", "Grammar.loads", "lib2to3-grammar-loads", (b"",), "GHSA-f54q-57x4-jg88"),
        ("lib2to3.pgen2.pgen", "ParserGenerator.make_label", "lib2to3-make-label", (None, code),
         "GHSA-p9w7-82w4-7q8m"),
        ("runpy", "run_path", "runpy-run-path", (c,), ""),
        ("ctypes", "CDLL", "ctypes-cdll", (c,), ""),
        ("pty", "spawn", "pty-spawn", (["touch", c],), ""),
        ("_posixsubprocess", "fork_exec", "posixsubprocess-fork-exec", (["touch", c],), ""),
        ("asyncio.unix_events", "_UnixSubprocessTransport", "asyncio-subprocess-transport", (None,), ""),
        ("multiprocessing.util", "spawnv_passfds", "multiprocessing-spawnv-passfds", (c, [c], ()), ""),
        ("distutils.file_util", "write_file", "distutils-write-file", (c, ["x"]), ""),
        ("shutil", "copyfile", "shutil-copyfile", ("/dev/null", c), ""),
        ("_io", "FileIO", "io-fileio", (c, "w"), ""),
        ("logging", "FileHandler", "logging-filehandler", (c,), "CVE-2026-56304"),
        ("site", "addsitedir", "site-addsitedir", (c,), ""),
        ("urllib.request", "urlopen", "urllib-urlopen", ("http://127.0.0.1:9/x",), ""),
        ("webbrowser", "open", "webbrowser-open", ("http://127.0.0.1:9/x",), ""),
        ("pandas", "read_csv", "pandas-read-csv", ("http://127.0.0.1:9/x",), ""),
        ("numpy.f2py.f2py2e", "run_main", "numpy-f2py-run-main", (["-h"],), ""),
        ("numpy.testing._private.utils", "runstring", "numpy-testing-runstring", (code, {}), ""),
        ("uuid", "_get_command_stdout", "uuid-get-command-stdout", ("touch", c), "CVE-2026-56315"),
        ("_osx_support", "_read_output", "osx-support-read-output", (touch,), "CVE-2026-56315"),
        ("_aix_support", "_read_cmd_output", "aix-support-read-cmd-output", (touch,), "CVE-2026-56315"),
        ("imaplib", "IMAP4_stream", "imaplib-imap4-stream", (touch,), "CVE-2026-56315"),
        ("_pyrepl.pager", "pipe_pager", "pyrepl-pipe-pager", ("x", touch), "CVE-2026-56315"),
        ("torch.utils.bottleneck.__main__", "run_autograd_prof", "torch-bottleneck-autograd-prof",
         (code, {}), "GHSA-4whj-rm5r-c2v8"),
        ("torch._dynamo.guards", "GuardBuilder.get", "torch-dynamo-guardbuilder-get", (code,), ""),
        ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression",
         "torch-fx-evaluate-guards", (code, []), ""),
        ("torch.jit", "load", "torch-jit-load", (c,), ""),
        ("torch.storage", "_load_from_bytes", "torch-load-from-bytes", (b"\x80\x02N.",), ""),
        ("torch", "load", "torch-load-nested", (c,), ""),
        ("cloudpickle.cloudpickle", "_make_function", "cloudpickle-make-function", (None, {}, None, None),
         ""),
        ("pickle", "loads", "pickle-loads-call", (b"N.",), ""),
        ("smtplib", "SMTP", "smtplib-smtp", ("127.0.0.1", 9), ""),
    ]  # fmt: skip
    return [
        Sample(
            name=f"denylist-gap-{label}",
            data=_gadget(module, name, *args),
            expected_rules=frozenset({PKL_CRITICAL}),
            technique="denylist-gap",
            advisory=advisory,
            notes=f"calls {module}.{name}",
        )
        for module, name, label, args, advisory in table
    ]


def _parser_differentials(canary: Path) -> list[Sample]:
    touch = f"touch {canary}"
    code = f"open({str(canary)!r}, 'w').close()"
    crit = frozenset({PKL_CRITICAL})
    memo_confusion = p4(
        su("os") + b"q\x00" + su("system") + b"q\x01"  # BINPUT 0, BINPUT 1
        + su("torch._utils") + MEMOIZE + su("_rebuild_tensor_v2") + MEMOIZE  # stored at 2 and 3
        + POP + POP + POP + POP
        + b"h\x00h\x01" + STACK_GLOBAL + const((touch,)) + REDUCE  # BINGET 0, BINGET 1
    )  # fmt: skip
    get_indirection = p4(
        su("posix") + MEMOIZE + su("system") + MEMOIZE + POP + POP + b"h\x00h\x01" + STACK_GLOBAL
        + const((touch,)) + REDUCE
    )  # fmt: skip
    build_on_global = p4(sg("collections", "OrderedDict") + const((None, {})) + BUILD)
    obj_form = p4(MARK + sg("os", "system") + su(touch) + b"o")
    inst_form = b"(" + su(touch) + b"ios\nsystem\n."
    popped = p4(call(sg("os", "system"), touch) + POP + NONE)
    broken = b"\x80\x04" + call(sg("os", "system"), touch) + b"\xff\xff"
    truncated = b"\x80\x04" + call(sg("os", "system"), touch)
    second = b"\x80\x04N." + _gadget("builtins", "exec", code)
    text_form = b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR."
    text_builtin = b"c__builtin__\neval\n(V" + code.encode() + b"\ntR."
    inner = b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR."
    nested = _gadget("pickle", "loads", inner)
    nested_benign_loader = p4(sb(b"\x80\x04" + call(sg("posix", "system"), touch) + STOP))
    dotted_globals = p4(call(sg("collections", "OrderedDict.__init__.__globals__"), "x"))
    dotted_os = p4(call(sg("torch", "_utils.os.system"), touch))
    dynamic = p4(su("builtins") + call(sg("builtins", "str"), "os") + STACK_GLOBAL + const((touch,)) + REDUCE)
    ext = b"\x80\x02\x82\x01" + const((touch,)) + REDUCE + STOP
    resolved_call = p4(call(call(sg("pkgutil", "resolve_name"), "os:system"), touch))
    fickling_reduce_build = p4(call(sg("smtplib", "SMTP"), "127.0.0.1", 9) + const({}) + BUILD)
    magic_by_code = p4(call(sg("builtins", "eval"), "0x1950a86a20f9469cfc6c")) + b"\x80\x02K\x03."
    return [
        Sample(name="memo-put-vs-memoize", data=memo_confusion, expected_rules=crit,
               technique="parser-differential", advisory="",
               notes="BINPUT and MEMOIZE mixed so a naive memo model resolves torch._utils"),
        Sample(name="get-indirection-stack-global", data=get_indirection, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="build-on-allowlisted-global", data=build_on_global,
               expected_rules=frozenset({PKL_DYNAMIC}), technique="parser-differential"),
        Sample(name="obj-instead-of-reduce", data=obj_form, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="inst-instead-of-reduce", data=inst_form, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="popped-call-result", data=popped, expected_rules=crit, technique="parser-differential"),
        Sample(name="broken-after-payload", data=broken, expected_rules=crit | {PKL_MALFORMED},
               technique="parser-differential"),
        Sample(name="truncated-after-payload", data=truncated, expected_rules=crit | {PKL_MALFORMED},
               technique="parser-differential"),
        Sample(name="second-pickle-in-stream", data=second, expected_rules=crit | {PKL_MULTIPLE},
               technique="parser-differential"),
        Sample(name="protocol-0-global", data=text_form, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="protocol-0-compat-builtin", data=text_builtin, expected_rules=crit,
               technique="parser-differential", notes="__builtin__ is mapped to builtins below protocol 3"),
        Sample(name="nested-pickle-loads", data=nested, expected_rules=crit | {PKL_NESTED},
               technique="nested-pickle"),
        Sample(name="nested-pickle-in-bytes", data=nested_benign_loader, expected_rules=crit | {PKL_NESTED},
               technique="nested-pickle"),
        Sample(name="dotted-path-dunder", data=dotted_globals, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="dotted-path-torch-os", data=dotted_os, expected_rules=crit,
               technique="parser-differential"),
        Sample(name="dynamic-stack-global", data=dynamic, expected_rules=frozenset({PKL_DYNAMIC}),
               technique="parser-differential"),
        Sample(name="ext-code-import", data=ext, expected_rules=frozenset({PKL_DYNAMIC}),
               technique="parser-differential"),
        Sample(name="call-on-resolved-callable", data=resolved_call, expected_rules=crit | {PKL_DYNAMIC},
               technique="parser-differential", advisory="GHSA-vvpj-8cmc-gx39"),
        Sample(name="reduce-then-build", data=fickling_reduce_build, expected_rules=crit,
               technique="parser-differential", advisory="GHSA-mhc9-48gj-9gp3"),
        Sample(name="legacy-magic-by-code", data=magic_by_code, expected_rules=crit | {PKL_MULTIPLE},
               technique="parser-differential", notes="torch legacy magic number computed by eval"),
    ]  # fmt: skip


def malicious_samples(canary: Path) -> list[Sample]:
    """Every malicious pickle sample; payloads would at most create ``canary`` (never run here)."""
    return _denylist_gaps(canary) + _parser_differentials(canary)


# -- benign samples --------------------------------------------------------------------------------
def _sklearn_models() -> list[tuple[str, object]]:
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    x = rng.random((60, 4))
    y = (x[:, 0] > 0.5).astype(int)
    fitted: list[tuple[str, object]] = [
        ("scaler-logreg", make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)),
        ("random-forest", RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)),
        ("gradient-boosting", GradientBoostingClassifier(n_estimators=3).fit(x, y)),
        ("hist-gradient-boosting", HistGradientBoostingClassifier(max_iter=3).fit(x, y)),
        ("svc", SVC().fit(x, y)),
        ("kmeans", KMeans(2, n_init=1, random_state=0).fit(x)),
        ("pca", PCA(2).fit(x)),
        ("knn", KNeighborsClassifier().fit(x, y)),
        ("log1p-pipeline", make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(x, y)),
    ]
    cats = np.array([["a", 1.0], ["b", 2.0], ["a", 3.0]], dtype=object)
    ct = ColumnTransformer([("oh", OneHotEncoder(), [0]), ("sc", StandardScaler(), [1])]).fit(cats)
    fitted.append(("column-transformer", ct))
    return fitted


def _torch_samples(tmp: Path) -> list[Sample]:
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(8, 4), torch.nn.Dropout(), torch.nn.LayerNorm(4), torch.nn.GELU(),
    )  # fmt: skip
    out: list[Sample] = []
    for label, obj in (("state-dict", net.state_dict()), ("whole-sequential", net)):
        for legacy in (False, True):
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
            out.append(
                Sample(
                    name=f"torch-{label}-{'legacy' if legacy else 'zip'}",
                    data=buf.getvalue(),
                    expected_rules=frozenset(),
                    technique="benign",
                    format="pytorch-legacy" if legacy else "pytorch-zip",
                )
            )
    return out


def benign_samples(tmp: Path) -> list[Sample]:
    """Ordinary model and data files: real torch.save, scikit-learn, joblib, NumPy, plain data.

    ``tmp`` is a scratch directory (joblib writes through a file). Needs the torch and sklearn
    extras; families whose library is missing are left out.
    """
    import collections
    import datetime
    import decimal

    out: list[Sample] = []
    plain = {
        "a": [1, 2.5, "x", b"y", None, True],
        "s": {1, 2},
        "f": frozenset({3}),
        "od": collections.OrderedDict(k=1),
        "t": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        "d": decimal.Decimal("1.5"),
        "c": complex(1, 2),
        "ba": bytearray(b"zz"),
        # Training arguments and addresses that research checkpoints carry beside the weights.
        "args": argparse.Namespace(lr=0.1, arch="resnet"),
        "ns": types.SimpleNamespace(epochs=3),
        "ip": [
            ipaddress.ip_address("10.0.0.1"),
            ipaddress.ip_network("fd00::/8"),
            ipaddress.ip_interface("10.1.2.3/24"),
        ],
    }
    for proto in range(6):
        out.append(Sample(name=f"plain-data-p{proto}", data=pickle.dumps(plain, protocol=proto),
                          expected_rules=frozenset(), technique="benign"))  # fmt: skip
    try:
        import joblib
        import numpy as np
    except ImportError:  # pragma: no cover - the sklearn extra is installed in CI
        return out
    arrays = {
        "object": np.array([1, "a", None], dtype=object),
        "structured": np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        "float": np.arange(12.0).reshape(3, 4),
        "rng": np.random.RandomState(0),
        "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        "records": np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    }
    for proto in (2, 4, 5):
        out.append(Sample(name=f"numpy-arrays-p{proto}", data=pickle.dumps(arrays, protocol=proto),
                          expected_rules=frozenset(), technique="benign"))  # fmt: skip
    for label, model in _sklearn_models():
        for proto in (2, 5):
            out.append(Sample(name=f"sklearn-{label}-p{proto}", data=pickle.dumps(model, protocol=proto),
                              expected_rules=frozenset(), technique="benign"))  # fmt: skip
        path = tmp / f"{label}.joblib"
        joblib.dump({"model": model, "objects": arrays["object"]}, path)
        out.append(Sample(name=f"sklearn-{label}-joblib", data=path.read_bytes(),
                          expected_rules=frozenset(), technique="benign", format="joblib"))  # fmt: skip
    compressions = ["zlib", "gzip", "bz2", "xz", "lzma"]
    with contextlib.suppress(ImportError):  # the archives extra (lz4) is installed in CI
        importlib.import_module("lz4.frame")
        compressions.append("lz4")
    label, model = _sklearn_models()[0]
    for method in compressions:
        path = tmp / f"{label}-{method}.joblib"
        joblib.dump({"model": model, "arrays": arrays}, path, compress=(method, 3))
        out.append(Sample(name=f"sklearn-{label}-joblib-{method}", data=path.read_bytes(),
                          expected_rules=frozenset(), technique="benign", format="joblib"))  # fmt: skip
    with contextlib.suppress(ImportError):  # the torch extra is installed in CI
        out.extend(_torch_samples(tmp))
    return out
