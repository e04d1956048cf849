"""Group fairness of a dataset or a model's predictions, measured in one streaming pass.

:func:`bias_report` reads the file once (:func:`garrison.data.readers.iter_batches`) and counts, per
protected column and per value of it: rows, positive labels, positive predictions and, with both a
label and a prediction, the confusion counts. Memory is bounded by the number of groups
(``max_groups`` per column), never by the number of rows.

The metrics follow fairlearn's documented definitions:

- selection rate of a group: the share of its rows predicted positive;
- demographic parity difference: the largest selection rate minus the smallest, across groups;
- demographic parity ratio: the smallest selection rate divided by the largest;
- true and false positive rates per group; equalized odds difference: the larger of the TPR
  difference and the FPR difference (each max − min across groups); equalized odds ratio: the
  smaller of the TPR ratio and the FPR ratio (each min / max).

With a label and no prediction the selection rate is measured on the label (the base rate), so the
parity metrics describe the training data itself. A ratio whose largest rate is 0 is 1.0 (no group
is selected: no disparity). Groups with fewer than ``min_group_rows`` rows are reported and left
out of the metrics, with a note. The metrics are computed as exact fractions and compared with the
thresholds exactly: a value equal to its threshold is within policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from garrison.core.errors import InputError, UsageError
from garrison.data.bias_types import (
    DEFAULT_POSITIVE,
    BiasReport,
    BiasThresholds,
    ColumnBias,
    GroupStats,
)

__all__ = [
    "DEFAULT_POSITIVE",
    "BiasReport",
    "BiasThresholds",
    "ColumnBias",
    "GroupStats",
    "bias_report",
]


class _Positive:
    """Decides whether a text value is the positive outcome."""

    __slots__ = ("numbers", "texts")

    def __init__(self, positive: str | Sequence[str]) -> None:
        values = (positive,) if isinstance(positive, str) else tuple(positive)
        self.texts = frozenset(v.strip().casefold() for v in values)
        if not self.texts or "" in self.texts:
            raise UsageError("the positive values must be non-empty", hint="for example --positive 1")
        self.numbers = frozenset(n for n in map(_number, self.texts) if n is not None)

    def __call__(self, value: str) -> bool:
        text = value.strip().casefold()
        if text in self.texts:
            return True
        return bool(self.numbers) and _number(text) in self.numbers


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# Counter slots: rows, label positives, predicted positives, tp, fp, tn, fn.
_ROWS, _LPOS, _PPOS, _TP, _FP, _TN, _FN = range(7)


class _Tally:
    """The streaming counts: per protected column, per group, the seven counters."""

    def __init__(
        self,
        names: list[str],
        label: str | None,
        prediction: str | None,
        is_positive: _Positive,
        max_groups: int,
    ) -> None:
        self.names = names
        self.label = label
        self.prediction = prediction
        self.is_positive = is_positive
        self.max_groups = max_groups
        self.confusion = label is not None and prediction is not None
        self.counts: dict[str, dict[str | None, list[int]]] = {name: {} for name in names}
        self.overflow: set[str] = set()
        self.wanted = [*names, *(c for c in (label, prediction) if c is not None)]
        self.seen: set[str] = set()
        self.rows = 0
        self.skipped = 0

    def add(self, columns: Sequence[str], rows: Iterable[tuple[int, tuple[str | None, ...]]]) -> None:
        """Count one batch of rows."""
        index = {name: i for i, name in enumerate(columns)}
        self.seen.update(c for c in self.wanted if c in index)
        where = [(name, index.get(name)) for name in self.names]
        li = index.get(self.label) if self.label is not None else None
        pi = index.get(self.prediction) if self.prediction is not None else None
        for _, values in rows:
            self.rows += 1
            lv = values[li] if li is not None and li < len(values) else None
            pv = values[pi] if pi is not None and pi < len(values) else None
            if (self.label is not None and lv is None) or (self.prediction is not None and pv is None):
                self.skipped += 1
                continue
            lpos = lv is not None and self.is_positive(lv)
            ppos = pv is not None and self.is_positive(pv)
            for name, i in where:
                if name in self.overflow:
                    continue
                group = values[i] if i is not None and i < len(values) else None
                table = self.counts[name]
                slot = table.get(group)
                if slot is None:
                    if len(table) >= self.max_groups:
                        self.overflow.add(name)
                        table.clear()
                        continue
                    slot = table[group] = [0] * 7
                _add(slot, lpos, ppos, self.confusion)


def bias_report(
    path: Path,
    *,
    protected: Sequence[str],
    label: str | None,
    prediction: str | None,
    positive: str | Sequence[str] = DEFAULT_POSITIVE,
    thresholds: BiasThresholds | None = None,
    kind: str | None = None,
    min_group_rows: int = 30,
    max_groups: int = 1_000,
) -> BiasReport:
    """Measure group fairness in the dataset at ``path``; see the module docstring for the metrics.

    Raises :class:`UsageError` for a missing column or bad arguments, and :class:`InputError` when the
    file cannot be read or holds no rows.
    """
    if not protected:
        raise UsageError("name at least one protected column", hint="for example --protected sex")
    if label is None and prediction is None:
        raise UsageError("name a label column, a prediction column, or both")
    if min_group_rows < 1 or max_groups < 2:
        raise UsageError("min_group_rows must be at least 1 and max_groups at least 2")
    from garrison.data.readers import iter_batches

    is_positive = _Positive(positive)
    tally = _Tally(list(dict.fromkeys(protected)), label, prediction, is_positive, max_groups)
    batches = 0
    for batch in iter_batches(Path(path), kind=kind):
        batches += 1
        if batch.columns is None:
            raise UsageError(f"{path}: plain text has no columns; use CSV, TSV, JSON Lines or Parquet")
        tally.add(batch.columns, batch.rows)
    if not batches:
        raise InputError(f"{path}: holds no rows to measure")
    missing = [c for c in tally.wanted if c not in tally.seen]
    if missing:
        raise UsageError(f"{path}: no column named {', '.join(map(repr, missing))}")
    names, overflow, counts = tally.names, tally.overflow, tally.counts
    report = BiasReport(
        path=Path(path),
        label=label,
        prediction=prediction,
        positive=tuple(sorted(is_positive.texts)),
        thresholds=thresholds or BiasThresholds(),
        min_group_rows=min_group_rows,
        rows=tally.rows,
        skipped_rows=tally.skipped,
    )
    columns = tuple(
        _unsuitable(name, max_groups) if name in overflow else _measure(name, counts[name], report)
        for name in names
    )
    return replace(report, columns=columns)


def _add(slot: list[int], lpos: bool, ppos: bool, confusion: bool) -> None:
    slot[_ROWS] += 1
    slot[_LPOS] += lpos
    slot[_PPOS] += ppos
    if confusion:
        slot[(_TP if ppos else _FN) if lpos else (_FP if ppos else _TN)] += 1


def _unsuitable(name: str, max_groups: int) -> ColumnBias:
    reason = (
        f"more than {max_groups:,} distinct values: not a categorical protected attribute "
        "(bin it first, for example age into ranges)"
    )
    return ColumnBias(column=name, groups=(), unsuitable=reason)


def _measure(name: str, table: dict[str | None, list[int]], report: BiasReport) -> ColumnBias:
    notes: list[str] = []
    groups = []
    for value, c in sorted(table.items(), key=lambda kv: (-kv[1][_ROWS], kv[0] is None, kv[0] or "")):
        big = c[_ROWS] >= report.min_group_rows
        groups.append(
            GroupStats(
                value=value,
                rows=c[_ROWS],
                label_positives=c[_LPOS],
                predicted_positives=c[_PPOS],
                tp=c[_TP],
                fp=c[_FP],
                tn=c[_TN],
                fn=c[_FN],
                included=big,
            )
        )
    small = [g for g in groups if not g.included]
    if small:
        shown = ", ".join(f"{g.name!r} ({g.rows:,})" for g in small[:10])
        more = f" and {len(small) - 10:,} more" if len(small) > 10 else ""
        notes.append(
            f"{len(small):,} group(s) under {report.min_group_rows:,} rows left out of the metrics: "
            f"{shown}{more}"
        )
    used = [g for g in groups if g.included]
    if len(used) < 2:
        notes.append(f"fewer than two groups of {report.min_group_rows:,} rows or more: no metric")
        return ColumnBias(column=name, groups=tuple(groups), notes=tuple(notes))
    dp_diff, dp_ratio = _spread(g.selection(report.on_prediction) for g in used)
    metrics: dict[str, Fraction | None] = {"dp_difference": dp_diff, "dp_ratio": dp_ratio}
    if report.confusion:
        tprs = [g.tpr for g in used]
        fprs = [g.fpr for g in used]
        for what, rates in (("positive", tprs), ("negative", fprs)):
            lacking = [g.name for g, r in zip(used, rates, strict=True) if r is None]
            if lacking:
                notes.append(
                    f"group(s) {', '.join(map(repr, lacking[:10]))} have no {what} label: left out of "
                    f"the {'true' if what == 'positive' else 'false'} positive rate comparison"
                )
        tpr_diff, tpr_ratio = _spread(tprs)
        fpr_diff, fpr_ratio = _spread(fprs)
        metrics |= {"tpr_difference": tpr_diff, "fpr_difference": fpr_diff}
        if tpr_diff is not None and fpr_diff is not None and tpr_ratio is not None and fpr_ratio is not None:
            metrics |= {"eo_difference": max(tpr_diff, fpr_diff), "eo_ratio": min(tpr_ratio, fpr_ratio)}
        else:
            notes.append("equalized odds needs two groups with both positive and negative labels")
    return ColumnBias(
        column=name,
        groups=tuple(groups),
        notes=tuple(notes),
        dp_difference=metrics.get("dp_difference"),
        dp_ratio=metrics.get("dp_ratio"),
        tpr_difference=metrics.get("tpr_difference"),
        fpr_difference=metrics.get("fpr_difference"),
        eo_difference=metrics.get("eo_difference"),
        eo_ratio=metrics.get("eo_ratio"),
    )


def _spread(rates: Iterable[Fraction | None]) -> tuple[Fraction | None, Fraction | None]:
    """(max − min, min / max) over the rates that exist; ``None`` with fewer than two."""
    known = [r for r in rates if r is not None]
    if len(known) < 2:
        return None, None
    low, high = min(known), max(known)
    return high - low, (low / high if high else Fraction(1))
