"""``garrison data backdoor``: training samples that carry a backdoor trigger, found with the trained model.

The loading and the methods live in :mod:`garrison.data.backdoor_scan` and :mod:`garrison.data.backdoor`,
the rule in :mod:`garrison.data.backdoor_rules`; this command parses, examines, records the findings in
the store, and reports.
"""

from __future__ import annotations

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
    from garrison.core.results import ScanReport
    from garrison.data.backdoor_scan import BackdoorScanResult

_SHOWN = 20


def _console(result: BackdoorScanResult) -> str:
    """The summary line, the per-class decisions of flagged classes, then the flagged samples."""
    from garrison.report.common import printable

    count = len(result.flagged)
    lines = [
        f"{printable(str(result.path))} with model {printable(str(result.model))}: {count:,} of "
        f"{result.rows:,} samples flagged ({', '.join(result.methods)} on {result.features}; "
        f"{len(result.classes)} classes)"
    ]
    for label in result.flagged_classes:
        for method, per_class in result.class_details.items():
            lines.append(f"  class {printable(label)!r}, {method}: {printable(per_class.get(label, ''))}")
    if result.flagged:
        lines += ["", f"{'sample':<24} {'label':<10} {'score':>7}  methods"]
        for row in result.flagged[:_SHOWN]:
            lines.append(
                f"{printable(row.row)[-24:]:<24} {printable(row.label)[:10]:<10} {row.score:>7.2f}  "
                f"{', '.join(row.methods)}"
            )
        if count > _SHOWN:
            lines.append(f"{'':<24} ... {count - _SHOWN:,} more")
    lines += [f"note: {printable(n)}" for n in result.notes]
    lines += ["", "FLAGGED: probable backdoor poison" if result.flagged else "OK: no backdoor poison found"]
    return "\n".join(lines)


def _scan_report(result: BackdoorScanResult, started: Any) -> ScanReport:
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.results import ScanReport
    from garrison.data.backdoor_rules import backdoor_findings

    asset = Asset(kind=AssetKind.DATASET, locator=str(result.path))
    return ScanReport.of(
        str(result.path), assets=[asset], findings=backdoor_findings(result, asset), started_at=started
    )


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
        raise typer.BadParameter(
            f"expected HEIGHTxWIDTH such as 32x32, got {text!r}", param_hint="--image-size"
        )
    return int(height), int(width)


def backdoor(
    path: Annotated[
        Path,
        typer.Argument(
            help="The training data: CSV, TSV, JSON Lines or Parquet with a label column; an .npz with "
            "arrays x and y; or an image folder root/<label>/<image>.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            metavar="FILE",
            help="The PyTorch model trained on the data, saved with torch.save(model). It is scanned "
            "and loaded with the restricted unpickler; nothing in it runs.",
            show_default=False,
        ),
    ],
    label: Annotated[
        str, typer.Option("--label", metavar="COLUMN", help="The label column of a table.")
    ] = "label",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", metavar="COLUMN", help="Leave this table column out; repeatable.", show_default=False
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            metavar="METHOD",
            help="spectral-signatures or activation-clustering; repeatable. Default: both.",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            metavar="NAME",
            help="Split each class on this module's activations instead of the inputs.",
            show_default=False,
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="GLOBAL",
            help="Your own model class the loader may import (module.Class); repeatable.",
            show_default=False,
        ),
    ] = None,
    image_size: Annotated[
        str | None,
        typer.Option(
            "--image-size", metavar="HxW", help="Resize images to this size (default: the first image's)."
        ),
    ] = None,
    image_mode: Annotated[str, typer.Option("--image-mode", metavar="MODE", help="L, RGB or RGBA.")] = "RGB",
    max_rows: Annotated[
        int,
        typer.Option("--max-rows", metavar="N", min=1, help="Refuse data with more samples than N."),
    ] = 200_000,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Find training samples that carry a backdoor trigger, using the model trained on them.

    Each class is split in two (spectral signatures: along its top singular vector; activation
    clustering: 2-means on 10 principal components). The difference between the halves is then
    added to samples of other classes: if the model now predicts the class, that half carries a
    transferable trigger and is flagged (GAR-DATA-401, one finding per class). Flagged samples are
    listed most apart from their clean class first. The whole dataset is held in memory.

    \b
    Examples:
      garrison data backdoor train.npz --model model.pt
      garrison data backdoor train.csv --model model.pt --label digit --format json -o backdoor.json
      garrison data backdoor images/ --model cnn.pt --image-size 32x32 --fail-on high

    Exit codes: 0 no findings at or above --fail-on, 1 findings at or above it, 2 usage error,
    3 unreadable input or a model that is refused.
    """
    from garrison.cli.common import load, publish
    from garrison.core.events import utc_now
    from garrison.data.backdoor_scan import METHODS, backdoor_scan

    loaded = load({"format": fmt, "fail_on": fail_on, "store": store, "db": db}, config_file)
    started = utc_now()
    result = backdoor_scan(
        path,
        model=model,
        label=label,
        exclude=tuple(exclude or ()),
        methods=tuple(method or METHODS),
        layer=layer,
        image_size=_size(image_size),
        image_mode=image_mode,
        max_rows=max_rows,
        allow=tuple(allow or ()),
        settings=loaded.settings,
    )
    report = _scan_report(result, started)
    publish(loaded, report, output, console=_console(result), details=result.to_dict())
    raise typer.Exit(int(report.exit_code(fail_on=loaded.settings.fail_on)))
