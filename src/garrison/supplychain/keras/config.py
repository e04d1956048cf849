"""Analysis of a parsed Keras model config: Lambda bytecode, module references, gadget layers.

Works on the JSON of a Keras 3 ``config.json`` and of a legacy ``model_config`` attribute alike.
Nothing is imported or resolved: module and function names are compared with allowlists (the
modules ordinary models reference) and with curated lists of gadgets from public advisories.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.supplychain.formats_extra.common import short
from garrison.supplychain.formats_extra.marshal_names import MarshalFormatError, code_names
from garrison.supplychain.keras.rules import (
    CUSTOM_OBJECT,
    DANGEROUS_KERAS_FUNCTION,
    EXTERNAL_REFERENCE,
    EXTERNAL_RESOURCE_LAYER,
    LAMBDA_BYTECODE,
    PATH_IN_NAME,
)

MAX_NODES = 500_000
"""Most JSON values walked in one config."""

MAX_CODE_CHARS = 8 * 2**20
"""Longest base64 bytecode string decoded."""

KERAS_ROOTS = frozenset({"keras", "tf_keras", "tensorflow", "tf"})
"""Top-level modules whose objects a Keras config may name."""

SAFE_FUNCTION_AREAS = frozenset(
    {
        "activations",
        "losses",
        "metrics",
        "ops",
        "initializers",
        "regularizers",
        "constraints",
        "optimizers",
        "layers",
        "models",
        "math",
        "nn",
        "backend",
        "applications",
    }
)
"""Second component of ``keras.<area>`` / ``keras.src.<area>`` that plain function references use."""

KERAS_GADGETS = frozenset(
    {
        "enable_unsafe_deserialization",
        "get_file",
        "load_model",
        "load_weights",
        "save_model",
        "set_global_attribute",
        "register_keras_serializable",
        "get_registered_object",
        "deserialize_keras_object",
        "func_load",
        "extract_archive",
        "load_img",
        "save_img",
        "TFSMLayer",
    }
)
"""Keras functions that are gadgets when a config calls them (CVE-2025-8747, CVE-2025-9906)."""

DANGEROUS_MODULES = frozenset(
    {
        "builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy",
        "code", "codeop", "pty", "shutil", "socket", "pickle", "marshal", "ctypes", "operator",
        "functools", "webbrowser", "urllib", "requests", "http", "pathlib", "io", "_io", "types",
        "multiprocessing", "asyncio", "commands", "popen2", "pdb", "timeit", "cProfile", "profile",
        "trace", "pydoc", "pkgutil", "tempfile", "glob", "dill", "cloudpickle", "joblib", "signal",
    }
)  # fmt: skip
"""Modules whose functions run commands, evaluate code or touch files (CVE-2025-1550 gadgets)."""

DANGEROUS_CODE_NAMES = frozenset(
    {
        "system", "popen", "Popen", "exec", "eval", "compile", "__import__", "import_module",
        "open", "subprocess", "os", "run", "call", "check_call", "check_output", "getattr",
        "globals", "builtins", "__builtins__", "socket", "urlopen", "spawnv", "execv", "execve",
        "fork", "remove", "unlink", "rmtree", "pickle", "marshal", "loads", "ctypes", "pty",
        "shutil", "requests", "urllib", "setattr", "__subclasses__", "__globals__", "breakpoint",
    }
)  # fmt: skip
"""Names in Lambda bytecode that make the finding critical."""

RESOURCE_LAYERS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization", "IndexLookup"})
RISKY_TF_OPS = frozenset(
    {
        "io", "gfile", "py_function", "numpy_function", "py_func", "eager_py_func", "load_library",
        "load_op_library", "read_file", "write_file", "ReadFile", "WriteFile", "saved_model",
        "MatchingFiles", "summary", "debugging",
    }
)  # fmt: skip
"""Components of a TFOpLambda ``function`` that reach files or Python."""

_PATHLIKE_NAME = re.compile(r"[/\\]|(^|[/\\])\.\.([/\\]|$)|^\.\.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigIssue:
    """One problem in a config, before it becomes a finding."""

    rule: Rule
    message: str
    path: str
    """Where in the config, as ``config.layers[2].config.function``."""
    actual: str
    """What was found (the reference, the names), for the evidence."""
    severity: Severity | None = None


def _walk(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in ``value`` with its path, depth first, at most :data:`MAX_NODES` values."""
    stack: list[tuple[str, Any]] = [("$", value)]
    seen = 0
    while stack and seen < MAX_NODES:
        path, item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            yield path, item
            stack.extend((f"{path}.{short(str(k), 40)}", v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))


def _module_root(module: str) -> str:
    return module.split(".", 1)[0]


def _keras_area(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "src":
        return parts[2]
    return parts[1] if len(parts) > 1 else ""


def analyse_config(config: Any) -> list[ConfigIssue]:
    """Every issue in a parsed Keras model config."""
    issues: list[ConfigIssue] = []
    for path, node in _walk(config):
        class_name = node.get("class_name")
        raw_inner = node.get("config")
        inner: dict[str, Any] = raw_inner if isinstance(raw_inner, dict) else {}
        if isinstance(class_name, str):
            if class_name == "Lambda" or class_name.endswith(".Lambda"):
                issues.extend(_lambda(path, inner))
            elif class_name == "TFOpLambda":
                issues.extend(_tf_op_lambda(path, inner))
            elif class_name in RESOURCE_LAYERS or class_name == "TFSMLayer":
                issues.extend(_resource_layer(path, class_name, inner))
            for name in (node.get("name"), inner.get("name")):
                if isinstance(name, str) and _PATHLIKE_NAME.search(name):
                    issues.append(
                        ConfigIssue(
                            rule=PATH_IN_NAME,
                            message=f"{class_name} at {path} is named {short(name)!r}, which is a path.",
                            path=path,
                            actual=short(name),
                        )
                    )
                    break
        issues.extend(_reference(path, node))
    return issues


def _reference(path: str, node: dict[str, Any]) -> Iterator[ConfigIssue]:
    """A Keras 3 object or function reference: ``{"module": ..., "class_name": ..., ...}``."""
    module, class_name = node.get("module"), node.get("class_name")
    registered = node.get("registered_name")
    if not isinstance(class_name, str):
        return
    target = node.get("config") if class_name == "function" else class_name
    target = target if isinstance(target, str) else class_name
    if not isinstance(module, str) or not module:
        if isinstance(registered, str) and ">" in registered:
            yield ConfigIssue(
                rule=CUSTOM_OBJECT,
                message=f"{path} needs the custom object {short(registered)!r}.",
                path=path,
                actual=short(registered),
            )
        return
    qualified = f"{module}.{target}"
    root = _module_root(module)
    if root in KERAS_ROOTS:
        if target in KERAS_GADGETS:
            yield ConfigIssue(
                rule=DANGEROUS_KERAS_FUNCTION,
                message=f"{path} references {short(qualified)}, a Keras function that is a gadget "
                "in a model config (it disables safe mode, loads models or writes files).",
                path=path,
                actual=short(qualified),
            )
        elif class_name == "function" and _keras_area(module) not in SAFE_FUNCTION_AREAS:
            yield ConfigIssue(
                rule=DANGEROUS_KERAS_FUNCTION,
                message=f"{path} references the function {short(qualified)}, from a part of Keras "
                "that model configs do not call.",
                path=path,
                actual=short(qualified),
                severity=Severity.HIGH,
            )
        return
    if root in DANGEROUS_MODULES:
        yield ConfigIssue(
            rule=EXTERNAL_REFERENCE,
            message=f"{path} imports {short(qualified)}: loading the model calls into {root}, which "
            "runs commands, evaluates code or touches files.",
            path=path,
            actual=short(qualified),
            severity=Severity.CRITICAL,
        )
    elif isinstance(registered, str) and ">" in registered and class_name != "function":
        yield ConfigIssue(
            rule=CUSTOM_OBJECT,
            message=f"{path} needs the custom object {short(registered)!r} from module {short(module)}.",
            path=path,
            actual=short(qualified),
        )
    else:
        yield ConfigIssue(
            rule=EXTERNAL_REFERENCE,
            message=f"{path} imports {short(qualified)}, a module outside Keras.",
            path=path,
            actual=short(qualified),
        )


def _lambda(path: str, inner: dict[str, Any]) -> Iterator[ConfigIssue]:
    function = inner.get("function")
    kind = inner.get("function_type")
    code: Any = None
    if isinstance(function, dict) and function.get("class_name") == "__lambda__":
        body = function.get("config")
        code = body.get("code") if isinstance(body, dict) else None
    elif isinstance(function, list) and function and kind in ("lambda", None):
        code = function[0]
    elif isinstance(function, str) and kind == "lambda":
        code = function
    elif isinstance(function, str) and isinstance(inner.get("module"), str):
        yield from _reference(path, {"module": inner["module"], "class_name": "function", "config": function})
        return
    if code is None:
        return
    yield _bytecode_issue(path, code)


def _bytecode_issue(path: str, code: Any) -> ConfigIssue:
    where = f"Lambda layer at {path}"
    if not isinstance(code, str) or len(code) > MAX_CODE_CHARS:
        return ConfigIssue(
            rule=LAMBDA_BYTECODE,
            message=f"{where} carries bytecode Garrison did not decode (not a string or too long).",
            path=path,
            actual="undecoded",
        )
    try:
        raw = binascii.a2b_base64(code.encode("ascii", "replace"))
        names = code_names(raw)
    except (binascii.Error, MarshalFormatError):
        return ConfigIssue(
            rule=LAMBDA_BYTECODE,
            message=f"{where} carries marshalled bytecode that could not be decoded.",
            path=path,
            actual="undecodable",
        )
    used = [*names.names, *(s for s in names.strings if s.isidentifier())]
    risky = sorted({n for n in used if n in DANGEROUS_CODE_NAMES})
    listed = ", ".join(short(n, 40) for n in names.names[:15]) or "none"
    return ConfigIssue(
        rule=LAMBDA_BYTECODE,
        message=f"{where} carries marshalled Python bytecode ({len(raw)} bytes) that runs when the "
        f"model is used; it refers to: {listed}. Keras 3 loads it only with safe_mode=False; older "
        "Keras and .h5 loading run it regardless.",
        path=path,
        actual=",".join(risky) or listed,
        severity=Severity.CRITICAL if risky else None,
    )


def _tf_op_lambda(path: str, inner: dict[str, Any]) -> Iterator[ConfigIssue]:
    function = inner.get("function")
    if not isinstance(function, str):
        return
    parts = set(re.split(r"[.]", function))
    if parts & RISKY_TF_OPS:
        yield ConfigIssue(
            rule=EXTERNAL_RESOURCE_LAYER,
            message=f"TFOpLambda at {path} calls tf.{short(function)}, which reaches files or Python.",
            path=path,
            actual=short(function),
        )


def _resource_layer(path: str, class_name: str, inner: dict[str, Any]) -> Iterator[ConfigIssue]:
    if class_name == "TFSMLayer":
        where = inner.get("filepath")
        yield ConfigIssue(
            rule=EXTERNAL_RESOURCE_LAYER,
            message=f"TFSMLayer at {path} loads the external SavedModel {short(str(where))!r} "
            "(a program) when the model loads.",
            path=path,
            actual=short(str(where)),
        )
        return
    vocabulary = inner.get("vocabulary")
    if isinstance(vocabulary, str):
        yield ConfigIssue(
            rule=EXTERNAL_RESOURCE_LAYER,
            message=f"{class_name} at {path} reads its vocabulary from {short(vocabulary)!r} when "
            "the model loads (local file read or network fetch).",
            path=path,
            actual=short(vocabulary),
        )
