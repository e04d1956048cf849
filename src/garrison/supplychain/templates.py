"""The tokenizer-config scanner: chat templates in tokenizer configs and ``.jinja`` files.

The analysis itself (jinja2's parser, an AST walk, constant folding; never rendering) lives in
:mod:`garrison.supplychain.template_ast` and is imported on first use, so scans that meet no
template never import jinja2. GGUF metadata reuses :func:`template_findings`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from garrison.core.evidence import Observation
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.supplychain.formats_extra.common import file_name, finding, short
from garrison.supplychain.formats_extra.rules_tpl import (
    TEMPLATE_RULES,
    TOKENIZER_LIMIT,
    TOKENIZER_TEMPLATE_INJECTION,
    TOKENIZER_TEMPLATE_SUSPICIOUS,
)

if TYPE_CHECKING:
    from garrison.supplychain.template_ast import TemplateIssue

MAX_CONFIG_BYTES = 32 * 2**20
"""Largest tokenizer config read."""


def analyse_template(source: str) -> list[TemplateIssue]:
    """Issues in one chat template (see :mod:`garrison.supplychain.template_ast`)."""
    from garrison.supplychain.template_ast import analyse_template as analyse

    return analyse(source)


def collect_templates(text: str) -> list[tuple[str, str]]:
    """``(label, template)`` for every ``chat_template`` in a JSON document, duplicates included.

    Accepts the string form and the list-of-``{"name", "template"}`` form at any depth; raises
    ``ValueError`` (or ``RecursionError``) when the text is not JSON.
    """
    found: list[tuple[str, str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, value in items:
            if key != "chat_template":
                continue
            if isinstance(value, str):
                found.append(("chat_template", value))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, dict) and isinstance(item.get("template"), str):
                        name = item.get("name")
                        label = f"chat_template[{short(name, 40) if isinstance(name, str) else index}]"
                        found.append((label, item["template"]))
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found


def template_findings(
    detector: str,
    target: FileTarget,
    where: str,
    source: str,
    injection: Rule,
    suspicious: Rule,
) -> Iterator[Finding]:
    """Findings of :func:`analyse_template` on one template, under the caller's two rules."""
    for issue in analyse_template(source):
        rule = injection if issue.severity >= Severity.HIGH else suspicious
        yield finding(
            detector,
            rule,
            target,
            f"{file_name(target)}: {where} contains {issue.message}.",
            (Observation(name=f"{where}:{issue.kind}", actual=issue.excerpt),),
            severity=issue.severity,
        )


class TokenizerTemplateScanner(FileDetector):
    """Analyses chat templates in tokenizer configs (any JSON with ``chat_template``) and ``.jinja`` files.

    Emits GAR-TPL-001 for template injection, GAR-TPL-002 for injection building blocks and
    GAR-TPL-201 for files over the size limit.
    """

    name: ClassVar[str] = "chat-template"
    summary: ClassVar[str] = (
        "Finds Jinja template injection in tokenizer chat templates, without rendering them."
    )
    rules: ClassVar[tuple[Rule, ...]] = TEMPLATE_RULES
    formats: ClassVar[frozenset[str]] = frozenset({"json", "text"})

    def applies_to(self, target: FileTarget) -> bool:
        """JSON files, and text files named as Jinja templates (``chat_template.jinja``)."""
        fmt = target.asset.format or ""
        if fmt == "json":
            return True
        return fmt == "text" and file_name(target).lower().endswith((".jinja", ".jinja2", ".j2"))

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one tokenizer config or template file."""
        name = file_name(target)
        with target.open() as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            if b"chat_template" in data or target.asset.format == "text":
                yield finding(
                    self.name,
                    TOKENIZER_LIMIT,
                    target,
                    f"{name} is over {MAX_CONFIG_BYTES} bytes; its template was not checked.",
                )
            return
        text = data.decode("utf-8", "replace")
        if target.asset.format == "text":
            yield from template_findings(
                self.name,
                target,
                "template",
                text,
                TOKENIZER_TEMPLATE_INJECTION,
                TOKENIZER_TEMPLATE_SUSPICIOUS,
            )
            return
        if "chat_template" not in text:
            return
        try:
            templates = collect_templates(text)
        except (ValueError, RecursionError):
            yield finding(
                self.name,
                TOKENIZER_LIMIT,
                target,
                f"{name} mentions chat_template but is not JSON Garrison can parse; "
                "its template was not checked.",
            )
            return
        for label, source in templates:
            yield from template_findings(
                self.name, target, label, source, TOKENIZER_TEMPLATE_INJECTION, TOKENIZER_TEMPLATE_SUSPICIOUS
            )


DETECTORS = (TokenizerTemplateScanner,)
"""Detectors this module provides, for the registry."""
