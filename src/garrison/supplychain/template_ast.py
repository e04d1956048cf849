"""Chat-template analysis without rendering: jinja2's parser, an AST walk and constant folding.

Templates are parsed with jinja2's parser (``Environment.parse`` lexes and builds an AST; it never
compiles or runs the template) and the AST is walked for what template-injection payloads need:
attribute and item access to dunder or private names, the ``attr`` filter and attribute-taking
filters, globals that payloads use as roots (cycler, joiner, lipsum, self, Flask's config and
request), and strings that spell dunder names once escapes, concatenation, repetition, ``join``,
``format``, ``replace`` or ``reverse`` are folded (folding uses only ``str`` operations on
constants, never attribute lookups). A template that does not parse is searched as text instead.

Kept apart from :mod:`garrison.supplychain.templates` so that jinja2 is imported only when a scan
meets a template.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from garrison.core.severity import Severity
from garrison.supplychain.formats_extra.common import short

MAX_TEMPLATE_CHARS = 1_000_000
MAX_FOLD_CHARS = 4096

_DUNDER = re.compile(r"__[A-Za-z0-9_]+__")
_PRIVATE = re.compile(r"^_[A-Za-z0-9_]*$")
PYTHON_INTERNALS = frozenset(
    {
        "mro", "func_globals", "func_code", "f_globals", "f_locals", "f_builtins", "f_back",
        "gi_frame", "gi_code", "cr_frame", "ag_frame", "tb_frame", "tb_next", "co_code", "im_func",
        "im_class", "obj_globals", "environment", "_module",
    }
)  # fmt: skip
GADGET_ROOTS = frozenset(
    {"cycler", "joiner", "lipsum", "self", "config", "request", "url_for", "get_flashed_messages",
     "session", "g", "namespace"}
)  # fmt: skip
ATTRIBUTE_FILTERS = frozenset(
    {"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)
_TEXT_SIGNS = re.compile(r"__[A-Za-z]+__|\|\s*attr\b|\b(?:cycler|joiner|lipsum)\b|\\x5f|\\u005f")


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateIssue:
    """One problem in a template."""

    severity: Severity
    """CRITICAL/HIGH: injection; MEDIUM: a building block or an unparsable template."""
    kind: str
    """Short stable name of the check, for fingerprints."""
    message: str
    excerpt: str


class _GenerationTag(Extension):
    """Accepts Hugging Face's ``{% generation %}...{% endgeneration %}`` so its templates parse."""

    tags: ClassVar[set[str]] = {"generation"}  # type: ignore[misc]

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _environment() -> Environment:
    return Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag])  # noqa: S701 - parse only, never rendered


class _Folder:
    """Folds constant string expressions using ``str`` operations only."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def fold(self, node: nodes.Node, depth: int = 0) -> Any:
        key = id(node)
        if key not in self.memo:
            self.memo[key] = self._fold(node, depth) if depth < 40 else None
        return self.memo[key]

    def _fold(self, node: nodes.Node, depth: int) -> Any:
        if isinstance(node, nodes.Const):
            return (
                node.value if isinstance(node.value, str | int) and not isinstance(node.value, bool) else None
            )
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self.fold(item, depth + 1) for item in node.items]
            return items if all(isinstance(i, str | int) for i in items) else None
        if isinstance(node, nodes.Concat):
            parts = [self.fold(item, depth + 1) for item in node.nodes]
            return (
                self._cap("".join(map(str, parts))) if all(isinstance(p, str | int) for p in parts) else None
            )
        if isinstance(node, nodes.Add | nodes.Mul):
            left, right = self.fold(node.left, depth + 1), self.fold(node.right, depth + 1)
            if isinstance(node, nodes.Add) and isinstance(left, str) and isinstance(right, str):
                return self._cap(left + right)
            if isinstance(node, nodes.Mul) and isinstance(left, str) and isinstance(right, int):
                return self._cap(left * max(0, min(right, MAX_FOLD_CHARS)))
            return None
        if isinstance(node, nodes.Filter) and node.node is not None:
            subject = self.fold(node.node, depth + 1)
            args = [self.fold(a, depth + 1) for a in node.args]
            return self._method(node.name, subject, args)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            subject = self.fold(node.node.node, depth + 1)
            args = [self.fold(a, depth + 1) for a in node.args]
            return self._method(node.node.attr, subject, args)
        return None

    def _method(self, name: str, subject: Any, args: list[Any]) -> Any:
        if subject is None or not all(isinstance(a, str | int) for a in args):
            return None
        try:
            if name == "join" and isinstance(subject, list):
                return self._cap((str(args[0]) if args else "").join(map(str, subject)))
            if name == "join" and isinstance(subject, str) and args and isinstance(args[0], list):
                return self._cap(subject.join(map(str, args[0])))
            if not isinstance(subject, str):
                return None
            simple = {
                "lower": subject.lower,
                "upper": subject.upper,
                "title": subject.title,
                "capitalize": subject.capitalize,
                "trim": subject.strip,
            }
            if name in simple:
                return simple[name]()
            if name == "string":
                return subject
            if name == "reverse":
                return subject[::-1]
            if name == "replace" and len(args) >= 2:
                return self._cap(subject.replace(str(args[0]), str(args[1])))
            if name == "format" and all(isinstance(a, str | int) for a in args):
                return self._cap(self._format(subject, args))
        except (ValueError, TypeError, IndexError, OverflowError):
            return None
        return None

    @staticmethod
    def _format(subject: str, args: list[Any]) -> str | None:
        """``%``-formatting for the filter; ``str.format`` only with plain positional fields."""
        if "{" not in subject:
            return subject % tuple(args)
        for _, field_name, spec, _ in string.Formatter().parse(subject):
            if field_name is None:
                continue
            if not (field_name == "" or field_name.isdigit()) or (spec and "{" in spec):
                return None
        return subject.format(*args)

    @staticmethod
    def _cap(value: str | None) -> str | None:
        return value[:MAX_FOLD_CHARS] if isinstance(value, str) else None


def _name_issue(name: str, how: str) -> TemplateIssue | None:
    if _DUNDER.fullmatch(name) or name.startswith("__"):
        return TemplateIssue(
            severity=Severity.CRITICAL, kind="dunder-access", message=f"{how} of {name}", excerpt=name
        )
    if _PRIVATE.match(name) or name in PYTHON_INTERNALS:
        return TemplateIssue(
            severity=Severity.HIGH, kind="private-access", message=f"{how} of {name}", excerpt=name
        )
    return None


def _walk(root: nodes.Node) -> Iterator[nodes.Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


def _node_issues(node: nodes.Node, folder: _Folder) -> Iterator[TemplateIssue | None]:
    if isinstance(node, nodes.Getattr):
        yield _name_issue(node.attr, "attribute access")
        if isinstance(node.node, nodes.Name) and node.node.name in GADGET_ROOTS:
            yield TemplateIssue(
                severity=Severity.HIGH,
                kind="gadget-root-access",
                message=f"attribute access on the Jinja global {node.node.name}",
                excerpt=f"{node.node.name}.{node.attr}",
            )
    elif isinstance(node, nodes.Getitem):
        key = folder.fold(node.arg)
        if isinstance(key, str):
            yield _name_issue(key, "item access")
    elif isinstance(node, nodes.Name):
        if node.name.startswith("__"):
            yield _name_issue(node.name, "reference")
        elif node.name in GADGET_ROOTS - {"namespace"} and node.ctx == "load":
            yield TemplateIssue(
                severity=Severity.MEDIUM,
                kind="gadget-global",
                message=f"reference to the Jinja global {node.name}, a common injection root",
                excerpt=node.name,
            )
    elif isinstance(node, nodes.Filter):
        values = [folder.fold(a) for a in node.args] + [folder.fold(k.value) for k in node.kwargs]
        names = [v for v in values if isinstance(v, str)]
        if node.name == "attr":
            worst = next((i for i in (_name_issue(n, "attr filter access") for n in names) if i), None)
            yield worst or TemplateIssue(
                severity=Severity.HIGH, kind="attr-filter", message="the attr filter", excerpt="|attr"
            )
        elif node.name in ATTRIBUTE_FILTERS:
            for name in names:
                yield _name_issue(name, f"{node.name} filter attribute access")
    elif isinstance(node, nodes.Keyword) and node.key.startswith("_"):
        yield TemplateIssue(
            severity=Severity.HIGH,
            kind="dunder-keyword",
            message=f"keyword named {node.key}",
            excerpt=node.key,
        )
    elif (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.node.attr in ("format", "format_map")
    ):
        fmt = folder.fold(node.node.node)
        if isinstance(fmt, str) and re.search(r"\{[^{}]*[.\[][^{}]*\}", fmt):
            yield TemplateIssue(
                severity=Severity.HIGH,
                kind="format-attribute",
                message="a format string that reads attributes or items of its arguments",
                excerpt=short(fmt, 80),
            )
    elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
        yield TemplateIssue(
            severity=Severity.MEDIUM,
            kind="template-loading",
            message=f"{type(node).__name__.lower()} of another template",
            excerpt=type(node).__name__,
        )
    if isinstance(node, nodes.Expr) and not isinstance(node, nodes.Getitem | nodes.Getattr):
        value = folder.fold(node)
        if isinstance(value, str) and (found := _DUNDER.search(value)):
            yield TemplateIssue(
                severity=Severity.HIGH,
                kind="dunder-string",
                message=f"a string that spells {found.group(0)}",
                excerpt=short(value, 80),
            )


def analyse_template(source: str) -> list[TemplateIssue]:
    """Every issue in a Jinja chat template, found without rendering it."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return [
            TemplateIssue(
                severity=Severity.MEDIUM,
                kind="too-long",
                message=f"template is {len(source)} characters, over the {MAX_TEMPLATE_CHARS} limit",
                excerpt="",
            )
        ]
    try:
        tree = _environment().parse(source)
    except (TemplateSyntaxError, RecursionError, MemoryError) as exc:
        return _unparsed(source, exc)
    folder = _Folder()
    issues: dict[tuple[str, str], TemplateIssue] = {}
    for node in _walk(tree):
        for issue in _node_issues(node, folder):
            if issue is not None:
                issues.setdefault((issue.kind, issue.excerpt), issue)
    return sorted(issues.values(), key=lambda i: (-i.severity, i.kind, i.excerpt))


def _unparsed(source: str, exc: BaseException) -> list[TemplateIssue]:
    reason = short(str(exc) or type(exc).__name__, 120)
    found = _TEXT_SIGNS.search(source)
    severity = Severity.HIGH if found else Severity.MEDIUM
    detail = f"; it contains {short(found.group(0), 40)!r}" if found else ""
    return [
        TemplateIssue(
            severity=severity,
            kind="unparsable",
            message=f"template does not parse ({reason}){detail}",
            excerpt=found.group(0) if found else "",
        )
    ]
