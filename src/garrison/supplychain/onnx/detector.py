"""The ONNX scanner: custom operator domains and external-data paths, without onnx installed.

Which domains count as built in: the ONNX standard domains ('' and 'ai.onnx', 'ai.onnx.ml',
'ai.onnx.training', 'ai.onnx.preview.training') and ONNX Runtime's contrib domains
('com.microsoft' and its sub-domains 'com.microsoft.nchwc', 'com.microsoft.experimental',
'com.microsoft.dml'). The contrib operators are compiled into ONNX Runtime itself and are what
exporters such as Optimum emit for fused attention and quantisation; running them loads no code
that came with the model, so flagging them would be a false alarm on ordinary models. Any other
domain needs a custom-op library registered by the loader, which is native code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import ClassVar

from garrison.core.evidence import Observation
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.formats.onnx_model import RUNTIME_DOMAINS, STANDARD_DOMAINS, Node, read_model
from garrison.formats.onnx_paths import PathKind, check_entry
from garrison.supplychain.formats_extra.common import file_name, finding, mapped, short
from garrison.supplychain.onnx.rules import (
    ABSOLUTE_EXTERNAL_PATH,
    CUSTOM_OPERATOR,
    HARDLINK_EXTERNAL_DATA,
    MALFORMED_MODEL,
    RULES,
    SCAN_LIMIT,
    SYMLINK_EXTERNAL_PATH,
    TRAVERSAL_EXTERNAL_PATH,
)

MAX_BYTES = 4 * 2**30
"""Largest file parsed (protobuf itself stops at 2 GiB)."""

PATH_RULES: dict[PathKind, Rule] = {
    "malformed": MALFORMED_MODEL,
    "absolute": ABSOLUTE_EXTERNAL_PATH,
    "traversal": TRAVERSAL_EXTERNAL_PATH,
    "symlink": SYMLINK_EXTERNAL_PATH,
    "hardlink": HARDLINK_EXTERNAL_DATA,
}
"""The rule each kind of external-data path problem is reported under."""

MAX_FINDINGS_PER_RULE = 50


class OnnxScanner(FileDetector):
    """Scans ONNX models for custom operator domains and external data that escapes the model.

    Emits GAR-ONNX-001 for custom domains, 101 to 104 for external-data paths (absolute,
    traversal, symlink escape, hard link), 105 for malformed models and 201 for limits.
    """

    name: ClassVar[str] = "onnx-model"
    summary: ClassVar[str] = "Finds custom operator domains and escaping external-data paths in ONNX models."
    rules: ClassVar[tuple[Rule, ...]] = RULES
    formats: ClassVar[frozenset[str]] = frozenset({"onnx"})

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one ONNX model."""
        name = file_name(target)
        size = target.path.stat().st_size
        if size > MAX_BYTES:
            yield finding(
                self.name, SCAN_LIMIT, target, f"{name} is {size} bytes, over the {MAX_BYTES}-byte limit."
            )
            return
        with mapped(target.path) as view:
            result = read_model(view)
        model = result.model
        if result.problem:
            yield finding(
                self.name,
                MALFORMED_MODEL,
                target,
                f"{name} is not a well-formed ModelProto: {result.problem}.",
            )
        if result.limit:
            yield finding(self.name, SCAN_LIMIT, target, f"{name}: {result.limit}; the rest was not checked.")
        yield from self._domains(target, name, model.opset_domains, model.nodes, model.functions)
        emitted: dict[str, int] = defaultdict(int)
        for tensor in model.external:
            if tensor.repeated:
                yield finding(
                    self.name,
                    MALFORMED_MODEL,
                    target,
                    f"{name}: external data of tensor {short(tensor.name)!r} repeats the keys "
                    f"{', '.join(sorted(set(tensor.repeated)))}.",
                )
            for issue in check_entry(target.path.parent, tensor.entries):
                rule = PATH_RULES[issue.kind]
                emitted[rule.id] += 1
                if emitted[rule.id] > MAX_FINDINGS_PER_RULE:
                    continue
                location = tensor.entries.get("location", "")
                yield finding(
                    self.name,
                    rule,
                    target,
                    f"{name}: tensor {short(tensor.name)!r} ({tensor.where}): {issue.message}: "
                    f"{short(location)!r}.",
                    (Observation(name="external-data-location", actual=short(location, 200)),),
                )

    def _domains(
        self,
        target: FileTarget,
        name: str,
        opsets: list[str],
        nodes: list[Node],
        functions: set[tuple[str, str]],
    ) -> Iterator[Finding]:
        ops: dict[str, set[str]] = defaultdict(set)
        for node in nodes:
            domain = node.domain
            if domain in STANDARD_DOMAINS or domain in RUNTIME_DOMAINS:
                continue
            if (domain, node.op_type) in functions:
                continue  # a function defined in the model: ONNX, not native code
            ops[domain].add(node.op_type)
        function_domains = {domain for domain, _ in functions}
        for domain in sorted(ops):
            listed = ", ".join(sorted(short(op, 40) for op in ops[domain])[:10])
            yield finding(
                self.name,
                CUSTOM_OPERATOR,
                target,
                f"{name} uses operators {listed} from the custom domain {short(domain)!r}; they run only "
                "with a native custom-op library registered by the loader.",
                (Observation(name="operator-domain", actual=short(domain)),),
            )
        for domain in sorted(set(opsets) - STANDARD_DOMAINS - RUNTIME_DOMAINS - set(ops) - function_domains):
            yield finding(
                self.name,
                CUSTOM_OPERATOR,
                target,
                f"{name} imports the custom operator domain {short(domain)!r} (no node uses it).",
                (Observation(name="operator-domain", actual=short(domain)),),
                severity=Severity.MEDIUM,
            )
