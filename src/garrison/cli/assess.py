"""``garrison assess model``: attack a model with standard evasion attacks and judge it against the policy.

The attacks live in :mod:`garrison.assess` (:func:`~garrison.assess.run_evasion`), the rules in
:mod:`garrison.assess.rules` and the verdicts in :mod:`garrison.assess.findings`. This command loads
the model safely (:func:`garrison.loading.safe_load_result`: scan first, restricted unpickler) and the
data, runs one attack and epsilon at a time within the budgets, shows progress on stderr, records the
findings in the store, and reports; the HTML report gains the robust-accuracy curves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    FailOnOption,
    OutputOption,
    ReportFormatOption,
    StoreFindingsOption,
)

if TYPE_CHECKING:
    import numpy as np

    from garrison.assess.results import EvasionReport
    from garrison.core.results import SkippedRecord

app = typer.Typer(
    name="assess",
    help="Model risk assessment: attack a model and judge what the attacks achieve against the policy.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)

GRADIENT_METHODS = ("fgsm", "pgd-10", "apgd-ce", "cw-l2")
"""The default attacks on a model with gradients (a torch module, a converted scikit-learn model)."""
_POLICY = "Policy (default: [assess] in garrison.toml)"

# --- running ------------------------------------------------------------------------------------------


class _Progress:
    """A rich bar per attack on stderr when it is a terminal; one line per attack and epsilon otherwise."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[current]}"), TimeElapsedColumn(), console=Console(stderr=True),
            )  # fmt: skip
            self._bar.start()

    def add(self, attack: str, steps: int) -> None:
        if self._bar is not None:
            self._tasks[attack] = self._bar.add_task(attack, total=steps, current="")

    def start(self, attack: str, what: str) -> None:
        if self._bar is not None:
            self._bar.update(self._tasks[attack], current=what)

    def done(self, attack: str, what: str, outcome: str, seconds: float) -> None:
        if self._bar is not None:
            self._bar.update(self._tasks[attack], advance=1, current=f"{what}: {outcome}")
        else:
            sys.stderr.write(f"assess: {attack} {what}: {outcome} in {seconds:.1f} s\n")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _outcome(result: Any) -> str:
    """What one run achieved, for the progress line."""
    if result.epsilon is not None:
        return f"robust accuracy {result.robust_accuracy:.1%}"
    median = "-" if result.median_perturbation is None else f"{result.median_perturbation:.3g}"
    return f"broke {result.success_rate:.1%}, median L2 {median}"


class _Budget:
    """Time and model evaluations spent so far, against ``--time-budget`` and ``--max-queries``."""

    def __init__(self, seconds: float | None, queries: int | None) -> None:
        self.seconds, self.queries = seconds, queries
        self.started, self.spent_queries = time.monotonic(), 0.0

    def exhausted(self) -> str | None:
        """Why no further attack may start, or ``None`` while both budgets last."""
        spent = time.monotonic() - self.started
        if self.seconds is not None and spent >= self.seconds:
            return f"time budget of {self.seconds:g} s spent ({spent:.1f} s) before it started"
        if self.queries is not None and self.spent_queries >= self.queries:
            return f"query budget of {self.queries:,} model evaluations spent ({self.spent_queries:,.0f})"
        return None


def _default_methods(adapter: Any) -> tuple[tuple[str, ...], str | None]:
    """The quick set on a model with gradients; one black-box attack otherwise, with a note."""
    if adapter.has_gradients:
        return GRADIENT_METHODS, None
    name = "square" if adapter.output_kind.value != "labels" else "hopskipjump"
    return (name,), f"{adapter.name} has no input gradients: black-box attack {name} by default"


def _run(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    methods: Sequence[str] | None,
    epsilons: Sequence[float],
    *,
    seed: int,
    budget: _Budget,
    valid_range: tuple[float, float],
    inferred: bool,
) -> tuple[EvasionReport, list[SkippedRecord]]:
    """Every applicable attack at every epsilon, one at a time, until a budget is spent."""
    from garrison.assess import GradientUnavailableError, as_model, attack_from_name, run_evasion
    from garrison.cli.assess_report import eps_text
    from garrison.core.errors import ConfigError, UsageError
    from garrison.core.results import SkippedRecord

    adapter = as_model(model)
    names, note = _default_methods(adapter) if methods is None else (tuple(methods), None)
    notes = [note] if note else []
    specs = list(dict.fromkeys(attack_from_name(n) for n in names))
    skipped: list[SkippedRecord] = []
    steps = [(s, e) for s in specs for e in (epsilons if s.uses_epsilon else (None,))]
    bar = _Progress()
    for spec in specs:
        bar.add(spec.label, sum(1 for s, _ in steps if s is spec))
    report: EvasionReport | None = None
    try:
        for spec, eps in steps:
            where = f"{spec.label} {eps_text(eps)}"
            reason = budget.exhausted()
            if reason is not None:
                skipped.append(SkippedRecord(locator=where, reason=reason))
                continue
            bar.start(spec.label, eps_text(eps))
            try:
                part = run_evasion(
                    adapter, x, y, attacks=[spec], epsilons=[eps or 1.0], valid_range=valid_range, seed=seed
                )
            except (GradientUnavailableError, ConfigError) as exc:
                skipped.append(SkippedRecord(locator=where, reason=exc.message))
                continue
            result = part.results[0]
            budget.spent_queries += result.queries_per_sample * result.samples
            bar.done(spec.label, eps_text(eps), _outcome(result), result.seconds)
            report = part if report is None else replace(report, results=(*report.results, *part.results))
            notes.extend(part.notes)
    finally:
        bar.stop()
    if report is None:
        raise UsageError("no attack could run: " + "; ".join(f"{s.locator}: {s.reason}" for s in skipped))
    if inferred:
        notes.append(
            f"valid input range [{valid_range[0]:g}, {valid_range[1]:g}] inferred from the data; "
            "declare it with --valid-range"
        )
    model_info = replace(report.model, valid_range_inferred=inferred)
    return replace(report, model=model_info, notes=tuple(dict.fromkeys(notes))), skipped


# --- the command --------------------------------------------------------------------------------------


def model(
    model_path: Annotated[
        str,
        typer.Option(
            "--model",
            metavar="PATH",
            help="The model: a scikit-learn joblib/pickle file or a PyTorch checkpoint (a whole module, "
            "or a state dict with --arch).",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            metavar="PATH",
            help="Labelled inputs: .npz with arrays x and y, or a CSV, TSV, JSON Lines or Parquet table "
            "with --label (numeric feature columns).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option("--label", metavar="COLUMN", help="The label column of a table.", show_default=False),
    ] = None,
    attacks: Annotated[
        str,
        typer.Option(
            "--attacks", metavar="LIST", help="Assessments to run: evasion (privacy, extraction: planned)."
        ),
    ] = "evasion",
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            metavar="LIST",
            help="Evasion attacks: fgsm, fgm-l2, pgd-N, pgd-l2-N, apgd-ce, apgd-dlr, cw-l2, square, "
            "hopskipjump. Default: fgsm,pgd-10,apgd-ce,cw-l2 (square on a model without gradients).",
            show_default=False,
        ),
    ] = None,
    epsilons: Annotated[
        str, typer.Option("--epsilons", metavar="LIST", help="Perturbation budgets, in the input's units.")
    ] = "0.1,0.3",
    samples: Annotated[
        int,
        typer.Option("--samples", metavar="N", min=1, help="Attack a random subset of N samples (seeded)."),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seeds the subset and the attacks.")] = 0,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            metavar="SECONDS",
            min=0,
            help="Start no further attack once this much time is spent; the rest are reported as skipped.",
            show_default=False,
        ),
    ] = None,
    max_queries: Annotated[
        int | None,
        typer.Option(
            "--max-queries",
            metavar="N",
            min=1,
            help="Start no further attack once this many model evaluations (all samples) are spent.",
            show_default=False,
        ),
    ] = None,
    valid_range: Annotated[
        str | None,
        typer.Option(
            "--valid-range",
            metavar="LO,HI",
            help="Range every adversarial input is clipped to. Default: inferred from the data.",
            show_default=False,
        ),
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option(
            "--input-shape",
            metavar="DIMS",
            help="Reshape each input to this shape, e.g. 1,8,8 for a CNN fed flattened rows.",
            show_default=False,
        ),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            metavar="MODULE:FUNCTION",
            help="For a state dict: your function that builds the network (imported from the working "
            "directory; it is your code that runs, never the checkpoint's).",
            show_default=False,
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="GLOBAL",
            help="Trust this global when loading, for a model class of your own (mypkg.models.Net); "
            "repeatable.",
            show_default=False,
        ),
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", metavar="N", min=1, help="Refuse a table with more labelled rows.")
    ] = 100_000,
    epsilon_policy: Annotated[
        float | None,
        typer.Option(
            "--policy-epsilon",
            metavar="EPS",
            rich_help_panel=_POLICY,
            show_default=False,
            help="Judge robust accuracy at this ε and below. Default: [assess] epsilon, else 0.1.",
        ),
    ] = None,
    min_robust_accuracy: Annotated[
        float | None,
        typer.Option(
            "--min-robust-accuracy",
            metavar="X",
            min=0,
            max=1,
            rich_help_panel=_POLICY,
            show_default=False,
            help="Flag robust accuracy below X (0 to 1). Default: [assess], else 0.3.",
        ),
    ] = None,
    min_median_l2: Annotated[
        float | None,
        typer.Option(
            "--min-median-l2",
            metavar="X",
            min=0,
            rich_help_panel=_POLICY,
            show_default=False,
            help="Flag a CW-L2/HopSkipJump median L2 below X. Default: [assess], else 1.0.",
        ),
    ] = None,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Attack a model with standard evasion attacks and judge its robustness against the policy.

    The model file is scanned and loaded through Garrison's restricted unpickler (as `garrison load`
    does): a file with hidden code is refused and nothing of it runs. Each attack runs at each
    epsilon on a seeded random subset of the data, one after another, until --time-budget or
    --max-queries is spent (attacks not started are listed as skipped). Findings: GAR-ADV-001 when
    robust accuracy at ε at or below the policy's epsilon falls under the minimum, GAR-ADV-002 when
    CW-L2 or HopSkipJump needs only a small median L2. Thresholds come from the flags, then the
    [assess] table of garrison.toml (epsilon, min-robust-accuracy, min-median-l2), then defaults.

    \b
    Examples:
      garrison assess model --model clf.joblib --data test.npz
      garrison assess model --model net.pt --data test.npz --methods fgsm,pgd-40 --epsilons 0.05,0.1
      garrison assess model --model weights.pt --arch mynets:build --data test.csv --label y -f html -o r.html

    Exit codes: 0 within the policy, 1 a finding (at or above --fail-on when given), 2 usage error
    (or --attacks privacy/extraction, not available yet), 3 unreadable input; a model file the scan
    refuses exits 1.
    """
    import numpy as np

    from garrison.assess.evasion import infer_valid_range
    from garrison.assess.findings import EvasionThresholds, evasion_findings
    from garrison.cli.assess_inputs import (
        labels_for,
        load_data,
        load_model,
        parse_assessments,
        parse_floats,
        parse_range,
        parse_shape,
    )
    from garrison.cli.assess_report import console_text, json_details, plot_section, publish_assessment
    from garrison.cli.common import load, note
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.errors import UsageError
    from garrison.core.events import utc_now
    from garrison.core.results import ScanReport
    from garrison.core.severity import Severity

    parse_assessments(attacks)
    eps = parse_floats(epsilons, "--epsilons")
    method_names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    if methods is not None and not method_names:
        raise UsageError("--methods is empty")
    shape = parse_shape(input_shape)
    declared = parse_range(valid_range)
    loaded = load(
        {
            "format": fmt, "fail_on": fail_on, "store": store, "db": db, "assess_epsilon": epsilon_policy,
            "assess_min_robust_accuracy": min_robust_accuracy, "assess_min_median_l2": min_median_l2,
        },
        config_file,
    )  # fmt: skip
    policy = EvasionThresholds.from_settings(loaded.settings)
    started = utc_now()
    net, load_result = load_model(model_path, tuple(allow or ()), arch, loaded)
    x, y_raw, data_notes = load_data(data, label, max_rows)
    y = labels_for(net, y_raw)
    if shape is not None:
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise UsageError(
                f"--input-shape {input_shape}: does not hold the {x[0].size} values of one input"
            )
        x = x.reshape((len(x), *shape))
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(x), samples, replace=False)) if samples < len(x) else np.arange(len(x))
    bounds = declared or infer_valid_range(x)
    report, skipped = _run(
        net, x[picked], y[picked], method_names, eps, seed=seed,
        budget=_Budget(time_budget, max_queries), valid_range=bounds, inferred=declared is None,
    )  # fmt: skip
    report = replace(report, notes=(*report.notes, *data_notes))
    asset = Asset(
        kind=AssetKind.MODEL, locator=model_path, digest=load_result.digest, format=load_result.format
    )
    findings = evasion_findings(report, asset, policy)
    scan = replace(
        ScanReport.of(model_path, assets=[asset], findings=findings, started_at=started),
        skipped=tuple(skipped),
    )
    seconds = sum(r.seconds for r in report.results)
    note(f"{len(report.results)} attack runs on {len(picked):,} samples in {seconds:.1f} s")
    data_info = {"path": str(data), "rows": len(x), "samples": len(picked), "seed": seed, "label": label}
    publish_assessment(
        loaded, scan, output, console=console_text(report, model_path, len(findings), skipped, policy),
        details=json_details(report, data_info, skipped, policy), plots=lambda: plot_section(report, policy),
    )  # fmt: skip
    threshold = loaded.settings.fail_on if fail_on is not None else Severity.INFO
    raise typer.Exit(int(scan.exit_code(fail_on=threshold)))


app.command("model")(model)


@app.command("detector")
def detector(
    data: Annotated[
        Path, typer.Option("--data", metavar="PATH", help="Clean training inputs: .npz (x, y) or a table.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the detector (.npz).")
    ],
    label: Annotated[
        str | None, typer.Option("--label", metavar="COLUMN", help="Label column of a table.")
    ] = None,
    fpr: Annotated[float, typer.Option("--fpr", help="False-positive rate on held-out clean inputs.")] = 0.01,
    holdout: Annotated[
        float, typer.Option("--holdout", help="Share of the rows kept to set the threshold.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Shuffles the rows before the split.")] = 0,
) -> None:
    """Fit an out-of-distribution detector for a gateway ML route, and save it as .npz.

    The detector is the Mahalanobis distance of an input to its nearest class in input space,
    thresholded to flag --fpr of held-out clean rows. It needs no model: name it under
    `detectors:` in gateway.yaml and in a route's `validation.detector`.

    Example: garrison assess detector --data train.npz --output iris-ood.npz --fpr 0.01
    """
    import numpy as np

    from garrison.assess.input_detectors import MahalanobisDetector, detection_rate
    from garrison.cli.assess_inputs import load_data
    from garrison.cli.common import note
    from garrison.core.errors import UsageError

    if not 0.0 < holdout < 1.0:
        raise UsageError(f"--holdout {holdout}: give a share between 0 and 1, such as 0.2")
    x, y, _ = load_data(data, label, max_rows=1_000_000)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1.0 - holdout))
    if cut < 10 or len(x) - cut < 10:
        raise UsageError(f"{data}: {len(x)} rows are too few to fit and calibrate a detector")
    fit, calibration = order[:cut], order[cut:]
    found = MahalanobisDetector.fit(x[fit], y[fit], space="input").calibrate(x[calibration], fpr=fpr)
    found.save(output)
    note(
        f"detector written to {output}: {len(fit)} rows fitted, threshold {found.threshold:.4g} flags "
        f"{detection_rate(found, x[calibration]):.1%} of {len(calibration)} held-out rows"
    )
