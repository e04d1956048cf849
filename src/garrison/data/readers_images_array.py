"""An image folder decoded into one ``numpy`` array, for the poisoning and backdoor analyses.

:func:`load_image_array` reads the headers of every image under a folder first (through
:func:`~garrison.data.readers_images.iter_image_records`), so the array is sized and checked against
a byte cap before any pixel is decoded; then it decodes one image at a time into it. Labels follow
torchvision's ``ImageFolder``: the class is the first folder under the root, classes are numbered in
sorted order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import ResourceLimitError, UsageError
from garrison.data.readers_common import ReadProblem
from garrison.data.readers_images import DEFAULT_MAX_PIXELS, iter_image_records, pillow

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["DEFAULT_MAX_ARRAY_BYTES", "ImageArray", "load_image_array"]

#: The largest array :func:`load_image_array` builds, in bytes.
DEFAULT_MAX_ARRAY_BYTES = 2 * 2**30


def _problem(row: int | None, message: str) -> ReadProblem:
    """A problem with the whole file at place ``row`` of the walk."""
    return ReadProblem(row=row, byte_offset=None, column=None, message=message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageArray:
    """An image folder decoded into one array, for the poisoning and backdoor analyses."""

    images: NDArray[np.uint8]
    """``(N, H, W)`` for mode ``L``, ``(N, H, W, C)`` otherwise; ``uint8``."""
    labels: NDArray[np.int64]
    """Index into :attr:`classes` per image; ``-1`` for an image in the root folder."""
    classes: tuple[str, ...]
    """The labels, sorted (as torchvision's ``ImageFolder`` numbers them)."""
    paths: tuple[Path, ...]
    """The file of each image, in array order."""
    problems: tuple[ReadProblem, ...]
    """Files left out, and why (``row`` is the file's place in the walk)."""


_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


def load_image_array(
    root: Path,
    *,
    size: tuple[int, int] | None = None,
    mode: str = "RGB",
    max_images: int | None = None,
    max_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageArray:
    """Decode the images under ``root`` into one ``uint8`` array with their labels.

    ``size`` is ``(height, width)``: every image is resized to it; ``None`` takes the first image's
    size and leaves out images of another size (a problem each). ``mode`` is ``L``, ``RGB`` or
    ``RGBA``. Headers are read first to count the images, so the array is allocated once and
    :class:`ResourceLimitError` is raised before decoding when it would exceed ``max_bytes``; then
    images are decoded one at a time into it. Unreadable images, bombs and images that fail to
    decode are left out with a problem.
    """
    import numpy as np

    image_module = pillow()
    if mode not in _CHANNELS:
        raise UsageError(f"mode must be one of {', '.join(_CHANNELS)}, not {mode!r}")
    if size is not None and (size[0] < 1 or size[1] < 1):
        raise UsageError(f"size must be positive, not {size!r}")
    resize = size is not None
    chosen: list[tuple[Path, str | None]] = []
    problems: list[ReadProblem] = []
    for row, record in enumerate(iter_image_records(root, max_pixels=max_pixels), start=1):
        if max_images is not None and len(chosen) >= max_images:
            break
        if record.error is not None or record.width is None or record.height is None:
            problems.append(_problem(row, f"{record.name}: {record.error}"))
            continue
        if size is None:
            size = (record.height, record.width)
        elif not resize and (record.height, record.width) != size:
            problems.append(
                _problem(
                    row,
                    f"{record.name}: {record.width}×{record.height}, not the first image's "
                    f"{size[1]}×{size[0]}; left out (pass size= to resize)",
                )
            )
            continue
        chosen.append((record.path, record.label))
    height, width = size or (0, 0)
    channels = _CHANNELS[mode]
    need = len(chosen) * height * width * channels
    if need > max_bytes:
        raise ResourceLimitError(
            f"{root}: {len(chosen):,} images of {width}×{height}×{channels} need {need:,} bytes, "
            f"over the limit of {max_bytes:,}",
            limit="max-bytes",
            value=max_bytes,
            hint="pass a smaller size, max_images, or a larger max_bytes",
        )
    shape = (len(chosen), height, width) if channels == 1 else (len(chosen), height, width, channels)
    images = np.empty(shape, dtype=np.uint8)
    classes = tuple(sorted({label for _, label in chosen if label is not None}))
    class_index = {label: i for i, label in enumerate(classes)}
    labels: list[int] = []
    paths: list[Path] = []
    for path, label in chosen:
        try:
            pixels = _decode(image_module, path, mode, (width, height), max_pixels)
        except (OSError, ValueError, SyntaxError, EOFError, image_module.DecompressionBombError) as exc:
            problems.append(_problem(None, f"{path}: does not decode: {exc}"))
            continue
        images[len(paths)] = np.asarray(pixels, dtype=np.uint8)
        labels.append(-1 if label is None else class_index[label])
        paths.append(path)
    return ImageArray(
        images=images[: len(paths)],
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        paths=tuple(paths),
        problems=tuple(problems),
    )


def _decode(image_module: Any, path: Path, mode: str, size: tuple[int, int], max_pixels: int) -> Any:
    """One image's pixels in ``mode`` at ``size`` (width, height), as a Pillow image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette-transparency and bomb warnings: the limit is ours
        with image_module.open(path) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise ValueError(f"{image.size[0]}×{image.size[1]} pixels, over the limit of {max_pixels:,}")
            image.draft(mode, size)  # JPEG: decode at a reduced scale when that is enough
            converted = image.convert(mode)
            if converted.size != size:
                converted = converted.resize(size, image_module.Resampling.BILINEAR)
            return converted
