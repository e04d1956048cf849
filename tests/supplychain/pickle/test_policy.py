"""The allowlist policy: data-driven grades, dotted paths, compat names, documented decisions."""

from __future__ import annotations

import pytest

from garrison.supplychain.policy import Classification, classify, compat_resolve, explain, load_policy

ALLOWED, UNKNOWN, CRITICAL = Classification.ALLOWED, Classification.UNKNOWN, Classification.CRITICAL


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("torch._utils", "_rebuild_tensor_v2", ALLOWED),
        ("torch._utils", "_rebuild_parameter", ALLOWED),
        ("torch", "FloatStorage", ALLOWED),
        ("torch._tensor", "_rebuild_from_type_v2", ALLOWED),
        ("collections", "OrderedDict", ALLOWED),
        ("numpy.core.multiarray", "_reconstruct", ALLOWED),
        ("numpy._core.multiarray", "_reconstruct", ALLOWED),
        ("joblib.numpy_pickle", "NumpyArrayWrapper", ALLOWED),
        ("sklearn.ensemble._forest", "RandomForestClassifier", ALLOWED),
        ("sklearn.metrics._dist_metrics", "newObj", ALLOWED),
        ("torch.nn.modules.linear", "Linear", ALLOWED),
        ("scipy.sparse._csr", "csr_matrix", ALLOWED),
        # decisions: user classes are unknown (high), sklearn functions are not classes
        ("__main__", "MyNet", UNKNOWN),
        ("mypackage.models", "Net", UNKNOWN),
        ("sklearn.utils._joblib", "dump", UNKNOWN),
        ("sklearn.utils._testing", "TempMemmap", UNKNOWN),
        ("joblib.numpy_pickle", "NDArrayWrapper", CRITICAL),
        ("collections", "OrderedDict.fromkeys", UNKNOWN),
        # critical
        ("os", "system", CRITICAL),
        ("builtins", "getattr", CRITICAL),
        ("collections", "OrderedDict.__init__.__globals__", CRITICAL),
        ("torch", "_utils.os.system", CRITICAL),
        ("torch", "serialization.load", CRITICAL),
        ("torch.serialization", "_get_layout", ALLOWED),
        ("torch.storage", "_load_from_bytes", CRITICAL),
        ("numpy", "load", CRITICAL),
        ("somewhere.else", "system", CRITICAL),
        ("uuid", "UUID", ALLOWED),
        ("uuid", "_get_command_stdout", CRITICAL),
    ],
)
def test_grades(module: str, name: str, expected: Classification) -> None:
    assert classify(module, name) is expected, explain(module, name)
    assert explain(module, name)


def test_compat_names_follow_cpython() -> None:
    assert compat_resolve("__builtin__", "eval", 2) == ("builtins", "eval")
    assert compat_resolve("copy_reg", "_reconstructor", 0) == ("copyreg", "_reconstructor")
    assert compat_resolve("__builtin__", "xrange", 2) == ("builtins", "range")
    assert compat_resolve("__builtin__", "eval", 3) == ("__builtin__", "eval")


def test_policy_is_loaded_once_and_is_data() -> None:
    assert load_policy() is load_policy()
    policy = load_policy()
    assert "torch._utils._rebuild_tensor_v2" in policy.allow
    assert "os" in policy.critical_modules
    assert all(reason.strip() for reason in policy.critical_modules.values())
