"""What ``garrison assess model`` writes: the console tables, the JSON details, the HTML curves.

The HTML report is the standard one (:func:`garrison.report.render`) with sections added before the
end of its main element: the robust-accuracy curves, the membership ROC curves and the extraction
fidelity curve as inline SVG (no script, no fetch, so the page's Content-Security-Policy still holds),
each with a table of its runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.assess.extraction import ExtractionReport
    from garrison.assess.extraction_rules import ExtractionThresholds
    from garrison.assess.findings import EvasionThresholds
    from garrison.assess.inference_rules import AttributeThresholds, InversionThresholds
    from garrison.assess.inversion import InversionReport
    from garrison.assess.privacy import MembershipReport
    from garrison.assess.privacy_attribute import AttributeInferenceReport
    from garrison.assess.privacy_rules import MembershipThresholds
    from garrison.assess.results import EvasionReport, ModelInfo
    from garrison.core.config import LoadedSettings
    from garrison.core.results import ScanReport, SkippedRecord


def eps_text(eps: float | None) -> str:
    """``ε=0.1``, or ``minimal`` for a minimal-perturbation attack."""
    return "minimal" if eps is None else f"ε={eps:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """What one ``garrison assess model`` run measured, part by part, with the policy it was judged by."""

    model: ModelInfo
    """The model assessed."""
    evasion: EvasionReport | None = None
    """The evasion attacks' results, when ``--attacks`` named evasion."""
    privacy: MembershipReport | None = None
    """The membership attacks' results, when ``--attacks`` named privacy."""
    attribute: AttributeInferenceReport | None = None
    """The attribute-inference attacks' results, when ``--attacks`` named attribute."""
    inversion: InversionReport | None = None
    """The model-inversion reconstructions, when ``--attacks`` named inversion."""
    extraction: ExtractionReport | None = None
    """The copycat attack's curve, when ``--attacks`` named extraction."""
    evasion_policy: EvasionThresholds
    """Thresholds of the evasion findings."""
    privacy_policy: MembershipThresholds
    """Threshold of the membership finding."""
    extraction_policy: ExtractionThresholds
    """Thresholds of the extraction finding."""
    attribute_policy: AttributeThresholds
    """Thresholds of the attribute-inference findings."""
    inversion_policy: InversionThresholds
    """Threshold of the model-inversion finding."""
    clean_accuracy: float
    """The model's accuracy on the samples the evasion attacks use (or on all of ``--data``)."""
    samples: int
    """Samples the evasion attacks use (or rows of ``--data``)."""
    notes: tuple[str, ...] = ()
    """Notes on the inputs (inferred range, dropped columns, …); each part carries its own too."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The parts that ran, in order."""
        parts = (
            ("evasion", self.evasion), ("privacy", self.privacy), ("attribute", self.attribute),
            ("inversion", self.inversion), ("extraction", self.extraction),
        )  # fmt: skip
        return tuple(name for name, part in parts if part is not None)


def console_text(assessment: Assessment, target: str, findings: int, skipped: Sequence[SkippedRecord]) -> str:
    """The console report: the model, then each part's table, then skipped runs, notes and the verdict."""
    from garrison.cli.assess_leaks import attribute_text, extraction_text, inversion_text, privacy_text
    from garrison.report.common import printable

    m = assessment.model
    lines = [
        f"{printable(target)}: {m.name} ({m.framework}, {m.output_kind}, {m.n_classes} classes, input "
        f"{'x'.join(map(str, m.input_shape))}, range [{m.valid_range[0]:g}, {m.valid_range[1]:g}]); "
        f"{assessment.samples:,} samples, clean accuracy {assessment.clean_accuracy:.1%}",
    ]
    notes = list(assessment.notes)
    if assessment.evasion is not None:
        lines += _evasion_lines(assessment.evasion, assessment.evasion_policy)
        notes += assessment.evasion.notes
    if assessment.privacy is not None:
        lines += privacy_text(assessment.privacy, assessment.privacy_policy)
        notes += assessment.privacy.notes
    if assessment.attribute is not None:
        lines += attribute_text(assessment.attribute, assessment.attribute_policy)
        notes += assessment.attribute.notes
    if assessment.inversion is not None:
        lines += inversion_text(assessment.inversion, assessment.inversion_policy)
        notes += assessment.inversion.notes
    if assessment.extraction is not None:
        lines += extraction_text(assessment.extraction, assessment.extraction_policy)
        notes += assessment.extraction.notes
    lines += [f"skipped: {printable(s.locator)}: {printable(s.reason)}" for s in skipped]
    lines += [f"note: {printable(n)}" for n in dict.fromkeys(notes)]
    rules = "/".join(
        r for r, k in (
            ("GAR-ADV", "evasion"), ("GAR-MIA", "privacy"), ("GAR-AIN", "attribute"),
            ("GAR-INV", "inversion"), ("GAR-EXT", "extraction"),
        ) if k in assessment.kinds
    )  # fmt: skip
    lines.append(
        f"\nFLAGGED: {findings} finding{'s' if findings != 1 else ''} ({rules})"
        if findings
        else "\nOK: within the policy"
    )
    return "\n".join(lines)


def _evasion_lines(report: EvasionReport, policy: EvasionThresholds) -> list[str]:
    """Robust accuracy per attack and epsilon, then the minimal-perturbation attacks, then the policy."""
    from garrison.assess.findings import judged_epsilons

    lines: list[str] = []
    epsilons = sorted({r.epsilon for r in report.results if r.epsilon is not None})
    bounded = list(dict.fromkeys(r.attack for r in report.results if r.epsilon is not None))
    judged = judged_epsilons(report, policy)
    if bounded:
        lines += [
            "",
            "robust accuracy",
            f"  {'attack':<14}" + "".join(f"{'ε=' + format(e, 'g'):>10}" for e in epsilons),
        ]
        for attack in bounded:
            cells = []
            for e in epsilons:
                hit = [r for r in report.results if r.attack == attack and r.epsilon == e]
                low = hit and e in judged and hit[0].robust_accuracy < policy.min_robust_accuracy
                mark = "*" if low else ""
                cells.append(f"{(f'{hit[0].robust_accuracy:.1%}' + mark) if hit else '-':>10}")
            lines.append(f"  {attack:<14}" + "".join(cells))
    minimal = [r for r in report.results if r.epsilon is None]
    if minimal:
        lines += ["", f"  {'attack':<14}{'success':>10}{'median L2':>12}{'queries/sample':>16}"]
        for r in minimal:
            median = "-" if r.median_perturbation is None else f"{r.median_perturbation:.3g}"
            lines.append(f"  {r.attack:<14}{r.success_rate:>10.1%}{median:>12}{r.queries_per_sample:>16,.0f}")
    lines.append(
        f"  policy: robust accuracy at ε≤{policy.epsilon:g} at least {policy.min_robust_accuracy:.0%} "
        f"(* below), minimal-attack median L2 at least {policy.min_median_l2:g}"
    )
    return lines


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def json_details(
    assessment: Assessment, data: dict[str, Any], skipped: Sequence[SkippedRecord]
) -> dict[str, Any]:
    """The ``assessment`` object of the JSON report (the standard report goes beside it).

    ``kinds`` lists the parts that ran; each has its own object (``evasion``: thresholds, results and
    notes; ``privacy`` and ``extraction``: the library's report with the thresholds beside it).
    """
    body: dict[str, Any] = {
        "kinds": list(assessment.kinds),
        "model": asdict(assessment.model),
        "data": data,
        "clean_accuracy": assessment.clean_accuracy,
        "skipped": [{"attack": s.locator, "reason": s.reason} for s in skipped],
        "notes": list(assessment.notes),
    }
    if assessment.evasion is not None:
        results = []
        for r in assessment.evasion.results:
            row = {k: _finite(v) for k, v in asdict(r).items() if k != "parameters"}
            row["parameters"] = {k: _finite(v) for k, v in r.parameters}
            results.append(row)
        body["evasion"] = {
            "thresholds": assessment.evasion_policy.to_dict(),
            "results": results,
            "notes": list(assessment.evasion.notes),
        }
    if assessment.privacy is not None:
        body["privacy"] = assessment.privacy.to_dict() | {"thresholds": assessment.privacy_policy.to_dict()}
    if assessment.attribute is not None:
        body["attribute"] = assessment.attribute.to_dict() | {
            "thresholds": assessment.attribute_policy.to_dict()
        }
    if assessment.inversion is not None:
        body["inversion"] = assessment.inversion.to_dict(images=False) | {
            "thresholds": assessment.inversion_policy.to_dict()
        }
    if assessment.extraction is not None:
        body["extraction"] = assessment.extraction.to_dict() | {
            "thresholds": assessment.extraction_policy.to_dict()
        }
    return {"assessment": body}


_COLOURS = ("#1d4ed8", "#e0561b", "#15803d", "#9333ea", "#b4232a", "#0e7490", "#a16207", "#db2777")


def plot_sections(assessment: Assessment) -> str:
    """The HTML sections of every part that ran: robust-accuracy curves, ROC curves, extraction curve."""
    from garrison.cli.assess_leaks import (
        attribute_section,
        extraction_section,
        inversion_section,
        privacy_section,
    )

    parts = []
    if assessment.evasion is not None:
        parts.append(plot_section(assessment.evasion, assessment.evasion_policy))
    if assessment.privacy is not None:
        parts.append(privacy_section(assessment.privacy, assessment.privacy_policy))
    if assessment.attribute is not None:
        parts.append(attribute_section(assessment.attribute, assessment.attribute_policy))
    if assessment.inversion is not None:
        parts.append(inversion_section(assessment.inversion, assessment.inversion_policy))
    if assessment.extraction is not None:
        parts.append(extraction_section(assessment.extraction, assessment.extraction_policy))
    return "".join(parts)


def plot_section(report: EvasionReport, policy: EvasionThresholds) -> str:
    """An HTML section with the robust-accuracy curves as inline SVG (no script, no fetch)."""
    from html import escape

    w, h, left, bottom, top, right = 560, 300, 50, 36, 14, 150
    bounded = list(dict.fromkeys(r.attack for r in report.results if r.epsilon is not None))
    if not bounded:
        return ""
    clean = report.results[0].clean_accuracy
    xmax = max(policy.epsilon, *(r.epsilon for r in report.results if r.epsilon is not None))

    def px(e: float) -> float:
        return left + (w - left - right) * e / xmax

    def py(a: float) -> float:
        return top + (h - top - bottom) * (1 - a)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="robust accuracy against epsilon" fill="currentColor" '
        'style="max-width:100%;font:12px sans-serif">',
        f'<line x1="{left}" y1="{py(0)}" x2="{px(xmax)}" y2="{py(0)}" stroke="currentColor"/>',
        f'<line x1="{left}" y1="{py(0)}" x2="{left}" y2="{py(1)}" stroke="currentColor"/>',
    ]
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{left - 6}" y="{py(a) + 4:.1f}" text-anchor="end">{a:.0%}</text>')
    for e in sorted({0.0, *(r.epsilon for r in report.results if r.epsilon is not None)}):
        parts.append(f'<text x="{px(e):.1f}" y="{h - bottom + 16}" text-anchor="middle">{e:g}</text>')
    parts.append(f'<text x="{(left + w - right) / 2:.1f}" y="{h - 4}" text-anchor="middle">ε</text>')
    y_min = py(policy.min_robust_accuracy)
    parts.append(
        f'<line x1="{left}" y1="{y_min:.1f}" x2="{px(xmax):.1f}" y2="{y_min:.1f}" stroke="#b4232a" '
        f'stroke-dasharray="5 4"><title>policy minimum {policy.min_robust_accuracy:.0%}</title></line>'
    )
    parts.append(
        f'<line x1="{px(policy.epsilon):.1f}" y1="{py(0)}" x2="{px(policy.epsilon):.1f}" y2="{py(1)}" '
        f'stroke="#b4232a" stroke-dasharray="2 4"><title>policy ε {policy.epsilon:g}</title></line>'
    )
    for i, attack in enumerate(bounded):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [(0.0, clean), *report.curve(attack)]
        path = " ".join(f"{px(e):.1f},{py(a):.1f}" for e, a in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for e, a in points[1:]:
            parts.append(
                f'<circle cx="{px(e):.1f}" cy="{py(a):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(attack)} ε={e:g}: {a:.1%}</title></circle>"
            )
        ly = top + 16 * i + 6
        parts.append(
            f'<line x1="{w - right + 12}" y1="{ly}" x2="{w - right + 32}" y2="{ly}" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        parts.append(f'<text x="{w - right + 38}" y="{ly + 4}">{escape(attack)}</text>')
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>{escape(r.attack)}</td><td>{escape(eps_text(r.epsilon))}</td>"
        f"<td>{r.robust_accuracy:.1%}</td><td>{r.success_rate:.1%}</td>"
        f"<td>{'-' if r.median_perturbation is None else format(r.median_perturbation, '.3g')}</td>"
        f"<td>{r.seconds:.2f}</td></tr>"
        for r in report.results
    )
    return (
        '<section class="assessment"><div class="banner neutral"><h2>Robust accuracy</h2>'
        f"<p>Accuracy under attack against the perturbation budget ε (ε=0 is the clean accuracy, "
        f"{clean:.1%}); dashed: the policy's minimum {policy.min_robust_accuracy:.0%} "
        f"at ε≤{policy.epsilon:g}.</p>"
        + "".join(parts)
        + "<table><thead><tr><th>attack</th><th>budget</th><th>robust accuracy</th><th>success rate</th>"
        "<th>median perturbation</th><th>seconds</th></tr></thead><tbody>"
        + rows
        + "</tbody></table></div></section>\n"
    )


def publish_assessment(
    loaded: LoadedSettings,
    scan: ScanReport,
    output: Path | None,
    *,
    console: str,
    details: dict[str, Any],
    plots: Callable[[], str],
) -> None:
    """Like :func:`garrison.cli.common.publish`, with the curves added to the HTML report."""
    from garrison.cli.common import emit, open_store, publish

    if loaded.settings.format != "html":
        publish(loaded, scan, output, console=console, details=details)
        return
    from garrison.report import render

    if loaded.settings.store:
        with open_store(loaded) as st:
            st.save_report(scan)
    page = render(scan, "html")
    anchor = "</main>" if "</main>" in page else "</body>"
    head, _, tail = page.rpartition(anchor)
    emit(head + plots() + anchor + tail, output)
