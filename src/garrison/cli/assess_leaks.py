"""The privacy and extraction parts of ``garrison assess model``: data split, runs, console and curves.

Privacy (membership inference) needs the records the model was trained on (``--train-data``): a
random subset of them are the members; the held-out ``--data`` is shuffled once and split in two, one
half the non-members, the other the population the attacker trains shadow models on. Extraction uses
``--data`` alone: 30% of it (seeded) is the test set fidelity is measured on, the rest the
attacker's query pool. Both report through the same console text, JSON object and HTML page as the
evasion attacks (:mod:`garrison.cli.assess_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from garrison.assess.extraction import ExtractionReport
    from garrison.assess.extraction_rules import ExtractionThresholds
    from garrison.assess.inference_rules import AttributeThresholds, InversionThresholds
    from garrison.assess.inversion import InversionReport
    from garrison.assess.privacy import MembershipReport
    from garrison.assess.privacy_attribute import AttributeInferenceReport
    from garrison.assess.privacy_rules import MembershipThresholds

EXTRACTION_TEST_SHARE = 0.3
"""Share of ``--data`` held out to measure a stolen copy's fidelity; the rest is the query pool."""
MIN_SPLIT = 10
"""Fewest rows each side of a split may have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyPlan:
    """How ``assess model`` runs membership inference."""

    attacks: tuple[str, ...]
    """Membership attacks, in :data:`garrison.assess.privacy.ATTACKS` order."""
    shadows: int
    """Shadow models trained (shared by the shadow-based attacks)."""
    max_members: int
    """Most members (and non-members) evaluated."""
    shadow_epochs: int
    """Epochs of each shadow of a torch module (Garrison's generic recipe)."""
    seed: int
    """Seeds the split, the shadows and their training."""


def split_membership(
    train: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray], limit: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Members, non-members and population: balanced, at most ``limit`` of each, seeded."""
    import numpy as np

    from garrison.core.errors import UsageError

    rng = np.random.default_rng(seed)
    half = len(held_out[0]) // 2
    n = min(limit, len(train[0]), half)
    if n < MIN_SPLIT:
        raise UsageError(
            f"membership inference needs at least {MIN_SPLIT} training records and {2 * MIN_SPLIT} "
            f"held-out records; got {len(train[0])} in --train-data and {len(held_out[0])} in --data"
        )
    pick = rng.choice(len(train[0]), n, replace=False)
    order = rng.permutation(len(held_out[0]))
    outside, population = order[:n], order[half:]
    return (
        (train[0][pick], train[1][pick]),
        (held_out[0][outside], held_out[1][outside]),
        (held_out[0][population], held_out[1][population]),
    )


def run_privacy(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
    plan: PrivacyPlan,
) -> MembershipReport:
    """Membership inference against ``model``: members from ``train``, the rest from ``held_out``."""
    from garrison.assess.adapters import SklearnModel, as_model
    from garrison.assess.privacy import run_membership, torch_train_fn

    members, non_members, population = split_membership(train, held_out, plan.max_members, plan.seed)
    adapter = as_model(model)
    train_fn = None
    if not isinstance(adapter, SklearnModel) and any(a != "loss" for a in plan.attacks):
        train_fn = torch_train_fn(model, epochs=plan.shadow_epochs, seed=plan.seed)
    report = run_membership(
        model, members, non_members, population, attacks=plan.attacks, shadows=plan.shadows,
        train_fn=train_fn, seed=plan.seed, shadow_size=len(train[0]),
    )  # fmt: skip
    if train_fn is not None:
        from dataclasses import replace

        recipe = getattr(train_fn, "__name__", "generic")
        note = (
            f"shadow models of the torch module: {recipe} (Garrison's generic recipe; LiRA is "
            "strongest with shadows trained like the target: use garrison.assess.run_membership "
            "with your own train_fn)"
        )
        report = replace(report, notes=(*report.notes, note))
    return report


def split_extraction(
    x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The attacker's query pool and the held-out test set (``x, y``), seeded."""
    import numpy as np

    from garrison.core.errors import UsageError

    order = np.random.default_rng(seed + 1).permutation(len(x))
    n_test = round(len(x) * EXTRACTION_TEST_SHARE)
    if n_test < MIN_SPLIT or len(x) - n_test < MIN_SPLIT:
        raise UsageError(
            f"extraction needs at least {int(MIN_SPLIT / EXTRACTION_TEST_SHARE) + 1} rows in --data"
        )
    test, pool = order[:n_test], order[n_test:]
    return x[pool], (x[test], y[test])


def run_stealing(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    budgets: Sequence[int],
    expose: str,
    max_queries: int | None,
    seed: int,
) -> ExtractionReport:
    """The copycat attack on ``model`` with the pool and test set split from ``x, y``."""
    from garrison.assess.extraction import run_extraction

    pool, (tx, ty) = split_extraction(x, y, seed)
    return run_extraction(
        model, pool, tx, ty, budgets=budgets, output=expose, max_queries=max_queries, seed=seed
    )


# --- console ------------------------------------------------------------------------------------------


def privacy_text(report: MembershipReport, policy: MembershipThresholds) -> list[str]:
    """Console lines: accuracy on members and non-members, then one row per membership attack."""
    lines = [
        "",
        f"membership inference ({report.members:,} members, {report.non_members:,} non-members, "
        f"{report.population:,} population rows); accuracy {report.member_accuracy:.1%} on members, "
        f"{report.non_member_accuracy:.1%} on non-members",
        f"  {'attack':<14}{'AUC':>8}{'bal. acc.':>11}{'TPR@1%FPR':>11}{'TPR@0.1%FPR':>13}{'shadows':>9}",
    ]
    for r in report.results:
        mark = "*" if r.auc > policy.max_auc else ""
        lines.append(
            f"  {r.attack:<14}{f'{r.auc:.3f}{mark}':>8}{r.balanced_accuracy:>11.1%}"
            f"{r.tpr_at_1pct_fpr:>11.1%}{r.tpr_at_0_1pct_fpr:>13.1%}{r.shadow_models:>9}"
        )
    lines.append(f"  policy: membership AUC at most {policy.max_auc:g} (* above)")
    return lines


def extraction_text(report: ExtractionReport, policy: ExtractionThresholds) -> list[str]:
    """Console lines: what the attacker saw, then fidelity and accuracy per query budget."""
    lines = [
        "",
        f"extraction (copycat: {report.output} exposed, pool {report.pool_size:,}, "
        f"{report.test_samples:,} test inputs, victim accuracy {report.victim_accuracy:.1%})",
        f"  {'queries':>9}{'fidelity':>10}{'accuracy':>10}",
    ]
    for p in report.points:
        hit = p.queries <= policy.max_queries and p.fidelity >= policy.max_fidelity
        lines.append(f"  {p.queries:>9,}{f'{p.fidelity:.1%}' + ('*' if hit else ''):>10}{p.accuracy:>10.1%}")
    lines.append(
        f"  policy: fidelity below {policy.max_fidelity:.0%} within {policy.max_queries:,} queries "
        "(* at or above)"
    )
    return lines


# --- HTML -----------------------------------------------------------------------------------------------

_W, _H, _LEFT, _BOTTOM, _TOP, _RIGHT = 560, 300, 50, 36, 14, 150
_COLOURS = ("#1d4ed8", "#e0561b", "#15803d", "#9333ea", "#b4232a", "#0e7490")


def _svg(
    label: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    x_axis: tuple[str, float, Sequence[float], str],
    extra: Sequence[str] = (),
) -> str:
    """A line chart on [0, xmax] × [0, 1] as inline SVG: ``(name, points)`` per series.

    ``x_axis`` is the axis title, its maximum, its tick values and their format (``"%"`` or ``","``).
    ``extra`` holds finished SVG elements (guides) drawn under the series, placed by the caller with
    the coordinates of :func:`_scale`.
    """
    title, xmax, ticks, tick_format = x_axis
    px, py = _scale(xmax)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{escape(label)}" fill="currentColor" '
        'style="max-width:100%;font:12px sans-serif">',
        f'<line x1="{_LEFT}" y1="{py(0)}" x2="{px(xmax)}" y2="{py(0)}" stroke="currentColor"/>',
        f'<line x1="{_LEFT}" y1="{py(0)}" x2="{_LEFT}" y2="{py(1)}" stroke="currentColor"/>',
    ]
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{_LEFT - 6}" y="{py(a) + 4:.1f}" text-anchor="end">{a:.0%}</text>')
    for t in ticks:
        text = f"{t:.0%}" if tick_format == "%" else f"{t:,.0f}"
        parts.append(f'<text x="{px(t):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">{text}</text>')
    parts.append(
        f'<text x="{(_LEFT + _W - _RIGHT) / 2:.1f}" y="{_H - 4}" text-anchor="middle">{escape(title)}</text>'
    )
    parts.extend(extra)
    for i, (name, points) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        ly = _TOP + 16 * i + 6
        parts.append(
            f'<line x1="{_W - _RIGHT + 12}" y1="{ly}" x2="{_W - _RIGHT + 32}" y2="{ly}" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        parts.append(f'<text x="{_W - _RIGHT + 38}" y="{ly + 4}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _scale(xmax: float) -> tuple[Any, Any]:
    def px(v: float) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * v / xmax

    def py(v: float) -> float:
        return _TOP + (_H - _TOP - _BOTTOM) * (1 - v)

    return px, py


def privacy_section(report: MembershipReport, policy: MembershipThresholds) -> str:
    """An HTML section: the ROC curve of every membership attack and the table of its metrics."""
    px, py = _scale(1.0)
    diagonal = (
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1):.1f}" y2="{py(1):.1f}" stroke="currentColor" '
        'stroke-dasharray="3 4"><title>guessing (AUC 0.5)</title></line>'
    )
    series = [(f"{r.attack} (AUC {r.auc:.2f})", r.roc) for r in report.results]
    chart = _svg(
        "membership inference ROC curves", series, ("false-positive rate", 1.0, (0, 0.25, 0.5, 0.75, 1), "%"),
        [diagonal],
    )  # fmt: skip
    rows = "".join(
        f"<tr><td>{escape(r.attack)}</td><td>{r.auc:.3f}</td><td>{r.balanced_accuracy:.1%}</td>"
        f"<td>{r.tpr_at_1pct_fpr:.1%}</td><td>{r.tpr_at_0_1pct_fpr:.1%}</td><td>{r.shadow_models}</td>"
        f"<td>{r.seconds:.2f}</td></tr>"
        for r in report.results
    )
    return (
        '<section class="assessment"><div class="banner neutral"><h2>Membership inference</h2>'
        f"<p>ROC curves of telling the model's training records ({report.members:,}) from records it never "
        f"saw ({report.non_members:,}); the diagonal is guessing. Policy: AUC at most {policy.max_auc:g}. "
        f"Accuracy {report.member_accuracy:.1%} on members, {report.non_member_accuracy:.1%} on "
        "non-members.</p>"
        + chart
        + "<table><thead><tr><th>attack</th><th>AUC</th><th>balanced accuracy</th><th>TPR at 1% FPR</th>"
        "<th>TPR at 0.1% FPR</th><th>shadow models</th><th>seconds</th></tr></thead><tbody>"
        + rows
        + "</tbody></table></div></section>\n"
    )


def extraction_section(report: ExtractionReport, policy: ExtractionThresholds) -> str:
    """An HTML section: fidelity and accuracy of the stolen copy against the number of queries."""
    if not report.points:
        return ""
    xmax = float(max(report.points[-1].queries, policy.max_queries))
    px, py = _scale(xmax)
    guides = [
        f'<line x1="{_LEFT}" y1="{py(policy.max_fidelity):.1f}" x2="{px(xmax):.1f}" '
        f'y2="{py(policy.max_fidelity):.1f}" stroke="#b4232a" stroke-dasharray="5 4">'
        f"<title>policy fidelity {policy.max_fidelity:.0%}</title></line>",
        f'<line x1="{px(policy.max_queries):.1f}" y1="{py(0)}" x2="{px(policy.max_queries):.1f}" '
        f'y2="{py(1)}" stroke="#b4232a" stroke-dasharray="2 4"><title>policy queries '
        f"{policy.max_queries:,}</title></line>",
    ]
    ticks = sorted({0, *(p.queries for p in report.points)})
    series = [
        ("fidelity", [(float(q), f) for q, f in report.curve()]),
        ("student accuracy", [(float(q), a) for q, a in report.accuracy_curve()]),
    ]
    chart = _svg("extraction fidelity against queries", series, ("queries", xmax, ticks, ","), guides)
    rows = "".join(
        f"<tr><td>{p.queries:,}</td><td>{p.fidelity:.1%}</td><td>{p.accuracy:.1%}</td><td>{p.seconds:.2f}</td></tr>"
        for p in report.points
    )
    return (
        '<section class="assessment"><div class="banner neutral"><h2>Model extraction</h2>'
        f"<p>A copycat student trained on the model's answers ({escape(report.output)} exposed; "
        f"{escape(report.conversion)}): its agreement with the model (fidelity) and its accuracy on "
        f"{report.test_samples:,} held-out inputs, by the number of queries. Victim accuracy "
        f"{report.victim_accuracy:.1%}. Dashed: the policy, fidelity below {policy.max_fidelity:.0%} "
        f"within {policy.max_queries:,} queries.</p>"
        + chart
        + "<table><thead><tr><th>queries</th><th>fidelity</th><th>student accuracy</th><th>seconds</th>"
        "</tr></thead><tbody>" + rows + "</tbody></table></div></section>\n"
    )


# --- attribute inference and model inversion ------------------------------------------------------------


def run_attribute(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
    sensitive: int,
    plan: PrivacyPlan,
) -> AttributeInferenceReport:
    """Attribute inference of column ``sensitive``: members from ``train``, the rest from ``held_out``
    (half the non-members, half the attacker's auxiliary records), as for membership inference."""
    from garrison.assess.privacy_attribute import run_attribute_inference
    from garrison.core.errors import UsageError

    if train[0].ndim != 2:
        raise UsageError(
            f"--attacks attribute needs tabular rows, and these inputs have shape {train[0].shape[1:]}"
        )
    if not 0 <= sensitive < train[0].shape[1]:
        raise UsageError(f"--sensitive {sensitive}: the rows have columns 0 to {train[0].shape[1] - 1}")
    members, non_members, auxiliary = split_membership(train, held_out, plan.max_members, plan.seed)
    return run_attribute_inference(
        model, members, non_members, auxiliary, sensitive=sensitive, seed=plan.seed
    )


def run_inversion(
    model: Any, reference: tuple[np.ndarray, np.ndarray], bounds: tuple[float, float], steps: int, seed: int
) -> InversionReport:
    """MI-Face on every class, scored against the class means of ``reference`` (``--data``)."""
    shape = reference[0].shape[1:]
    image = shape[1:] if len(shape) == 3 and shape[0] == 1 else None  # one-channel images as H×W
    from garrison.assess.inversion import run_model_inversion

    return run_model_inversion(
        model, reference=reference, valid_range=bounds, image_shape=image, steps=steps, seed=seed
    )


def attribute_text(report: AttributeInferenceReport, policy: AttributeThresholds) -> list[str]:
    """Console lines: the column, then accuracy and advantage per attack on members and non-members."""
    lines = [
        "",
        f"attribute inference (column {report.sensitive_column}, {report.kind}, {len(report.values)} values; "
        f"{report.members:,} members, {report.non_members:,} non-members, {report.auxiliary:,} auxiliary)",
        f"  {'attack':<20}{'members':>9}{'advantage':>11}{'non-members':>13}{'advantage':>11}",
    ]
    for r in report.results:
        high = r.uses_model and max(r.member_advantage, r.non_member_advantage) > policy.max_advantage
        advantage = f"{r.member_advantage:+.2f}" + ("*" if high else "")
        lines.append(
            f"  {r.attack:<20}{r.member_accuracy:>9.1%}{advantage:>11}"
            f"{r.non_member_accuracy:>13.1%}{r.non_member_advantage:>+11.2f}"
        )
    lines.append(
        f"  policy: advantage over the baselines at most {policy.max_advantage:+.2f} (* above), member gap "
        f"at most {policy.max_member_gap:.2f}"
    )
    return lines


def inversion_text(report: InversionReport, policy: InversionThresholds) -> list[str]:
    """Console lines: how many class reconstructions are recognisably their class."""
    rate = "-" if report.identification_rate is None else f"{report.identification_rate:.0%}"
    return [
        "",
        f"model inversion ({len(report.reconstructions)} classes, {report.steps} steps each): "
        f"{report.identified} identifiable ({rate}; chance {report.chance_rate:.0%}), mean confidence "
        f"{report.mean_confidence:.1%}",
        f"  policy: flagged at {policy.min_identified:.0%} identifiable and twice chance",
    ]


def attribute_section(report: AttributeInferenceReport, policy: AttributeThresholds) -> str:
    """An HTML section: the table of attribute-inference attacks."""
    rows = "".join(
        f"<tr><td>{escape(r.attack)}</td><td>{'yes' if r.uses_model else 'no'}</td>"
        f"<td>{r.member_accuracy:.1%}</td><td>{r.member_advantage:+.2f}</td>"
        f"<td>{r.non_member_accuracy:.1%}</td><td>{r.non_member_advantage:+.2f}</td><td>{r.queries:,}</td></tr>"
        for r in report.results
    )
    return (
        '<section class="assessment"><div class="banner neutral"><h2>Attribute inference</h2>'
        f"<p>Guessing column {report.sensitive_column} ({escape(report.kind)}, {len(report.values)} values) "
        f"of {report.members:,} training records and {report.non_members:,} others. The advantage is the "
        "accuracy above the better baseline, which sees only the other columns; the policy allows "
        f"{policy.max_advantage:+.2f}.</p><table><thead><tr><th>attack</th><th>queries the model</th>"
        "<th>members</th><th>advantage</th><th>non-members</th><th>advantage</th><th>queries</th></tr>"
        "</thead><tbody>" + rows + "</tbody></table></div></section>\n"
    )


def inversion_section(report: InversionReport, policy: InversionThresholds) -> str:
    """An HTML section: each class's reconstruction beside the class's mean input, as PNG images."""
    import numpy as np

    cells = []
    for i, r in enumerate(report.reconstructions):
        mean = report.class_means[i] if i < len(report.class_means) else None  # one per inverted class
        verdict = "" if r.identifiable is None else (" ✓" if r.identifiable else " ✗")
        pair = _png_img(r.image, report.valid_range, f"reconstruction of {r.label}")
        if mean is not None:
            pair += _png_img(np.asarray(mean), report.valid_range, f"mean of {r.label}")
        cells.append(
            f'<figure style="display:inline-block;margin:4px">{pair}<figcaption>{escape(str(r.label))}: '
            f"{r.confidence:.0%}{verdict}</figcaption></figure>"
        )
    rate = "-" if report.identification_rate is None else f"{report.identification_rate:.0%}"
    return (
        '<section class="assessment"><div class="banner neutral"><h2>Model inversion</h2>'
        f"<p>Each class's input reconstructed from the model (left) beside the class's mean input in the "
        f"data (right), with the model's confidence; ✓ when the reconstruction is nearest its own class. "
        f"{report.identified} of {len(report.reconstructions)} identifiable ({rate}; chance "
        f"{report.chance_rate:.0%}); the policy flags {policy.min_identified:.0%}.</p>"
        + "".join(cells)
        + "</div></section>\n"
    )


def _png_img(image: np.ndarray, bounds: tuple[float, float], alt: str) -> str:
    """An ``<img>`` with a grey-scale PNG of ``image`` (H×W, or anything flattened to a square) as a data
    URI, scaled up for the eye; the page's Content-Security-Policy allows ``img-src data:``."""
    import base64
    import math
    import struct
    import zlib

    import numpy as np

    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim == 3 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 2:
        side = math.isqrt(pixels.size)
        if side * side != pixels.size:
            return f"<span>{escape(alt)}</span>"
        pixels = pixels.reshape(side, side)
    lo, hi = bounds
    grey = np.clip((pixels - lo) / (hi - lo if hi > lo else 1.0) * 255.0, 0, 255).astype(np.uint8)
    raw = b"".join(b"\x00" + bytes(row) for row in grey)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", grey.shape[1], grey.shape[0], 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    scale = max(1, 64 // max(grey.shape))
    return (
        f'<img alt="{escape(alt)}" width="{grey.shape[1] * scale}" height="{grey.shape[0] * scale}" '
        f'style="image-rendering:pixelated" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
    )
