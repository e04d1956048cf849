"""A backdoor scan of a training set against the model trained on it: load both, run the methods, rank.

:func:`backdoor_scan` loads the training data (a table, an ``.npz`` with arrays ``x`` and ``y``, or an
image folder), loads the PyTorch model with :func:`garrison.loading.safe_load` (scanned first,
restricted unpickler, signature policy from the settings), and runs spectral signatures and
activation clustering (:mod:`garrison.data.backdoor`) with the trigger transplant. Samples flagged by
either method are ranked, those flagged by both first.

The model's output column ``c`` must be class ``c``: integer labels ``0 .. K-1`` are used as they
are; other labels (and image folders' class folders) are numbered in sorted order, with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InputError, UsageError

if TYPE_CHECKING:
    from garrison.core.config import Settings

__all__ = ["METHODS", "BackdoorRow", "BackdoorScanResult", "backdoor_scan"]

METHODS = ("spectral-signatures", "activation-clustering")
"""The methods :func:`backdoor_scan` can run."""

DEFAULT_MAX_ROWS = 200_000
"""Default bound on the training rows held in memory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackdoorRow:
    """One training sample flagged as probable backdoor poison."""

    row: str
    """Where the sample is: the reader's row number, the array index, or the image file."""
    label: str
    """The sample's label, as written in the data."""
    methods: tuple[str, ...]
    """The methods that flagged it."""
    score: float
    """Distance from the clean half of its class over that half's median distance (higher: more apart)."""
    reason: str
    """One line a person can read."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "row": self.row,
            "label": self.label,
            "methods": list(self.methods),
            "score": round(self.score, 6),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BackdoorScanResult:
    """The outcome of a backdoor scan."""

    path: Path
    """The training data."""
    model: Path
    """The model file."""
    rows: int
    """Samples examined."""
    classes: tuple[str, ...]
    """The labels; position = the model's output column."""
    methods: tuple[str, ...]
    """The methods run."""
    label_column: str
    """Where the labels came from: the table's label column, ``y`` of an ``.npz``, or ``folder``."""
    features: str
    """What the methods clustered: ``inputs`` or ``layer NAME``."""
    flagged: tuple[BackdoorRow, ...]
    """Flagged samples, flagged by more methods first, then by score."""
    class_details: dict[str, dict[str, str]]
    """Per method, per label: the numbers behind each class's decision."""
    notes: tuple[str, ...] = ()
    """What was done on the way (label numbering, layout, left-out rows)."""

    @property
    def flagged_classes(self) -> tuple[str, ...]:
        """The labels with flagged samples, in class order."""
        seen = {r.label for r in self.flagged}
        return tuple(c for c in self.classes if c in seen)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "path": str(self.path),
            "model": str(self.model),
            "rows": self.rows,
            "classes": list(self.classes),
            "methods": list(self.methods),
            "label_column": self.label_column,
            "features": self.features,
            "flagged_count": len(self.flagged),
            "flagged_classes": list(self.flagged_classes),
            "flagged": [r.to_dict() for r in self.flagged],
            "class_details": self.class_details,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class _Data:
    label_column: str
    inputs: Any
    y: Any
    classes: tuple[str, ...]
    where: Sequence[str]
    notes: tuple[str, ...]


def backdoor_scan(
    path: Path,
    *,
    model: Path,
    label: str = "label",
    exclude: Sequence[str] = (),
    methods: Sequence[str] = METHODS,
    layer: str | None = None,
    image_size: tuple[int, int] | None = None,
    image_mode: str = "RGB",
    max_rows: int = DEFAULT_MAX_ROWS,
    allow: Sequence[str] = (),
    settings: Settings | None = None,
) -> BackdoorScanResult:
    """Look for backdoor poison in the training data at ``path`` with the model at ``model``."""
    import numpy as np

    from garrison.data import backdoor

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(
            f"unknown method {', '.join(unknown) or '(none)'}", hint=f"use {' or '.join(METHODS)}"
        )
    path, model = Path(path), Path(model)
    data = _load_data(path, label, exclude, image_size, image_mode, max_rows)
    network = _load_model(model, allow, settings)
    predict = backdoor.torch_predict(network)
    _check_model(predict, data, model)
    inputs = np.ascontiguousarray(data.inputs, dtype=np.float32)
    if layer is None:
        feats, described = inputs.reshape(inputs.shape[0], -1), "inputs"
    else:
        feats, described = backdoor.torch_activations(network, inputs, layer), f"layer {layer}"
    found = []
    details: dict[str, dict[str, str]] = {}
    for name in dict.fromkeys(methods):
        run = backdoor.spectral_signatures if name == METHODS[0] else backdoor.activation_clustering
        result = run(feats, data.y, predict=predict, inputs=inputs)
        found.append(result)
        details[name] = {data.classes[c.label]: c.detail for c in result.classes}
    flagged = _rank(found, data)
    return BackdoorScanResult(
        path=path,
        model=model,
        rows=int(inputs.shape[0]),
        classes=data.classes,
        methods=tuple(details),
        label_column=data.label_column,
        features=described,
        flagged=flagged,
        class_details=details,
        notes=data.notes,
    )


def _rank(found: list[Any], data: _Data) -> tuple[BackdoorRow, ...]:
    votes: dict[int, list[tuple[str, Any]]] = {}
    for result in found:
        for sample in result.samples:
            votes.setdefault(sample.index, []).append((result.method, sample))
    rows = []
    for index, hits in votes.items():
        first = hits[0][1]
        rows.append(
            BackdoorRow(
                row=data.where[index],
                label=data.classes[first.label],
                methods=tuple(m for m, _ in hits),
                score=max(s.score for _, s in hits),
                reason=first.reason.replace(
                    f"class {first.label}:", f"class {data.classes[first.label]!r}:", 1
                ),
            )
        )
    rows.sort(key=lambda r: (-len(r.methods), -r.score, r.row))
    return tuple(rows)


def _load_data(
    path: Path,
    label: str,
    exclude: Sequence[str],
    image_size: tuple[int, int] | None,
    image_mode: str,
    max_rows: int,
) -> _Data:
    import numpy as np

    if max_rows < 1:
        raise UsageError("max_rows must be at least 1")
    if path.is_dir():
        return _load_images(path, image_size, image_mode, max_rows)
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic == b"PK\x03\x04" and path.suffix.lower() == ".npz":
        return _load_npz(path, max_rows)
    from garrison.data.table_matrix import load_labelled_matrix

    table = load_labelled_matrix(path, label=label, exclude=exclude, max_rows=max_rows)
    classes, y, notes = _numbering(table.classes, table.y, list(table.notes))
    return _Data(
        label_column=label,
        inputs=np.asarray(table.matrix, dtype=np.float32),
        y=y,
        classes=classes,
        where=[f"row {n}" for n in table.row_numbers],
        notes=tuple(notes),
    )


def _numbering(classes: tuple[str, ...], y: Any, notes: list[str]) -> tuple[tuple[str, ...], Any, list[str]]:
    """Integer labels ``0..K-1`` keep their values as model columns; others are numbered in order."""
    import numpy as np

    try:
        values = [int(c) for c in classes]
    except ValueError:
        values = []
    if values and min(values) >= 0 and all(str(v) == c for v, c in zip(values, classes, strict=True)):
        size = max(values) + 1
        names = [str(i) for i in range(size)]
        return tuple(names), np.array(values, dtype=np.int64)[y], notes
    shown = ", ".join(f"{i}={c!r}" for i, c in enumerate(classes[:10]))
    notes.append(
        f"labels are not integers: model output column i is taken as class i in sorted order ({shown})"
    )
    return classes, y, notes


def _load_npz(path: Path, max_rows: int) -> _Data:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if not {"x", "y"} <= keys:
                raise UsageError(
                    f"{path}: an .npz for the backdoor scan holds arrays 'x' (inputs) and 'y' (labels); "
                    f"it has {', '.join(sorted(keys)) or 'none'}"
                )
            x, y = archive["x"], archive["y"]
    except ValueError as exc:  # object arrays need pickle: refused
        raise InputError(f"{path}: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz archive: {exc}") from exc
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise InputError(f"{path}: 'x' must be (N, ...) and 'y' (N,); got {x.shape} and {y.shape}")
    if x.shape[0] > max_rows:
        raise UsageError(f"{path}: has {x.shape[0]:,} samples, more than --max-rows {max_rows:,}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise InputError(f"{path}: 'x' must hold finite numbers")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise InputError(f"{path}: 'y' must hold non-negative integer class indices")
    classes = tuple(str(i) for i in range(int(y.max()) + 1))
    return _Data(
        label_column="y",
        inputs=x,
        y=y.astype(np.int64),
        classes=classes,
        where=[f"x[{i}]" for i in range(len(y))],
        notes=(),
    )


def _load_images(path: Path, size: tuple[int, int] | None, mode: str, max_rows: int) -> _Data:
    import numpy as np

    from garrison.data.readers_images_array import load_image_array

    array = load_image_array(path, size=size, mode=mode, max_images=max_rows)
    keep = np.flatnonzero(array.labels >= 0)
    if keep.size == 0:
        raise InputError(f"{path}: no images in class folders (root/<label>/<image>)")
    images = array.images[keep].astype(np.float32) / 255.0
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    notes = [
        "images scaled to [0, 1] in (N, C, H, W) layout: " + "x".join(map(str, images.shape[1:])),
        "class folders numbered in sorted order as torchvision's ImageFolder does",
    ]
    if keep.size < array.labels.size:
        notes.append(f"{array.labels.size - keep.size:,} images outside class folders left out")
    if array.problems:
        notes.append(f"{len(array.problems):,} images left out, the first: {array.problems[0].message}")
    return _Data(
        label_column="folder",
        inputs=images,
        y=array.labels[keep],
        classes=array.classes,
        where=[str(array.paths[i]) for i in keep],
        notes=tuple(notes),
    )


def _load_model(path: Path, allow: Sequence[str], settings: Settings | None) -> Any:
    from garrison.loading import safe_load

    try:
        import torch
    except ImportError as exc:
        from garrison.core.errors import MissingExtraError

        raise MissingExtraError("the backdoor scan", extra="torch", module="torch") from exc
    network = safe_load(path, allow=allow, settings=settings)
    if not isinstance(network, torch.nn.Module):
        raise UsageError(
            f"{path}: holds a {type(network).__name__}, not a PyTorch module",
            hint="save the whole model with torch.save(model, path); a state_dict has no architecture to run",
        )
    return network


def _check_model(predict: Any, data: _Data, model: Path) -> None:
    import numpy as np

    sample = np.ascontiguousarray(data.inputs[:2], dtype=np.float32)
    try:
        scores = np.asarray(predict(sample))
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{model}: the model does not accept inputs of shape {tuple(data.inputs.shape[1:])}: {first}"
        ) from exc
    if scores.ndim != 2 or scores.shape[1] < len(data.classes):
        raise UsageError(
            f"{model}: the model returns shape {scores.shape[1:]} per batch; the data has "
            f"{len(data.classes)} classes and needs one output column per class"
        )
