"""Rules for model extraction (GAR-EXT-*), and the findings an extraction assessment raises.

A model extraction attack (OWASP ML05, Model Theft; MITRE ATLAS AML.T0024.002, Extract ML Model, through
AML.T0040, ML Model Inference API Access) queries a model and trains a copy on its answers. The copy
lets the attacker use the model without paying for it, and serves as a white-box stand-in to craft
adversarial inputs that transfer to the original. :func:`extraction_findings` turns an
:class:`~garrison.assess.extraction.ExtractionReport` into findings with the thresholds of
:class:`ExtractionThresholds`:

- GAR-EXT-001 (:data:`MODEL_EXTRACTABLE`), once per report, when a student trained on at most
  ``max_queries`` queries agrees with the victim on at least ``max_fidelity`` of the test inputs. The
  evidence names the cheapest such point, so the fingerprint keeps from one run to the next (metric
  name ``fidelity@queries<=N``) while the values move.

Like :mod:`garrison.assess.rules`, the module imports only :mod:`garrison.core` at run time (the report
type only for type checking), so registering its rules does not pull in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison.core.errors import ConfigError
from garrison.core.evidence import Metric
from garrison.core.findings import Finding
from garrison.core.rules import Rule
from garrison.core.severity import Severity

if TYPE_CHECKING:
    from garrison.assess.extraction import ExtractionReport
    from garrison.core.assets import Asset
    from garrison.core.config import Settings

__all__ = ["DETECTOR", "EXT_RULES", "MODEL_EXTRACTABLE", "ExtractionThresholds", "extraction_findings"]

DETECTOR = "assess.extraction"
"""The detector name findings of an extraction assessment carry."""

MODEL_EXTRACTABLE = Rule(
    id="GAR-EXT-001",
    name="model-extractable-with-few-queries",
    title="A copy of the model can be stolen with few queries: fidelity is above the policy",
    severity=Severity.MEDIUM,
    description=(
        "A copycat attack — query the model on natural unlabeled inputs and train a student on its "
        "answers — produced a model that agrees with the victim on at least the policy's share of "
        "held-out inputs (assess-max-extraction-fidelity, default 0.9) with no more than the policy's "
        "number of queries (assess-extraction-queries, default 1,000). Anyone with that much query "
        "access can reproduce the model's behaviour, use it without the owner's controls, and craft "
        "adversarial inputs on the copy that transfer to the original. The measurement states what "
        "the model exposed (probabilities, top-K or the label only); a finding with probabilities "
        "exposed that disappears with labels only shows the output control that helps."
    ),
    remediation=(
        "Expose as little as the use allows: return labels (or top-1 without scores) rather than "
        "probability vectors, or round the scores — the gateway's output controls do this — and "
        "measure again. Rate-limit and quota queries per principal, watch for principals whose "
        "queries cover the input space unusually broadly, and keep the route authenticated. Where "
        "the model is valuable, consider watermarking it so a stolen copy can be recognised."
    ),
    owasp_ml=("ML05",),
    atlas=("AML.T0024.002", "AML.T0040"),
    controls=("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.6.2.4", "EU-AI-Act:Art-15"),
    example=(
        "model.pt: a copycat student reached 94.2% fidelity with 500 queries (probabilities "
        "exposed), at or above 90% within 1,000 queries"
    ),
    tags=("model", "extraction", "theft"),
)

EXT_RULES: tuple[Rule, ...] = (MODEL_EXTRACTABLE,)
"""Every rule of the extraction assessment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionThresholds:
    """The policy: how hard a model must be to copy before an extraction assessment raises a finding."""

    max_fidelity: float = 0.9
    """Fidelity (0..1) at or above this within ``max_queries`` queries is a GAR-EXT-001 finding."""
    max_queries: int = 1000
    """Query budget at which (and below which) fidelity is judged; larger budgets are reported only."""

    def __post_init__(self) -> None:
        f = self.max_fidelity
        if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or not 0 <= f <= 1:
            raise ConfigError(f"extraction threshold max_fidelity must be from 0 to 1, not {f!r}")
        q = self.max_queries
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            raise ConfigError(f"extraction threshold max_queries must be a positive whole number, not {q!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {"max_fidelity": self.max_fidelity, "max_queries": self.max_queries}

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractionThresholds:
        """The thresholds of the settings (``assess-max-extraction-fidelity``,
        ``assess-extraction-queries``; the ``[assess]`` table of ``garrison.toml``)."""
        return cls(
            max_fidelity=settings.assess_max_extraction_fidelity,
            max_queries=settings.assess_extraction_queries,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ExtractionThresholds:
        """Thresholds from a mapping with the field names; unknown keys are errors."""
        known = {"max_fidelity", "max_queries"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown extraction threshold(s): {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        return cls(**{k: data[k] for k in known if k in data})


def extraction_findings(
    report: ExtractionReport, asset: Asset, thresholds: ExtractionThresholds | None = None
) -> list[Finding]:
    """GAR-EXT-001 when some budget of at most ``max_queries`` reaches ``max_fidelity``; else nothing."""
    policy = thresholds or ExtractionThresholds()
    judged = [p for p in report.points if p.queries <= policy.max_queries]
    hits = [p for p in judged if p.fidelity >= policy.max_fidelity]
    if not hits:
        return []
    first = min(hits, key=lambda p: p.queries)
    best = max(judged, key=lambda p: (p.fidelity, -p.queries))
    curve = ", ".join(f"{p.queries:,}: {p.fidelity:.1%}" for p in report.points)
    message = (
        f"a copycat student reached {first.fidelity:.1%} fidelity with {first.queries:,} queries "
        f"({report.output} exposed; targets: {report.conversion}), at or above the policy's "
        f"{policy.max_fidelity:.0%} within {policy.max_queries:,} queries; best {best.fidelity:.1%} at "
        f"{best.queries:,}; student accuracy {first.accuracy:.1%} vs the victim's "
        f"{report.victim_accuracy:.1%} ({report.test_samples:,} test inputs); fidelity by queries: {curve}"
    )
    return [
        Finding.create(
            rule=MODEL_EXTRACTABLE,
            asset=asset,
            message=message,
            detector=DETECTOR,
            evidence=(
                Metric(
                    name=f"fidelity@queries<={policy.max_queries}",
                    value=round(best.fidelity, 6),
                    threshold=policy.max_fidelity,
                    comparison=">=",
                ),
                Metric(name=f"queries_to_fidelity>={policy.max_fidelity:g}", value=float(first.queries)),
            ),
        )
    ]
