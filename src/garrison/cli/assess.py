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

    from garrison.assess.results import EvasionReport, ModelInfo
    from garrison.cli.assess_leaks import PrivacyPlan
    from garrison.cli.assess_report import Assessment
    from garrison.core.assets import Asset
    from garrison.core.findings import Finding
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
_PRIVACY = "Privacy (--attacks privacy, attribute, inversion)"
_EXTRACTION = "Extraction (--attacks extraction)"
_ENDPOINT = "Endpoint (--model http(s)://...)"

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
) -> tuple[EvasionReport | None, list[SkippedRecord]]:
    """Every applicable attack at every epsilon, one at a time, until a budget is spent; ``None`` when
    none could run (each is then in the skipped list with its reason)."""
    from garrison.assess import GradientUnavailableError, as_model, attack_from_name, run_evasion
    from garrison.cli.assess_report import eps_text
    from garrison.core.errors import ConfigError
    from garrison.core.results import SkippedRecord

    adapter = as_model(model)
    adapter.predict(x[:1])  # the first forward pass tells the output kind and the class count
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
        return None, skipped
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
            help="The model: a scikit-learn joblib/pickle file, a PyTorch checkpoint (a whole module, "
            "or a state dict with --arch), an ONNX file, or an http(s):// endpoint (black box).",
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
    train_data: Annotated[
        Path | None,
        typer.Option(
            "--train-data",
            metavar="PATH",
            help="Records the model was trained on (same formats as --data); needed by --attacks privacy.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    attacks: Annotated[
        str,
        typer.Option(
            "--attacks",
            metavar="LIST",
            help="Assessments to run: evasion (adversarial inputs), privacy (membership inference; needs "
            "--train-data), attribute (a sensitive column inferred; --train-data and --sensitive), "
            "inversion (class representatives reconstructed), extraction (a copycat of the model).",
        ),
    ] = "evasion",
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            metavar="LIST",
            help="Evasion attacks: fgsm, fgm-l2, pgd-N, pgd-l2-N, apgd-ce, apgd-dlr, apgd-t, fab-t, "
            "autoattack (APGD-CE, APGD-T, FAB-T, Square), cw-l2, square, hopskipjump. Default: "
            "fgsm,pgd-10,apgd-ce,cw-l2 (square on a model without gradients).",
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
    membership: Annotated[
        str,
        typer.Option(
            "--membership-attacks",
            metavar="LIST",
            rich_help_panel=_PRIVACY,
            help="loss, shadow, lira-offline, lira-online.",
        ),
    ] = "loss,shadow,lira-offline,lira-online",
    shadows: Annotated[
        int,
        typer.Option(
            "--shadows",
            metavar="N",
            min=2,
            max=512,
            rich_help_panel=_PRIVACY,
            help="Shadow models Garrison trains for the shadow and LiRA attacks (the LiRA paper uses 64+).",
        ),
    ] = 16,
    shadow_epochs: Annotated[
        int,
        typer.Option(
            "--shadow-epochs",
            metavar="N",
            min=1,
            rich_help_panel=_PRIVACY,
            help="Epochs per shadow of a PyTorch model (Adam, Garrison's generic recipe).",
        ),
    ] = 30,
    members: Annotated[
        int,
        typer.Option(
            "--members",
            metavar="N",
            min=10,
            rich_help_panel=_PRIVACY,
            help="Most training records (and as many held-out ones) the membership attacks judge.",
        ),
    ] = 500,
    sensitive: Annotated[
        int | None,
        typer.Option(
            "--sensitive",
            metavar="COLUMN",
            min=0,
            rich_help_panel=_PRIVACY,
            show_default=False,
            help="--attacks attribute: index (from 0) of the sensitive feature column to infer.",
        ),
    ] = None,
    inversion_steps: Annotated[
        int,
        typer.Option(
            "--inversion-steps",
            metavar="N",
            min=1,
            max=10_000,
            rich_help_panel=_PRIVACY,
            help="--attacks inversion: gradient steps per class reconstruction.",
        ),
    ] = 300,
    queries: Annotated[
        str,
        typer.Option(
            "--queries",
            metavar="LIST",
            rich_help_panel=_EXTRACTION,
            help="Query budgets of the copycat attack, e.g. 100,250,500,1000.",
        ),
    ] = "100,250,500,1000",
    expose: Annotated[
        str,
        typer.Option(
            "--expose",
            metavar="OUTPUT",
            rich_help_panel=_EXTRACTION,
            help="What the model shows the attacker: probabilities, topK (top1, top3, ...) or label "
            "(the gateway's output controls).",
        ),
    ] = "probabilities",
    max_membership_auc: Annotated[
        float | None,
        typer.Option(
            "--max-membership-auc",
            metavar="X",
            min=0.5,
            max=1,
            rich_help_panel=_POLICY,
            show_default=False,
            help="Flag a membership AUC above X. Default: [assess], else 0.6.",
        ),
    ] = None,
    max_extraction_fidelity: Annotated[
        float | None,
        typer.Option(
            "--max-extraction-fidelity",
            metavar="X",
            min=0,
            max=1,
            rich_help_panel=_POLICY,
            show_default=False,
            help="Flag a copy that agrees with the model on X or more. Default: [assess], else 0.9.",
        ),
    ] = None,
    extraction_queries: Annotated[
        int | None,
        typer.Option(
            "--extraction-queries",
            metavar="N",
            min=1,
            rich_help_panel=_POLICY,
            show_default=False,
            help="...within N queries. Default: [assess], else 1000.",
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            metavar="NAME",
            rich_help_panel=_ENDPOINT,
            help='json ({"instances": rows} → {"predictions": ...}, a Garrison gateway ML route) or '
            "kserve-v2.",
        ),
    ] = "json",
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            metavar="VAR",
            rich_help_panel=_ENDPOINT,
            show_default=False,
            help="Environment variable holding the endpoint's API key (sent as a bearer token).",
        ),
    ] = None,
    n_classes: Annotated[
        int | None,
        typer.Option(
            "--classes",
            metavar="N",
            min=2,
            rich_help_panel=_ENDPOINT,
            show_default=False,
            help="Class count of an endpoint that answers labels or top-k only.",
        ),
    ] = None,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Attack a model and judge what the attacks achieve against the policy.

    The model file is scanned and loaded through Garrison's restricted unpickler (as `garrison load`
    does): a file with hidden code is refused and nothing of it runs. --attacks picks the parts:

    \b
    evasion     each attack at each epsilon on a seeded subset of --data (--samples); findings
                GAR-ADV-001 (robust accuracy at ε ≤ policy epsilon below the minimum) and
                GAR-ADV-002 (CW-L2/HopSkipJump succeed with a small median L2)
    privacy     membership inference: loss threshold, shadow models, LiRA offline and online, with
                shadow models Garrison trains; members from --train-data, non-members and the
                attacker's population from --data; finding GAR-MIA-001 (AUC above the policy)
    extraction  a copycat student trained on the model's answers to 70% of --data, fidelity measured
                on the other 30%, per budget in --queries; finding GAR-EXT-001 (fidelity at or
                above the policy within its query count)

    Parts and attacks run one after another until --time-budget or --max-queries is spent (the rest
    are listed as skipped). Thresholds come from the flags, then the [assess] table of garrison.toml,
    then defaults.

    \b
    Examples:
      garrison assess model --model clf.joblib --data test.npz
      garrison assess model --model net.pt --data test.npz --methods fgsm,pgd-40 --epsilons 0.05,0.1
      garrison assess model --model clf.joblib --data test.npz --train-data train.npz \\
          --attacks evasion,privacy,extraction --format html --output report.html
      garrison assess model --model weights.pt --arch mynets:build --data test.csv --label y

    Exit codes: 0 within the policy, 1 a finding (at or above --fail-on when given), 2 usage error,
    3 unreadable input; a model file the scan refuses exits 1.
    """
    import numpy as np

    from garrison.assess.evasion import infer_valid_range
    from garrison.assess.extraction_rules import ExtractionThresholds
    from garrison.assess.findings import EvasionThresholds
    from garrison.assess.inference_rules import AttributeThresholds, InversionThresholds
    from garrison.assess.privacy_rules import MembershipThresholds
    from garrison.cli.assess_inputs import (
        Endpoint,
        labels_for,
        load_data,
        load_model,
        parse_assessments,
        parse_budgets,
        parse_floats,
        parse_names,
        parse_range,
        parse_shape,
    )
    from garrison.cli.assess_leaks import PrivacyPlan
    from garrison.cli.assess_report import (
        Assessment,
        console_text,
        json_details,
        plot_sections,
        publish_assessment,
    )
    from garrison.cli.common import load, note
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.errors import UsageError
    from garrison.core.events import utc_now
    from garrison.core.results import ScanReport
    from garrison.core.severity import Severity

    kinds = parse_assessments(attacks)
    _check_part_flags(kinds, train_data, sensitive)
    eps = parse_floats(epsilons, "--epsilons")
    method_names = parse_names(methods, "--methods") if methods is not None else None
    mia_attacks, budgets = parse_names(membership, "--membership-attacks"), parse_budgets(queries)
    shape, declared = parse_shape(input_shape), parse_range(valid_range)
    loaded = load(
        {
            "format": fmt, "fail_on": fail_on, "store": store, "db": db, "assess_epsilon": epsilon_policy,
            "assess_min_robust_accuracy": min_robust_accuracy, "assess_min_median_l2": min_median_l2,
            "assess_max_membership_auc": max_membership_auc,
            "assess_max_extraction_fidelity": max_extraction_fidelity,
            "assess_extraction_queries": extraction_queries,
        },
        config_file,
    )  # fmt: skip
    started = utc_now()
    net, source = load_model(
        model_path, tuple(allow or ()), arch, loaded,
        Endpoint(protocol=protocol, api_key_env=api_key_env, n_classes=n_classes),
    )  # fmt: skip
    x, y_raw, data_notes = load_data(data, label, max_rows)
    y = labels_for(net, y_raw)
    x = _reshape(x, shape, input_shape)
    train = _train_data(net, kinds, train_data, label, max_rows, x, (shape, input_shape))
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(x), samples, replace=False)) if samples < len(x) else np.arange(len(x))
    bounds = declared or infer_valid_range(x)
    budget = _Budget(time_budget, max_queries)
    evasion = None
    skipped: list[Any] = []
    if "evasion" in kinds:
        evasion, skipped = _run(
            net, x[picked], y[picked], method_names, eps, seed=seed, budget=budget,
            valid_range=bounds, inferred=declared is None,
        )  # fmt: skip
        if evasion is None and kinds == ("evasion",):
            raise UsageError("no attack could run: " + "; ".join(f"{s.locator}: {s.reason}" for s in skipped))
    parts = _leak_parts(
        net, kinds, train, (x, y), budget, skipped,
        PrivacyPlan(attacks=mia_attacks, shadows=shadows, max_members=members, shadow_epochs=shadow_epochs,
                    seed=seed),
        (budgets, expose, seed), (sensitive, inversion_steps, bounds),
    )  # fmt: skip
    judged = picked if evasion is not None else np.arange(len(x))  # the evasion subset, or all of --data
    info, clean, range_note = _describe(net, evasion, x[judged], y[judged], bounds, declared is None)
    assessment = Assessment(
        model=info, evasion=evasion, **parts, clean_accuracy=clean,
        samples=len(judged), notes=(*data_notes, *range_note),
        evasion_policy=EvasionThresholds.from_settings(loaded.settings),
        privacy_policy=MembershipThresholds.from_settings(loaded.settings),
        extraction_policy=ExtractionThresholds.from_settings(loaded.settings),
        attribute_policy=AttributeThresholds.from_settings(loaded.settings),
        inversion_policy=InversionThresholds.from_settings(loaded.settings),
    )  # fmt: skip
    asset = Asset(
        kind=AssetKind.ENDPOINT if source.endpoint else AssetKind.MODEL, locator=source.locator,
        digest=source.digest, format=source.format,
    )  # fmt: skip
    data_info = {
        "path": str(data), "rows": len(x), "samples": len(picked), "seed": seed, "label": label,
        "train_path": None if train_data is None else str(train_data),
        "train_rows": None if train is None else len(train[0]),
    }  # fmt: skip
    scan = replace(
        ScanReport.of(
            source.locator, assets=[asset], findings=_findings(assessment, asset), started_at=started
        ),
        skipped=tuple(skipped),
    )
    note(f"{', '.join(assessment.kinds) or 'nothing'} assessed in {time.monotonic() - budget.started:.1f} s")
    publish_assessment(
        loaded, scan, output, console=console_text(assessment, source.locator, len(scan.findings), skipped),
        details=json_details(assessment, data_info, skipped), plots=lambda: plot_sections(assessment),
    )  # fmt: skip
    threshold = loaded.settings.fail_on if fail_on is not None else Severity.INFO
    raise typer.Exit(int(scan.exit_code(fail_on=threshold)))


def _check_part_flags(kinds: tuple[str, ...], train_data: Path | None, sensitive: int | None) -> None:
    """The flags each chosen part needs, before anything is loaded."""
    from garrison.core.errors import UsageError

    for kind in ("privacy", "attribute"):
        if kind in kinds and train_data is None:
            raise UsageError(
                f"--attacks {kind} needs --train-data: the records the model was trained on",
                hint="the attacks are measured on those records against the held-out ones in --data",
            )
    if "attribute" in kinds and sensitive is None:
        raise UsageError("--attacks attribute needs --sensitive COLUMN: the feature column to infer")


def _leak_parts(
    net: Any,
    kinds: tuple[str, ...],
    train: tuple[np.ndarray, np.ndarray] | None,
    held_out: tuple[np.ndarray, np.ndarray],
    budget: _Budget,
    skipped: list[SkippedRecord],
    plan: PrivacyPlan,
    stealing: tuple[tuple[int, ...], str, int],
    inference: tuple[int | None, int, tuple[float, float]],
) -> dict[str, Any]:
    """The parts after evasion, as ``kinds`` names them, within the budgets: ``{kind: report}``."""
    from garrison.cli import assess_leaks as leaks
    from garrison.cli.common import note
    from garrison.core.results import SkippedRecord

    found: dict[str, Any] = {}
    for kind in (k for k in kinds if k != "evasion"):
        reason = budget.exhausted()
        if reason is not None:
            skipped.append(SkippedRecord(locator=kind, reason=reason))
            continue
        t0 = time.monotonic()
        if kind == "privacy":
            assert train is not None
            report: Any = leaks.run_privacy(net, train, held_out, plan)
            budget.spent_queries += 2 * report.members + report.population
            best = report.strongest()
            outcome = f"strongest {best.attack}, AUC {best.auc:.3f}"
        elif kind == "attribute":
            assert train is not None
            assert inference[0] is not None
            report = leaks.run_attribute(net, train, held_out, inference[0], plan)
            budget.spent_queries += sum(r.queries for r in report.results)
            best = max(report.results, key=lambda r: max(r.member_advantage, r.non_member_advantage))
            outcome = f"strongest {best.attack}, advantage {best.member_advantage:+.2f} on members"
        elif kind == "inversion":
            report = leaks.run_inversion(net, held_out, inference[2], inference[1], plan.seed)
            budget.spent_queries += report.gradient_queries
            outcome = f"{report.identified} of {len(report.reconstructions)} classes identifiable"
        else:
            left = None if budget.queries is None else max(1, int(budget.queries - budget.spent_queries))
            budgets, expose, seed = stealing
            report = leaks.run_stealing(net, *held_out, budgets, expose, left, seed)
            budget.spent_queries += report.queries + report.evaluation_queries
            last = report.points[-1] if report.points else None
            outcome = "no budget ran" if last is None else f"fidelity {last.fidelity:.1%} at {last.queries:,}"
        found[kind] = report
        note(f"assess: {kind}: {outcome} in {time.monotonic() - t0:.1f} s")
    return found


def _train_data(
    net: Any,
    kinds: tuple[str, ...],
    path: Path | None,
    label: str | None,
    max_rows: int,
    x: np.ndarray,
    shape: tuple[tuple[int, ...] | None, str | None],
) -> tuple[np.ndarray, np.ndarray] | None:
    """``--train-data`` read like ``--data``, its rows shaped like the inputs ``x``; ``None`` when no
    chosen part needs it."""
    from garrison.cli.assess_inputs import labels_for, load_data
    from garrison.core.errors import UsageError

    if path is None or not {"privacy", "attribute"} & set(kinds):
        return None
    tx, ty_raw, _ = load_data(path, label, max_rows)
    tx = _reshape(tx, *shape)
    if tx.shape[1:] != x.shape[1:]:
        raise UsageError(f"--train-data {path}: rows of {tx[0].size} values, but --data has {x[0].size}")
    return tx, labels_for(net, ty_raw)


def _reshape(x: np.ndarray, shape: tuple[int, ...] | None, spec: str | None) -> np.ndarray:
    """``x`` with each row in ``--input-shape``, or as it is."""
    import numpy as np

    from garrison.core.errors import UsageError

    if shape is None:
        return x
    if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
        raise UsageError(f"--input-shape {spec}: does not hold the {x[0].size} values of one input")
    return x.reshape((len(x), *shape))


def _describe(
    net: Any, evasion: EvasionReport | None, x: np.ndarray, y: np.ndarray, bounds: tuple[float, float],
    inferred: bool,
) -> tuple[ModelInfo, float, list[str]]:  # fmt: skip
    """The model as the report names it, its clean accuracy on the samples, and a note on the range."""
    import numpy as np

    from garrison.assess.adapters import as_model
    from garrison.assess.results import ModelInfo

    if evasion is not None:
        return evasion.model, evasion.results[0].clean_accuracy, []
    adapter = as_model(net)
    clean = float(np.mean(adapter.predict(x) == adapter.label_indices(y)))  # also probes the output
    info = ModelInfo.of(adapter, input_shape=tuple(x.shape[1:]), valid_range=bounds, inferred=inferred)
    note = [f"valid input range [{bounds[0]:g}, {bounds[1]:g}] inferred from the data"] if inferred else []
    return info, clean, note


def _findings(assessment: Assessment, asset: Asset) -> list[Finding]:
    """Every part's findings against its policy."""
    from garrison.assess.extraction_rules import extraction_findings
    from garrison.assess.findings import evasion_findings
    from garrison.assess.inference_rules import attribute_findings, inversion_findings
    from garrison.assess.privacy_rules import membership_findings

    found: list[Finding] = []
    if assessment.evasion is not None:
        found += evasion_findings(assessment.evasion, asset, assessment.evasion_policy)
    if assessment.privacy is not None:
        found += membership_findings(assessment.privacy, asset, assessment.privacy_policy)
    if assessment.attribute is not None:
        found += attribute_findings(assessment.attribute, asset, assessment.attribute_policy)
    if assessment.inversion is not None:
        found += inversion_findings(assessment.inversion, asset, assessment.inversion_policy)
    if assessment.extraction is not None:
        found += extraction_findings(assessment.extraction, asset, assessment.extraction_policy)
    return found


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
