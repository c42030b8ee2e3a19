"""TF-slim's input pipeline for Inception, in PyTorch: the preprocessing and the batch stream of
the CUB PC-softmax run (Qin et al. section 3; their ``cub_experiments/train.py`` and ``eval.py``
build on TF-slim's ``preprocessing/inception_preprocessing.py`` with its defaults).

Training (slim's ``preprocess_for_train`` with ``fast_mode=True``, its default, and no box, so the
whole image is the box):

1. a crop drawn as ``tf.image.sample_distorted_bounding_box`` draws it (aspect ratio w / h in
   [0.75, 1.33], area in [0.05, 1] of the image, at least 0.1 of the box covered, 100 attempts,
   else the whole image). With the whole image as the box, "covers 0.1 of the box" means the
   crop's area is at least 0.1 of the image, so the effective area range is [0.1, 1];
2. bilinear resize to S x S, aspect ratio not kept (``tf.image.resize_images`` of TF 1.x: source
   coordinate = output index x in / out, no half-pixel offset, no antialiasing);
3. horizontal flip with probability 0.5;
4. colour: brightness + U(-32/255, 32/255), then saturation x U(0.5, 1.5) (HSV, S clipped to
   [0, 1]), in that fixed order; fast mode does no hue or contrast change;
5. clip to [0, 1]; slim then maps to [-1, 1] by 2x - 1.

Evaluation (``preprocess_for_eval``): the central fraction 0.875 of the image (start =
int((n - 0.875 n) / 2) on each axis, size n - 2 start, as ``tf.image.central_crop``), bilinear
resize to S x S as above, 2x - 1.

The project's models take ImageNet mean/std-normalised images, so both transforms end with that
normalisation instead of 2x - 1; ``InceptionV3`` with Google's weights maps its input back to
2x - 1 of the [0, 1] image, so the network sees slim's values (up to float rounding).

Not bit-identical to TF: random numbers come from torch, not TF's Philox streams; JPEG decoding is
PIL's, not ``tf.image.decode_jpeg``'s; saturation is computed in closed form (the same function as
TF's HSV round trip, up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Sampler

from infocam_exp.data.wsol import IMAGENET_MEAN, IMAGENET_STD

_F = np.float32

#: slim's defaults (inception_preprocessing.distorted_bounding_box_crop)
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
CENTRAL_FRACTION = 0.875
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)


def _lrint(x: float) -> int:
    """C's lrintf in the default rounding mode: to nearest, ties to even."""
    return int(np.rint(x))


def _uniform_int(n: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, n)."""
    return int(torch.randint(int(n), (), generator=generator))


def _uniform(generator: torch.Generator | None) -> float:
    """Uniform float32 in [0, 1)."""
    return float(torch.rand((), generator=generator))


def _random_crop(
    width: int, height: int, min_rel: float, max_rel: float, aspect: np.float32, generator: torch.Generator | None
) -> tuple[int, int, int, int] | None:
    """One attempt of TF's crop generator (float32 arithmetic as the C++ kernel): (x, y, w, h)
    with w = round(h * aspect) and area in [min_rel, max_rel] x width x height, or None."""
    min_area = _F(_F(min_rel) * _F(width)) * _F(height)
    max_area = _F(_F(max_rel) * _F(width)) * _F(height)
    h = _lrint(np.sqrt(_F(min_area / aspect)))
    max_h = _lrint(np.sqrt(_F(max_area / aspect)))
    if _lrint(_F(max_h) * aspect) > width:
        # the largest height whose rounded width still fits
        max_h = int((width + 0.5 - 1e-7) / float(aspect))
        if _lrint(_F(max_h) * aspect) > width:
            max_h -= 1
    max_h = min(max_h, height)
    h = min(h, max_h)
    if h < max_h:
        h += _uniform_int(max_h - h + 1, generator)  # closed range [h, max_h]
    w = _lrint(_F(h) * aspect)
    area = _F(w * h)
    if area < min_area:  # rounding: try one row taller, then one shorter
        h += 1
        w = _lrint(_F(h) * aspect)
        area = _F(w * h)
    if area > max_area:
        h -= 1
        w = _lrint(_F(h) * aspect)
        area = _F(w * h)
    if area < min_area or area > max_area or w > width or h > height or w <= 0 or h <= 0:
        return None
    # TF draws the offset in [0, n - size), so a smaller crop never touches the last row/column
    y = _uniform_int(height - h, generator) if h < height else 0
    x = _uniform_int(width - w, generator) if w < width else 0
    return x, y, w, h


def sample_distorted_crop(
    width: int,
    height: int,
    generator: torch.Generator | None = None,
    min_object_covered: float = MIN_OBJECT_COVERED,
    aspect_ratio_range: tuple[float, float] = ASPECT_RATIO_RANGE,
    area_range: tuple[float, float] = AREA_RANGE,
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[int, int, int, int]:
    """A crop ``(x, y, w, h)`` of a ``width`` x ``height`` image (pixels), drawn as
    ``tf.image.sample_distorted_bounding_box`` with the whole image as the only box.

    Each attempt draws an aspect ratio uniformly in ``aspect_ratio_range``, a height uniformly
    between the smallest and largest allowed by ``area_range`` (integer sizes, w = round(h * a)),
    and an offset; it is kept when the crop covers at least ``min_object_covered`` of the image.
    After ``max_attempts`` failures the whole image is returned.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    lo, hi = (_F(a) for a in aspect_ratio_range)
    image_area = _F(width * height)
    for _ in range(int(max_attempts)):
        aspect = _F(_F(_uniform(generator)) * _F(hi - lo)) + lo
        crop = _random_crop(width, height, area_range[0], area_range[1], aspect, generator)
        if crop is None:
            continue
        area = crop[2] * crop[3]
        # the box is the whole image: covered fraction = crop area / image area
        if area >= 1 and _F(area) / image_area >= _F(min_object_covered):
            return crop
    return 0, 0, int(width), int(height)


def central_crop_box(width: int, height: int, fraction: float = CENTRAL_FRACTION) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of ``tf.image.central_crop``: start = int((n - n * fraction) / 2) per
    axis (float64, truncated), size = n - 2 * start."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"central fraction must be in (0, 1], got {fraction}")
    y = int((float(height) - float(height) * fraction) / 2)
    x = int((float(width) - float(width) * fraction) / 2)
    return x, y, width - 2 * x, height - 2 * y


def _legacy_axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower/upper source indices and weights of one axis of TF 1.x's bilinear resize."""
    scale = torch.tensor(float(n_in), dtype=torch.float32) / torch.tensor(float(n_out), dtype=torch.float32)
    src = torch.arange(n_out, dtype=torch.float32) * scale  # no half-pixel offset
    lower = torch.floor(src)
    frac = src - lower
    lo = lower.long().clamp(0, n_in - 1)
    hi = torch.ceil(src).long().clamp(0, n_in - 1)
    return lo, hi, frac


def resize_bilinear_legacy(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) float -> (C, h, w): ``tf.image.resize_bilinear(align_corners=False)`` of TF 1.x
    (``half_pixel_centers=False``): output pixel i samples source coordinate i * H / h, linear
    interpolation between floor and ceil (clamped to the last pixel), x first, then y."""
    if image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
    _, h_in, w_in = image.shape
    h_out, w_out = int(size[0]), int(size[1])
    y0, y1, fy = _legacy_axis(h_in, h_out)
    x0, x1, fx = _legacy_axis(w_in, w_out)
    fx = fx.to(image.dtype).view(1, -1, 1)
    fy = fy.to(image.dtype).view(-1, 1, 1)
    hwc = image.permute(1, 2, 0).contiguous()  # whole pixels per gather: several times faster
    top_rows, bottom_rows = hwc.index_select(0, y0), hwc.index_select(0, y1)
    tl, tr = top_rows.index_select(1, x0), top_rows.index_select(1, x1)
    bl, br = bottom_rows.index_select(1, x0), bottom_rows.index_select(1, x1)
    top = tl + (tr - tl) * fx
    bottom = bl + (br - bl) * fx
    return (top + (bottom - top) * fy).permute(2, 0, 1).contiguous()


def adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """(3, H, W) float RGB -> the same with HSV saturation x ``factor`` (clipped to [0, 1]), hue
    and value kept, as ``tf.image.adjust_saturation``. Inputs may lie outside [0, 1] (after a
    brightness shift); a pixel whose value (max channel) is <= 0 becomes grey at that value, as
    TF's conversion (saturation 0 there) makes it.

    In closed form: with v = max, s = (v - min) / v and s' = clip(s * factor, 0, 1), each channel
    becomes v - (v - c) * s' / s, and s' / s = min(factor, v / (v - min)).
    """
    if factor < 0:
        raise ValueError(f"saturation factor must be >= 0, got {factor}")
    v = image.amax(dim=0, keepdim=True)
    spread = v - image.amin(dim=0, keepdim=True)
    # grey pixels (spread 0) give v / 0 = inf, and stay grey; v <= 0 gives ratio 0
    ratio = torch.where(v > 0, torch.clamp(v / spread, max=float(factor)), torch.zeros_like(v))
    return v - (v - image) * ratio


def pil_to_unit_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> (3, H, W) float32 in [0, 1] (uint8 x float32(1/255), as TF's
    ``convert_image_dtype``)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() * _F(1.0 / 255.0)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> ImageNet mean/std-normalised (the project's model input)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


class InceptionTrainTransform:
    """slim's Inception training preprocessing (module docstring): PIL image -> (3, S, S) float32,
    ImageNet-normalised (``unit_range=True``: the [0, 1] image before that normalisation).

    Randomness comes from ``generator`` (None: torch's global generator, which the DataLoader
    seeds per worker).
    """

    def __init__(self, image_size: int, generator: torch.Generator | None = None, unit_range: bool = False) -> None:
        self.image_size = int(image_size)
        self.generator = generator
        self.unit_range = bool(unit_range)

    def describe(self) -> str:
        lo, hi = ASPECT_RATIO_RANGE
        return (
            f"TF-slim inception_preprocessing (train, fast mode): sample_distorted_bounding_box crop "
            f"(whole image as box, min_object_covered {MIN_OBJECT_COVERED}, aspect ratio [{lo}, {hi}], "
            f"area [{AREA_RANGE[0]}, {AREA_RANGE[1]}], {MAX_ATTEMPTS} attempts), TF 1.x bilinear resize to "
            f"{self.image_size}x{self.image_size}, flip p=0.5, brightness +U(-32/255, 32/255) then "
            f"saturation xU({SATURATION_RANGE[0]}, {SATURATION_RANGE[1]}), clip [0, 1], "
            "network input 2x-1 (ImageNet-normalised in the loader, mapped back by the model)"
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        g = self.generator
        x = pil_to_unit_tensor(image)
        cx, cy, cw, ch = sample_distorted_crop(x.shape[2], x.shape[1], g)
        x = resize_bilinear_legacy(x[:, cy:cy + ch, cx:cx + cw], (self.image_size, self.image_size))
        if _uniform(g) < 0.5:
            x = x.flip(-1)
        x = x + (-BRIGHTNESS_MAX_DELTA + 2 * BRIGHTNESS_MAX_DELTA * _uniform(g))
        lo, hi = SATURATION_RANGE
        x = adjust_saturation(x, lo + (hi - lo) * _uniform(g))
        x = x.clamp(0.0, 1.0)
        return x if self.unit_range else imagenet_normalise(x)


class InceptionEvalTransform:
    """slim's Inception evaluation preprocessing: central crop 0.875, TF 1.x bilinear resize to
    S x S. PIL image -> (3, S, S) float32, ImageNet-normalised (``unit_range=True``: [0, 1])."""

    def __init__(self, image_size: int, central_fraction: float = CENTRAL_FRACTION, unit_range: bool = False) -> None:
        self.image_size = int(image_size)
        self.central_fraction = float(central_fraction)
        self.unit_range = bool(unit_range)

    def describe(self) -> str:
        return (
            f"TF-slim inception_preprocessing (eval): central crop {self.central_fraction} "
            f"(tf.image.central_crop), TF 1.x bilinear resize to {self.image_size}x{self.image_size}, "
            "network input 2x-1"
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        x = pil_to_unit_tensor(image)
        cx, cy, cw, ch = central_crop_box(x.shape[2], x.shape[1], self.central_fraction)
        x = resize_bilinear_legacy(x[:, cy:cy + ch, cx:cx + cw], (self.image_size, self.image_size))
        return x if self.unit_range else imagenet_normalise(x)


class PassStreamSampler(Sampler[int]):
    """Training indices as one endless stream of shuffled passes over ``num_items``, served in
    loader epochs of ``steps_per_epoch * batch_size`` indices, so every batch is full.

    TF-slim's ``tf.train.batch`` reads a queue that cycles over the training record, so each of
    its steps has ``batch_size`` images and passes run into each other; a PyTorch epoch would end
    in a short batch instead. Pass p is a permutation drawn from ``(seed, p)``, and loader epoch e
    covers stream positions [e * L, (e + 1) * L), so the order depends only on the seed and the
    epoch (a resumed run sees what an uninterrupted one sees). Lightning calls ``set_epoch``
    before each epoch; without it the epoch counts up by itself.

    Args:
        num_items: N, the training set size.
        batch_size: B.
        seed: the stream's seed.
        steps_per_epoch: batches per loader epoch; None: ceil(N / B), about one pass.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, steps_per_epoch: int | None = None) -> None:
        if num_items < 1 or batch_size < 1:
            raise ValueError(f"need num_items >= 1 and batch_size >= 1, got {num_items}, {batch_size}")
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else math.ceil(self.num_items / self.batch_size)
        self.epoch = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def _pass(self, p: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != p:
            self._cached = (p, np.random.default_rng([self.seed % 2**63, p]).permutation(self.num_items))
        return self._cached[1]

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1
        start = epoch * len(self)
        for pos in range(start, start + len(self)):
            p, i = divmod(pos, self.num_items)
            yield int(self._pass(p)[i])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "stream of shuffled passes cut into full batches (as slim's tf.train.batch)",
            "batch_size": self.batch_size,
            "steps_per_loader_epoch": self.steps_per_epoch,
        }


def authors_eval_multiplicity(record_size: int, declared_size: int = 5794, batch_size: int = 100) -> np.ndarray:
    """How many times each image of a test record (in record order) enters the authors' CUB score.

    Their eval.py runs ceil(declared_size / batch_size) batches from a reader that cycles over the
    record (slim's hard-coded validation size 5,794 for cub_200, batches of 100), so 5,800
    predictions are scored whatever the record holds. Returns (record_size,) int counts; with
    four batching threads the images at the edge can swap places, not the totals.
    """
    if record_size < 1:
        raise ValueError(f"record_size must be >= 1, got {record_size}")
    scored = math.ceil(declared_size / batch_size) * batch_size
    counts = np.full(record_size, scored // record_size, dtype=np.int64)
    counts[: scored % record_size] += 1
    return counts
