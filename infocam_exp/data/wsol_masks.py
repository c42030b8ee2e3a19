"""Mask annotations in wsolevaluation's OpenImages layout (Choe et al., CVPR 2020).

A metadata folder of one split holds

* ``image_ids.txt``: one image id (a relative path) per line; the images scored, in order;
* ``localization.txt``: ``<image_id>,<mask_path>,<ignore_path>`` per line. An image with several
  object instances has several lines, one instance mask each; only its first line may name an
  ignore mask, the others leave the field empty (wsolevaluation asserts this). An empty ignore
  path on the first line means "nothing ignored" (wsolevaluation's own metadata always names one;
  its reader would fail on an empty one).

Mask paths are relative to a mask root (wsolevaluation: ``dataset/OpenImages``). Masks are image
files (PNG) read as wsolevaluation reads them: OpenCV, as 8-bit greyscale
(``cv2.IMREAD_GRAYSCALE``; 1-bit, palette, colour and 16-bit files are converted by OpenCV), then
resized to the score map's frame with ``cv2.resize(..., interpolation=cv2.INTER_NEAREST)``
(wsolevaluation resizes to 224 x 224, the frame of its maps). A pixel is foreground when its
resized grey value is > 0.5, i.e. any non-zero value (no division by 255 happens there), in
*any* instance mask of the image; the ignore region is the ignore mask's non-zero pixels minus
the foreground.

Box metadata (``localization.txt`` with ``<image_id>,<x0>,<y0>,<x1>,<y1>``) is read by
``infocam_exp.evaluate``; :func:`localization_kind` tells the two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infocam_exp.errors import UserError

LAYOUT = "'<image_id>,<mask_path>,<ignore_path>' (the ignore path may be empty)"


class MaskMetadataError(UserError, ValueError):
    """A mask metadata or mask file is missing or malformed; the message names file and line."""

    def __init__(self, path: object, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class MaskAnnotation:
    """One image's masks: ``mask_paths`` (instances) and ``ignore_path`` ("" for none), as
    written in ``localization.txt`` (relative to the mask root); ``line``: its first line."""

    mask_paths: tuple[str, ...]
    ignore_path: str
    line: int


@dataclass(frozen=True)
class MaskMetadata:
    """One split: ``image_ids`` in file order, their annotations and the file they came from."""

    image_ids: list[str]
    annotations: dict[str, MaskAnnotation]
    localization: Path


def metadata_lines(path: Path, error: Callable[..., Exception] = MaskMetadataError) -> list[tuple[int, str]]:
    """The non-blank lines of a wsolevaluation metadata file as (1-based line number, text);
    ``error(path, problem, line=None)`` builds the exception raised for a missing file (the box
    and the mask readers share this)."""
    if not path.is_file():
        raise error(path, "metadata file not found")
    with path.open(encoding="utf-8") as handle:
        return [(i, line.rstrip("\r\n")) for i, line in enumerate(handle, start=1) if line.strip()]


def read_image_ids(root: Path, error: Callable[..., Exception] = MaskMetadataError) -> list[str]:
    """``root/image_ids.txt`` in file order: the folder and the file must exist, ids must be
    unique and there must be at least one (``error`` as in :func:`metadata_lines`)."""
    if not root.is_dir():
        raise error(root, "metadata folder not found")
    ids_path = root / "image_ids.txt"
    image_ids: list[str] = []
    seen: set[str] = set()
    for lineno, line in metadata_lines(ids_path, error):
        image_id = line.strip()
        if image_id in seen:
            raise error(ids_path, f"duplicate image id {image_id!r}", lineno)
        seen.add(image_id)
        image_ids.append(image_id)
    if not image_ids:
        raise error(ids_path, "no image ids")
    return image_ids



def localization_kind(metadata_dir: str | Path) -> str:
    """``"masks"`` when the first line of ``localization.txt`` has 3 comma-separated fields
    (mask layout), else ``"boxes"`` (5 fields; the box reader reports anything malformed)."""
    path = Path(metadata_dir) / "localization.txt"
    if not path.is_file():
        return "boxes"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return "masks" if len(line.rstrip("\r\n").split(",")) == 3 else "boxes"
    return "boxes"


def read_mask_metadata(metadata_dir: str | Path) -> MaskMetadata:
    """Parse and cross-check a mask metadata folder (see the module docstring).

    Raises:
        MaskMetadataError: naming the file and line of any problem.
    """
    root = Path(metadata_dir)
    image_ids = read_image_ids(root)
    ids_path = root / "image_ids.txt"

    loc_path = root / "localization.txt"
    masks: dict[str, list[str]] = {}
    ignores: dict[str, tuple[str, int]] = {}
    for lineno, line in metadata_lines(loc_path):
        parts = line.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise MaskMetadataError(loc_path, f"{line!r}: expected {LAYOUT}", lineno)
        image_id, mask_path, ignore_path = parts
        if image_id in masks:
            if ignore_path:
                first = ignores[image_id][1]
                raise MaskMetadataError(
                    loc_path,
                    f"{line!r}: a second ignore mask for {image_id!r} (only the image's first "
                    f"line, {first}, may name one; leave the field empty here)",
                    lineno,
                )
            masks[image_id].append(mask_path)
        else:
            masks[image_id] = [mask_path]
            ignores[image_id] = (ignore_path, lineno)

    annotations = {}
    for image_id in image_ids:
        if image_id not in masks:
            raise MaskMetadataError(loc_path, f"no mask for image id {image_id!r} ({ids_path})")
        ignore_path, lineno = ignores[image_id]
        annotations[image_id] = MaskAnnotation(tuple(masks[image_id]), ignore_path, lineno)
    return MaskMetadata(image_ids=image_ids, annotations=annotations, localization=loc_path)


def read_mask(path: str | Path, size: tuple[int, int], where: str = "") -> np.ndarray:
    """One mask file as wsolevaluation reads it, in a ``(height, width)`` frame.

    Returns:
        ``(height, width)`` float32 grey values in [0, 255]: ``cv2.imread`` as 8-bit greyscale,
        ``cv2.resize`` to ``(width, height)`` with nearest-neighbour interpolation.

    Raises:
        MaskMetadataError: the file is missing or OpenCV cannot decode it (``where`` names the
            metadata line that refers to it).
    """
    import cv2  # only the mask path needs OpenCV; the box evaluator does not import it

    path = Path(path)
    suffix = f" (named in {where})" if where else ""
    if not path.is_file():
        raise MaskMetadataError(path, f"mask file not found{suffix}")
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise MaskMetadataError(path, f"not a readable image{suffix}")
    height, width = size
    return cv2.resize(np.float32(grey), (width, height), interpolation=cv2.INTER_NEAREST)


def ground_truth(
    mask_root: str | Path,
    annotation: MaskAnnotation,
    size: tuple[int, int],
    where: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """An image's ``(foreground, ignore)`` bool masks in a ``(height, width)`` frame.

    ``foreground``: union over the instance masks of ``grey > 0.5``; ``ignore``: the ignore
    mask's ``grey > 0.5`` minus the foreground (all False without an ignore mask).
    """
    root = Path(mask_root)
    foreground = np.zeros(size, dtype=bool)
    for mask_path in annotation.mask_paths:
        foreground |= read_mask(root / mask_path, size, where) > 0.5
    if annotation.ignore_path:
        ignore = read_mask(root / annotation.ignore_path, size, where) > 0.5
        ignore &= ~foreground
    else:
        ignore = np.zeros(size, dtype=bool)
    return foreground, ignore
