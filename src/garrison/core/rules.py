"""Rules: the kinds of problem Garrison can find, and what auditors map them to.

A rule's id (``GAR-PKL-001``) is stable and never reused: when a rule is renamed or split, the old
id goes into the registry's redirect table. Its documentation (``garrison rules explain ID``) is
generated from the fields here, so a rule documents itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from garrison.core.errors import RegistryError
from garrison.core.severity import Severity

RULE_ID_RE = re.compile(r"^GAR-[A-Z]{2,5}-\d{3}$")
RULE_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)+$")

#: OWASP Top 10 for LLM Applications, 2025 edition.
OWASP_LLM_2025: dict[str, str] = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

#: OWASP Machine Learning Security Top 10, 2023 edition.
OWASP_ML_2023: dict[str, str] = {
    "ML01": "Input Manipulation Attack",
    "ML02": "Data Poisoning Attack",
    "ML03": "Model Inversion Attack",
    "ML04": "Membership Inference Attack",
    "ML05": "Model Theft",
    "ML06": "AI Supply Chain Attacks",
    "ML07": "Transfer Learning Attack",
    "ML08": "Model Skewing",
    "ML09": "Output Integrity Attack",
    "ML10": "Model Poisoning",
}

#: Governance frameworks a rule can be evidence for, with a one-line description each.
CONTROL_FRAMEWORKS: dict[str, str] = {
    "NIST-AI-RMF": "NIST AI Risk Management Framework 1.0 (subcategory, e.g. MEASURE-2.7)",
    "ISO-42001": "ISO/IEC 42001:2023 Annex A control (e.g. A.7.4)",
    "EU-AI-Act": "Regulation (EU) 2024/1689 article (e.g. Art-15)",
    "NIST-SSDF": "NIST SP 800-218 Secure Software Development Framework practice (e.g. PS.3.1)",
}

_CWE_RE = re.compile(r"^CWE-\d{1,4}$")
_ATLAS_RE = re.compile(r"^AML\.T\d{4}(?:\.\d{3})?$")
_OWASP_RE = re.compile(r"^(LLM|ML)(\d{2})$")
_CONTROL_RE = re.compile(r"^([A-Za-z0-9-]+?):([A-Za-z0-9.()-]+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """One external reference of a rule, resolved to a title and a link."""

    framework: str
    """Catalogue: ``CWE``, ``OWASP-LLM-2025``, ``OWASP-ML-2023``, ``MITRE-ATLAS`` or a control framework."""
    id: str
    """The identifier inside that catalogue, for example ``CWE-502`` or ``AML.T0010.001``."""
    title: str
    """Human-readable name, where Garrison knows it; otherwise the id."""
    url: str | None
    """Where to read more, or ``None`` for catalogues without stable public pages."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One kind of problem Garrison can find."""

    id: str
    """Stable id, ``GAR-<FAMILY>-<NNN>``; never reused for another rule."""
    name: str
    """Kebab-case name of the bad thing, for example ``unsafe-pickle-global``."""
    title: str
    """One line: what was found."""
    severity: Severity
    """Default severity; a detector may raise or lower it for one finding, with a reason."""
    description: str
    """What the rule detects and why it is a problem."""
    remediation: str
    """What to do about a finding of this rule."""
    cwe: tuple[str, ...] = ()
    """CWE identifiers, ``CWE-502``."""
    owasp_llm: tuple[str, ...] = ()
    """OWASP LLM Top 10 2025 codes, ``LLM03``."""
    owasp_ml: tuple[str, ...] = ()
    """OWASP ML Top 10 2023 codes, ``ML06``."""
    atlas: tuple[str, ...] = ()
    """MITRE ATLAS technique ids, ``AML.T0010.001``."""
    controls: tuple[str, ...] = ()
    """Governance controls this rule is evidence for, ``NIST-AI-RMF:MEASURE-2.7``."""
    example: str = ""
    """A short example of what triggers the rule."""
    tags: tuple[str, ...] = field(default=())
    """Free-form tags for filtering (``supply-chain``, ``pii``)."""

    def __post_init__(self) -> None:
        problems = list(rule_problems(self))
        if problems:
            raise RegistryError(f"rule {self.id!r} is malformed: " + "; ".join(problems))

    @property
    def family(self) -> str:
        """The family part of the id: ``PKL`` for ``GAR-PKL-001``."""
        return self.id.split("-")[1]

    def references(self) -> list[Reference]:
        """Every external reference of this rule, resolved to titles and links."""
        refs: list[Reference] = []
        for cwe in self.cwe:
            number = cwe.split("-")[1]
            refs.append(
                Reference(
                    framework="CWE",
                    id=cwe,
                    title=cwe,
                    url=f"https://cwe.mitre.org/data/definitions/{number}.html",
                )
            )
        for code in self.owasp_llm:
            refs.append(
                Reference(
                    framework="OWASP-LLM-2025",
                    id=f"{code}:2025",
                    title=OWASP_LLM_2025[code],
                    url="https://genai.owasp.org/llm-top-10/",
                )
            )
        for code in self.owasp_ml:
            title = OWASP_ML_2023[code]
            slug = f"{code}_2023-{title.replace(' ', '_')}"
            refs.append(
                Reference(
                    framework="OWASP-ML-2023",
                    id=f"{code}:2023",
                    title=title,
                    url=f"https://owasp.org/www-project-machine-learning-security-top-10/docs/{slug}",
                )
            )
        for tech in self.atlas:
            refs.append(
                Reference(
                    framework="MITRE-ATLAS",
                    id=tech,
                    title=tech,
                    url=f"https://atlas.mitre.org/techniques/{tech}",
                )
            )
        for control in self.controls:
            framework, _, ident = control.partition(":")
            refs.append(Reference(framework=framework, id=ident, title=control, url=None))
        return refs


def rule_problems(rule: Rule) -> list[str]:
    """Everything wrong with a rule's metadata, as sentences. Empty when the rule is well formed."""
    problems: list[str] = []
    if not RULE_ID_RE.match(rule.id):
        problems.append(f"id must match {RULE_ID_RE.pattern}")
    if not RULE_NAME_RE.match(rule.name):
        problems.append(f"name {rule.name!r} must be kebab-case with at least two words")
    if not isinstance(rule.severity, Severity):
        problems.append("severity must be a Severity")
    for attr in ("title", "description", "remediation"):
        if not getattr(rule, attr).strip():
            problems.append(f"{attr} is empty")
    problems.extend(f"{c!r} is not a CWE id" for c in rule.cwe if not _CWE_RE.match(c))
    problems.extend(f"{t!r} is not a MITRE ATLAS technique id" for t in rule.atlas if not _ATLAS_RE.match(t))
    problems.extend(
        f"{c!r} is not an OWASP LLM Top 10 2025 code" for c in rule.owasp_llm if c not in OWASP_LLM_2025
    )
    problems.extend(
        f"{c!r} is not an OWASP ML Top 10 2023 code" for c in rule.owasp_ml if c not in OWASP_ML_2023
    )
    for control in rule.controls:
        match = _CONTROL_RE.match(control)
        if not match or match.group(1) not in CONTROL_FRAMEWORKS:
            problems.append(
                f"control {control!r} must be FRAMEWORK:ID with FRAMEWORK one of "
                + ", ".join(CONTROL_FRAMEWORKS)
            )
    if not (rule.cwe or rule.owasp_llm or rule.owasp_ml or rule.atlas):
        problems.append("needs at least one reference (CWE, OWASP LLM/ML Top 10 or MITRE ATLAS)")
    return problems


def rule_markdown(rule: Rule) -> str:
    """The rule's documentation page, generated from its metadata (ruff's fixed sections)."""
    lines = [
        f"# {rule.id} {rule.name}",
        "",
        f"**{rule.title}**",
        "",
        f"Default severity: **{rule.severity.label}**",
        "",
        "## What it does",
        "",
        rule.description.strip(),
        "",
    ]
    if rule.example:
        lines += ["## Example", "", rule.example.strip(), ""]
    lines += ["## What to do", "", rule.remediation.strip(), "", "## References", ""]
    for ref in rule.references():
        label = ref.id if ref.framework in ("CWE", "MITRE-ATLAS") else f"{ref.framework} {ref.id}"
        if ref.title not in (ref.id, f"{ref.framework}:{ref.id}"):
            label = f"{label} {ref.title}"
        lines.append(f"- [{label}]({ref.url})" if ref.url else f"- {label}")
    return "\n".join(lines) + "\n"
