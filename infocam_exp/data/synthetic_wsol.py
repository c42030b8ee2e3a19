"""Embedded WSOL benchmark: Fashion-MNIST items pasted onto textured, cluttered canvases.

Each image holds one real Fashion-MNIST item (label = its class, 10 classes), resampled to a random
size and position on an ``image_size`` x ``image_size`` RGB canvas, with its exact ground-truth box.
Everything is generated in memory from ``seed`` (the data seed) with batched torch ops (about
1-2 ms of CPU per 64 px image), so the same arguments give bit-identical uint8 tensors on a given
machine and torch build. Nothing is written to disk unless ``cache_dir`` is set.

Rendering, back to front (all colours in [0, 1] before the final uint8 rounding):

1. Background: a randomly rotated/zoomed crop of one of the grey textures bundled with scikit-image
   (brick, grass, gravel, ...), read from its package folder (never fetched), given a random
   contrast and mapped through a random two-colour ramp ("duotone").
2. Clutter (``clutter`` > 0): up to ``MAX_FRAGMENTS`` fragments, square crops of *other* items
   of the same split (any class, so they carry no information about the label), at the object's
   scale range, anywhere on the canvas (they may leave it), flat-coloured and semi-transparent.
   Each slot is present with probability ``clutter``.
3. The object: source pixels above ``SOURCE_THRESHOLD`` (Fashion-MNIST has faint stray pixels) form
   an opaque silhouette; it is resampled bilinearly, coloured with a random hue and shaded by the
   item's own intensity.
4. With probability ``invert_prob`` (default 0) every colour is inverted (dark objects on light
   backgrounds; implemented by inverting each layer's colours, which inverts the composite).

Box convention: ``(x0, y0, x1, y1)`` in pixels of the generated image, **inclusive-exclusive**
(columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``), the tight box of the pixels where the
object's quantised opacity is nonzero, i.e. exactly the pixels the object changed. For the
wsolevaluation-style evaluator (integer corners, IoU with the +1-pixel convention) use
``inclusive_corners(boxes)`` = ``(x0, y0, x1 - 1, y1 - 1)``; ``SyntheticWSOLDataModule`` does this
for its val/test batches, which therefore follow the package convention of ``infocam_exp.data.wsol``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infocam_exp.data.base import (
    InMemoryDataModule,
    counts_from_labels,
)
from infocam_exp.data.mnist import FASHION_MNIST_CLASSES
from infocam_exp.errors import ConfigError

log = logging.getLogger(__name__)

#: Source pixels <= this (of 255) are background: at 10 nearly every item is one connected blob,
#: while at 0 the stray faint pixels of Fashion-MNIST would stretch the boxes.
SOURCE_THRESHOLD = 10
#: scikit-image's bundled grey-level textures/photos used as backgrounds (files in skimage/data).
TEXTURE_FILES = (
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "cell.png",
    "coins.png",
    "text.png",
    "page.png",
    "camera.png",
    "ihc.png",
    "hubble_deep_field.jpg",
    "coffee.png",
)
TEXTURE_SIZE = 256
MAX_FRAGMENTS = 3
#: Normalisation constants: the default configuration (64 px, object_scale (0.5, 0.9),
#: clutter 0.5, invert_prob 0) measures mean 0.32 and std 0.16 in every channel. Fixed, so
#: normalisation does not depend on split sizes or seeds.
NORM_MEAN = (0.32, 0.32, 0.32)
NORM_STD = (0.16, 0.16, 0.16)
_SPLIT_IDS = {"pool": 0, "train": 1, "val": 2, "test": 3}
#: Bump when rendering changes, so ``cache_dir`` files of older renderings are not reused.
CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Pure tensor pieces
# --------------------------------------------------------------------------------------------


def load_textures() -> torch.Tensor:
    """(T, TEXTURE_SIZE, TEXTURE_SIZE) float32 grey textures in [0, 1] from scikit-image's bundled data files.

    Reads the files directly (``skimage.data.data_dir``), so nothing is ever downloaded; each is
    centre-cropped to a square and resized with antialiasing.
    """
    try:
        import skimage.data
    except ImportError as err:  # scikit-image is only needed for its data files
        raise ImportError(
            "SyntheticWSOLDataModule needs scikit-image for its bundled background textures "
            "(pip install scikit-image)"
        ) from err
    from PIL import Image

    root = Path(skimage.data.data_dir)
    out = []
    for name in TEXTURE_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"scikit-image texture {path} is missing (reinstall scikit-image)")
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        h, w = arr.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        t = torch.from_numpy(arr[top : top + side, left : left + side].copy())[None, None]
        t = F.interpolate(t, size=(TEXTURE_SIZE, TEXTURE_SIZE), mode="bilinear", antialias=True, align_corners=False)
        out.append(t[0, 0].clamp(0, 1))
    return torch.stack(out)


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., 3) RGB in [0, 1] from hue, saturation, value tensors of equal shape, all in [0, 1]."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device)
    t = (k + 6.0 * h[..., None]) % 6.0
    f = (torch.minimum(t, 4.0 - t)).clamp(0.0, 1.0)
    return v[..., None] - v[..., None] * s[..., None] * f


def _pixel_centres(size: int, device: torch.device | None = None) -> torch.Tensor:
    """(size,) float32 pixel-centre coordinates 0.5, 1.5, ... (pixel i covers [i, i + 1))."""
    return torch.arange(size, dtype=torch.float32, device=device) + 0.5


def _interp_matrix(size: int, sizes: torch.Tensor, offsets: torch.Tensor, src: int) -> torch.Tensor:
    """(B, size, src) bilinear weights placing a ``src``-pixel line at ``offsets`` with ``sizes``.

    Canvas pixel o (centre o + 0.5) sees source coordinate (o + 0.5 - offset) * src / size and
    takes weight max(0, 1 - |coordinate - (i + 0.5)|) from source pixel i: exactly the bilinear
    sampling of ``grid_sample(..., padding_mode="zeros", align_corners=False)``, but separable."""
    c_out = _pixel_centres(size, sizes.device)
    c_src = _pixel_centres(src, sizes.device)
    coord = (c_out[None, :] - offsets[:, None]) * (src / sizes)[:, None]  # (B, size)
    return (1.0 - (coord[:, :, None] - c_src[None, None, :]).abs()).clamp_(min=0.0)


def _resample_items(
    items: torch.Tensor,
    image_size: int,
    sizes: torch.Tensor,
    offsets: torch.Tensor,
    window: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly place 28x28 items into an ``image_size`` canvas (scale and shift only).

    The resampling is separable, so it is two small batched matmuls (rows, then columns) instead
    of a per-pixel sampling grid, which is several times faster on CPU.

    Args:
        items: (B, 28, 28) uint8 source items.
        sizes: (B,) float32 side, in canvas pixels, of the item's whole 28x28 frame.
        offsets: (B, 2) float32 canvas position (x, y), in pixels, of the frame's top-left corner.
        window: optional ((B, 2) top-left, (B,) side) square of the source, in source pixels;
            source pixels whose centre lies outside it are cut away (clutter fragments).

    Returns:
        alpha: (B, 1, S, S) float32 opacity in [0, 1] (silhouette of pixels > SOURCE_THRESHOLD).
        shade: (B, 1, S, S) float32 item intensity in [0, 1] under that silhouette (un-premultiplied).
    """
    src = items.shape[-1]
    x = items.to(torch.float32) / 255.0
    mask = (items > SOURCE_THRESHOLD).to(torch.float32)
    if window is not None:
        corner, side = window
        c = _pixel_centres(src, items.device)
        keep_x = (c[None] >= corner[:, 0:1]) & (c[None] < corner[:, 0:1] + side[:, None])
        keep_y = (c[None] >= corner[:, 1:2]) & (c[None] < corner[:, 1:2] + side[:, None])
        mask = mask * (keep_y[:, :, None] & keep_x[:, None, :]).to(torch.float32)
    # Premultiplied intensity: interpolating it with the mask avoids dark fringes at the edges.
    stack = torch.stack([mask, mask * x], dim=1)  # (B, 2, 28, 28)
    sizes = sizes.to(torch.float32)
    offsets = offsets.to(torch.float32)
    b, s = items.shape[0], image_size
    rows = _interp_matrix(s, sizes, offsets[:, 1], src)  # (B, S, 28)
    cols = _interp_matrix(s, sizes, offsets[:, 0], src)
    # Plain bmm on (B, 28, 2 * 28) and (B, 2 * S, 28): faster than broadcasting matmuls.
    out = torch.bmm(rows, stack.permute(0, 2, 1, 3).reshape(b, src, 2 * src))  # (B, S, 2 * 28)
    out = torch.bmm(out.reshape(b, 2 * s, src), cols.transpose(1, 2))  # (B, 2 * S, S)
    out = out.reshape(b, s, 2, s).permute(0, 2, 1, 3)  # (B, 2, S, S)
    alpha, premult = out[:, 0:1], out[:, 1:2]
    shade = premult / alpha.clamp(min=1e-6)
    return alpha.clamp_(0.0, 1.0), shade.clamp_(0.0, 1.0)


def quantise_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Opacity rounded to multiples of 1/255, so "nonzero" means "visible in a uint8 image"."""
    return torch.round(alpha * 255.0) / 255.0


def boxes_from_masks(mask: torch.Tensor) -> torch.Tensor:
    """(B, 4) int64 tight inclusive-exclusive boxes (x0, y0, x1, y1) of (B, H, W) bool masks.

    An empty mask gives (0, 0, 0, 0)."""
    b, h, w = mask.shape
    cols = mask.any(dim=1)  # (B, W)
    rows = mask.any(dim=2)  # (B, H)
    x0 = cols.to(torch.int8).argmax(dim=1)
    x1 = w - cols.flip(1).to(torch.int8).argmax(dim=1)
    y0 = rows.to(torch.int8).argmax(dim=1)
    y1 = h - rows.flip(1).to(torch.int8).argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.int64)
    return torch.where(cols.any(dim=1)[:, None], boxes, torch.zeros_like(boxes))


def _shaded_layer(colours: torch.Tensor, shade: torch.Tensor, min_shade: float, invert: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) colour * (min_shade + (1 - min_shade) * shade), or 1 minus it where ``invert``.

    One fused op on the 3-channel tensor: the per-image base (0 or 1) and signed colour are tiny."""
    f = min_shade + (1.0 - min_shade) * shade  # (B, 1, S, S)
    inv = invert.to(colours.dtype)[:, None]
    base = inv[:, :, None, None].expand(-1, 3, 1, 1)
    signed = ((1.0 - 2.0 * inv) * colours)[:, :, None, None]
    return torch.addcmul(base, signed, f)


def paste_objects(
    canvas: torch.Tensor,
    items: torch.Tensor,
    colours: torch.Tensor,
    sizes: torch.Tensor,
    offsets: torch.Tensor,
    min_shade: float = 0.3,
    invert: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste one opaque, shaded item per canvas and return its exact box.

    Args:
        canvas: (B, 3, S, S) float32 in [0, 1].
        items: (B, 28, 28) uint8 Fashion-MNIST-like items.
        colours: (B, 3) float32 RGB in [0, 1] of the item's brightest pixels.
        sizes: (B,) side, in canvas pixels, of the item's 28x28 frame (28 = native size).
        offsets: (B, 2) (x, y) canvas position, in pixels, of the frame's top-left corner.
        min_shade: colour factor of the item's darkest silhouette pixels (1 at its brightest).
        invert: optional (B,) bool: paste the item's inverted colours (1 - rgb) there.

    Returns:
        canvas: (B, 3, S, S) float32 with the items composited over it.
        boxes: (B, 4) int64 (x0, y0, x1, y1) inclusive-exclusive, tight around the pixels where
            the quantised opacity is nonzero.
    """
    if invert is None:
        invert = torch.zeros(items.shape[0], dtype=torch.bool, device=items.device)
    alpha, shade = _resample_items(items, canvas.shape[-1], sizes, offsets)
    alpha = quantise_alpha(alpha)
    out = torch.lerp(canvas, _shaded_layer(colours, shade, min_shade, invert), alpha)
    return out, boxes_from_masks(alpha[:, 0] > 0)


def inclusive_corners(boxes: torch.Tensor) -> torch.Tensor:
    """Inclusive-exclusive boxes -> inclusive integer corners (x0, y0, x1 - 1, y1 - 1).

    The latter is this project's box convention (``infocam_exp.data.wsol``) and what
    wsolevaluation's +1-pixel IoU expects. Padding rows (all -1) stay -1. Any (..., 4) tensor."""
    pad = (boxes == -1).all(dim=-1, keepdim=True)
    out = boxes.clone()
    out[..., 2:] -= 1
    return torch.where(pad, boxes, out)


def _split_generator(seed: int, split: str) -> torch.Generator:
    """A torch generator for one split, derived from the data seed (splits are independent)."""
    state = np.random.SeedSequence([int(seed), _SPLIT_IDS[split]]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _random_colours(
    n: int, g: torch.Generator, sat: tuple[float, float], val: tuple[float, float], *shape: int
) -> torch.Tensor:
    """(n, *shape, 3) RGB with uniform hue and saturation/value uniform in the given ranges."""
    h = torch.rand(n, *shape, generator=g)
    s = _uniform(n, *sat, g, *shape)
    v = _uniform(n, *val, g, *shape)
    return hsv_to_rgb(h, s, v)


def sample_params(
    num: int,
    pool_size: int,
    image_size: int,
    object_scale: tuple[float, float],
    clutter: float,
    num_textures: int,
    g: torch.Generator,
    invert_prob: float = 0.0,
) -> dict[str, torch.Tensor]:
    """All random choices of ``num`` images, drawn up front in a fixed order.

    Drawing everything before rendering makes the result independent of the render chunk size.
    Object items are drawn from the pool without replacement (``num <= pool_size``). Lengths are
    in canvas pixels unless named ``frag_side``/``frag_corner`` (source pixels of the 28x28 item).
    """
    s = float(image_size)
    p: dict[str, torch.Tensor] = {}
    # Background: texture, rotation, crop side (texture pixels), centre, contrast, colour ramp.
    p["tex"] = torch.randint(num_textures, (num,), generator=g)
    p["tex_angle"] = _uniform(num, 0.0, 2.0 * math.pi, g)
    crop = (s * _uniform(num, 0.6, 2.5, g)).clamp(max=0.66 * TEXTURE_SIZE)
    p["tex_crop"] = crop
    half_diag = crop / math.sqrt(2.0) + 1.0  # a rotated crop stays inside its tile
    p["tex_centre"] = half_diag[:, None] + torch.rand(num, 2, generator=g) * (
        TEXTURE_SIZE - 2.0 * half_diag[:, None]
    )
    p["tex_contrast"] = _uniform(num, 0.4, 1.2, g)
    p["bg_lo"] = _random_colours(num, g, (0.0, 0.8), (0.0, 0.45))
    p["bg_hi"] = _random_colours(num, g, (0.0, 0.8), (0.25, 0.7))
    # Object: item, side of its 28x28 frame, position (the frame stays on the canvas), colour.
    p["item"] = torch.randperm(pool_size, generator=g)[:num]
    p["size"] = s * _uniform(num, object_scale[0], object_scale[1], g)
    p["offset"] = torch.rand(num, 2, generator=g) * (s - p["size"])[:, None]
    p["colour"] = _random_colours(num, g, (0.3, 1.0), (0.75, 1.0))
    # Clutter fragments: present with probability `clutter`; any item of the pool, any class, so
    # they say nothing about the label.
    f = MAX_FRAGMENTS
    p["frag_on"] = torch.rand(num, f, generator=g) < clutter
    p["frag_item"] = torch.randint(pool_size, (num, f), generator=g)
    p["frag_side"] = _uniform(num, 7.0, 14.0, g, f)
    p["frag_corner"] = torch.rand(num, f, 2, generator=g) * (28.0 - p["frag_side"][..., None])
    p["frag_size"] = s * _uniform(num, object_scale[0], object_scale[1], g, f)
    frag_centre = torch.rand(num, f, 2, generator=g) * s  # anywhere on the canvas
    src_centre = p["frag_corner"] + p["frag_side"][..., None] / 2.0
    p["frag_offset"] = frag_centre - src_centre * (p["frag_size"] / 28.0)[..., None]
    p["frag_colour"] = _random_colours(num, g, (0.3, 1.0), (0.6, 1.0), f)
    p["frag_opacity"] = _uniform(num, 0.25, 0.55, g, f)
    # Drawn even when invert_prob is 0, so the other draws do not depend on it.
    p["invert"] = torch.rand(num, generator=g) < invert_prob
    return p


def _invert_colours(colours: torch.Tensor, invert: torch.Tensor) -> torch.Tensor:
    """1 - colour where ``invert`` (B,), for (B, ..., 3) colours: inverting every layer's colour
    inverts the composite, which is cheaper than inverting the image."""
    inv = invert.view(-1, *([1] * (colours.ndim - 1)))
    return torch.where(inv, 1.0 - colours, colours)


def _affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """(B, S, S, 2) sampling grid equal to ``F.affine_grid(theta, (B, 1, S, S), align_corners=False)``.

    Built with broadcast multiply-adds: ``affine_grid`` goes through a batched matmul with an inner
    dimension of 3 that is several times slower on CPU."""
    u = (2.0 * torch.arange(size, dtype=theta.dtype, device=theta.device) + 1.0) / size - 1.0
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    grid = torch.empty(theta.shape[0], size, size, 2, dtype=theta.dtype, device=theta.device)
    for i in range(2):
        grid[..., i] = (t[:, i, 1] * u[:, None] + t[:, i, 2]) + t[:, i, 0] * u[None, :]
    return grid


def _render_background(p: dict[str, torch.Tensor], textures: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, 3, S, S) duotone texture crops. One grid_sample over a texture atlas for all samples."""
    b = p["tex"].shape[0]
    t, ts = textures.shape[0], textures.shape[-1]
    atlas = textures.permute(1, 0, 2).reshape(1, 1, ts, t * ts)  # tiles side by side
    # Canvas normalised (u, v) in [-1, 1] -> tile pixels: centre + crop/2 * R(angle) (u, v);
    # then atlas normalised coordinates (width t * ts, height ts).
    cos, sin = torch.cos(p["tex_angle"]), torch.sin(p["tex_angle"])
    half = p["tex_crop"] / 2.0
    cx = p["tex_centre"][:, 0] + p["tex"].to(torch.float32) * ts
    cy = p["tex_centre"][:, 1]
    theta = torch.stack(
        [
            torch.stack([half * cos / (t * ts) * 2, -half * sin / (t * ts) * 2, 2 * cx / (t * ts) - 1], 1),
            torch.stack([half * sin / ts * 2, half * cos / ts * 2, 2 * cy / ts - 1], 1),
        ],
        dim=1,
    )
    grid = _affine_grid(theta, image_size)
    lum = F.grid_sample(
        atlas, grid.reshape(1, b * image_size, image_size, 2), mode="bilinear", align_corners=False
    ).reshape(b, 1, image_size, image_size)
    mean = lum.mean(dim=(2, 3), keepdim=True)
    lum = (0.5 + p["tex_contrast"][:, None, None, None] * (lum - mean)).clamp_(0.0, 1.0)
    lo = _invert_colours(p["bg_lo"], p["invert"])[:, :, None, None]
    hi = _invert_colours(p["bg_hi"], p["invert"])[:, :, None, None]
    return torch.lerp(lo.expand(-1, -1, image_size, image_size), hi, lum)


def _render_clutter(canvas: torch.Tensor, p: dict[str, torch.Tensor], pool: torch.Tensor) -> torch.Tensor:
    """Clutter fragments over the background (all slots resampled in one call)."""
    b, s = canvas.shape[0], canvas.shape[-1]
    f = p["frag_on"].shape[1]
    if bool(p["frag_on"].any()):
        alpha, shade = _resample_items(
            pool[p["frag_item"].reshape(-1)],
            s,
            p["frag_size"].reshape(-1),
            p["frag_offset"].reshape(-1, 2),
            window=(p["frag_corner"].reshape(-1, 2), p["frag_side"].reshape(-1)),
        )
        # Flat colour, with the item's intensity modulating the opacity: cheaper than a shaded
        # colour layer (one 3-channel op per slot) and still shows the garment's inner structure.
        alpha = alpha * (0.4 + 0.6 * shade)
        alpha = alpha.reshape(b, f, s, s) * (p["frag_opacity"] * p["frag_on"])[:, :, None, None]
        colours = _invert_colours(p["frag_colour"], p["invert"])
        for j in range(f):
            canvas = torch.lerp(canvas, colours[:, j, :, None, None], alpha[:, j : j + 1])
    return canvas


def render(
    p: dict[str, torch.Tensor],
    pool: torch.Tensor,
    textures: torch.Tensor,
    image_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render sampled parameters into images.

    Args:
        p: ``sample_params`` output (or a slice of it along the first dimension).
        pool: (M, 28, 28) uint8 items that ``p["item"]`` / ``p["frag_item"]`` index.
        textures: (T, TS, TS) float32 grey textures.

    Returns:
        images: (B, 3, S, S) uint8.
        boxes: (B, 4) int64 inclusive-exclusive (x0, y0, x1, y1) in pixels.
    """
    canvas = _render_background(p, textures, image_size)
    canvas = _render_clutter(canvas, p, pool)
    canvas, boxes = paste_objects(
        canvas, pool[p["item"]], p["colour"], p["size"], p["offset"], invert=p["invert"]
    )
    # Every layer is a convex blend of colours in [0, 1], so no clamp is needed; + 0.5 and
    # truncation round to nearest (ties up) in one op fewer than round().
    images = canvas.mul_(255.0).add_(0.5).to(torch.uint8)
    return images, boxes


def generate_split(
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    num: int,
    image_size: int,
    object_scale: tuple[float, float],
    clutter: float,
    seed: int,
    split: str,
    textures: torch.Tensor | None = None,
    chunk: int = 1024,
    invert_prob: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Generate one split from a pool of items (e.g. the Fashion-MNIST items reserved for it).

    Args:
        pool_images: (M, 28, 28) uint8 items; objects and clutter both come from here.
        pool_labels: (M,) int64 labels.
        num: number of images (<= M; objects are distinct items).
        split: "train", "val" or "test": picks an independent random stream of ``seed``.
        textures: ``load_textures()`` (read if None).
        chunk: images rendered per batch of tensor ops (bounds memory; results do not depend on it).
        invert_prob: probability that all colours of an image are inverted.

    Returns:
        dict with ``images`` (num, 3, S, S) uint8, ``labels`` (num,) int64, ``boxes`` (num, 1, 4)
        float32 inclusive-exclusive pixels, ``item`` (num,) int64 index of each object in the pool.
    """
    if num > pool_images.shape[0]:
        raise ValueError(f"{split}: {num} images requested but only {pool_images.shape[0]} items")
    if textures is None:
        textures = load_textures()
    if textures.ndim != 3 or textures.shape[1:] != (TEXTURE_SIZE, TEXTURE_SIZE):
        raise ValueError(f"textures must be (T, {TEXTURE_SIZE}, {TEXTURE_SIZE}), got {tuple(textures.shape)}")
    g = _split_generator(seed, split)
    p = sample_params(
        num, pool_images.shape[0], image_size, object_scale, clutter, textures.shape[0], g, invert_prob
    )
    images, boxes = [], []
    for start in range(0, num, chunk):
        part = {k: v[start : start + chunk] for k, v in p.items()}
        im, bx = render(part, pool_images, textures, image_size)
        images.append(im)
        boxes.append(bx)
    return {
        "images": torch.cat(images) if images else torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8),
        "labels": pool_labels[p["item"]].to(torch.int64),
        "boxes": (torch.cat(boxes) if boxes else torch.zeros(0, 4, dtype=torch.int64)).to(torch.float32)[:, None],
        "item": p["item"],
    }


# --------------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------------


def _scale_range(value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0.0 < lo <= hi <= 1.0:
        raise ConfigError(f"data.object_scale={[lo, hi]} must be [min, max] with 0 < min <= max <= 1")
    return lo, hi


class SyntheticWSOLDataModule(InMemoryDataModule):
    """Fashion-MNIST items on textured, cluttered canvases, with exact boxes (see the module doc).

    Objects of train and val come from disjoint parts of Fashion-MNIST's training split (a
    permutation of it drawn from ``seed``: train takes its head, val its tail, so ``num_train``
    does not change val), test objects from its test split. Clutter fragments come from the same
    split's items. The images (uint8, in memory) are rendered in ``setup``.

    Batches (before ``on_after_batch_transfer``, which normalises on the model's device):

    - train: ``[images uint8 (B, 3, S, S), labels int64 (B,)]``;
    - val/test: ``[images, labels, boxes float32 (B, 1, 4)]``, boxes ``(x0, y0, x1, y1)`` in pixels
      in this package's convention (``infocam_exp.data.wsol``): ``x1, y1`` are the *last* covered
      pixel (inclusive), as wsolevaluation's +1-pixel IoU expects. (The half-open tight box is
      ``x1 + 1, y1 + 1``; ``G`` = 1 box per image, so no -1 padding rows occur.)

    After ``on_after_batch_transfer`` images are float32 ``(x / 255 - NORM_MEAN) / NORM_STD``, with
    a random horizontal flip per training image when ``augment`` (training only).

    Args:
        root: data root for Fashion-MNIST's idx files (``<root>/FashionMNIST/raw/``, ``<root>/``,
            then /usr/share/datasets/fashion-mnist); None searches ``data`` and the system folder.
        download: fetch missing files into ``root`` with ``infocam_exp.fetch`` (never otherwise).
        image_size: S, the canvas side in pixels.
        object_scale: [min, max] side of the pasted 28x28 item frame as a fraction of S (uniform);
            the object's own box is smaller (items do not fill their frame).
        num_train, num_val, num_test: split sizes (train + val <= 60000, test <= 10000).
        batch_size, eval_batch_size: per-process batch sizes for training and evaluation.
        seed: data seed: the same seed gives bit-identical images (on the same torch build).
        clutter: probability in [0, 1] of each of the ``MAX_FRAGMENTS`` clutter fragments; 0 = none.
        augment: random horizontal flips of training batches.
        shuffle_seed: seed of the training order (default: the run's training seed,
            ``torch.initial_seed()``, as every loader of the project).
        cache_dir: if set, each rendered split is saved there as a .pt file named by a hash of
            everything that determines it (written atomically) and loaded on later runs. Off by
            default: rendering takes seconds, so only repeated runs (sweeps) gain.
        invert_prob: probability that all colours of an image are inverted (dark objects on
            light backgrounds too): a harder variant; 0 keeps objects brighter than most
            backgrounds.
    """

    # BatchNorm cannot train on a last batch of one image.
    drop_last_train = True


    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        image_size: int = 64,
        object_scale: Sequence[float] = (0.5, 0.9),
        num_train: int = 10_000,
        num_val: int = 1_000,
        num_test: int = 2_000,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        seed: int = 0,
        clutter: float = 0.5,
        augment: bool = True,
        shuffle_seed: int | None = None,
        cache_dir: str | None = None,
        invert_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size < 16:
            raise ConfigError(f"data.image_size must be >= 16, got {image_size}")
        if not 0.0 <= clutter <= 1.0:
            raise ConfigError(f"data.clutter must be in [0, 1] (a probability), got {clutter}")
        if not 0.0 <= invert_prob <= 1.0:
            raise ConfigError(f"data.invert_prob must be in [0, 1], got {invert_prob}")
        if min(num_train, num_val, num_test) < 1:
            raise ValueError(f"split sizes must be >= 1, got {num_train}, {num_val}, {num_test}")
        if num_train + num_val > 60_000 or num_test > 10_000:
            raise ConfigError(
                f"data.num_train + data.num_val = {num_train + num_val} must be <= 60000 and "
                f"data.num_test = {num_test} <= 10000 (Fashion-MNIST's splits; objects are distinct)"
            )
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        self.root = "data" if root is None else str(root)
        self.download = bool(download)
        self.image_size = int(image_size)
        self.object_scale = _scale_range(object_scale)
        self.sizes = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self.clutter = float(clutter)
        self.augment = bool(augment)
        self.shuffle_seed = None if shuffle_seed is None else int(shuffle_seed)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.invert_prob = float(invert_prob)
        self.num_classes = len(FASHION_MNIST_CLASSES)
        self.input_shape = (3, self.image_size, self.image_size)
        self.class_names = list(FASHION_MNIST_CLASSES)
        #: split -> (items uint8 (M, 28, 28), labels int64 (M,)): the split's object/clutter pool.
        self._pools: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        #: split -> {"images", "labels", "boxes", "item"} as returned by ``generate_split``, with
        #: boxes converted to inclusive corners.
        self.splits: dict[str, dict[str, torch.Tensor]] = {}
        self._texture_bank: torch.Tensor | None = None

    # -- data ---------------------------------------------------------------------------------

    def _load_pools(self) -> None:
        if self._pools:
            return
        # Imported here so that importing this module needs no idx reader.
        from infocam_exp.data.idx import load_mnist_like

        data = load_mnist_like(self.root, "fashion_mnist", download=self.download)
        n_train, n_test = data["train_images"].shape[0], data["test_images"].shape[0]
        if self.sizes["train"] + self.sizes["val"] > n_train or self.sizes["test"] > n_test:
            raise ConfigError(
                f"data.num_train + data.num_val = {self.sizes['train'] + self.sizes['val']} and "
                f"data.num_test = {self.sizes['test']} exceed the {n_train} / {n_test} items found"
            )
        perm = torch.randperm(data["train_images"].shape[0], generator=_split_generator(self.seed, "pool"))
        # Train takes the head of the permutation and val the tail: disjoint items, and
        # changing num_train leaves val unchanged.
        train_idx = perm[: self.sizes["train"]]
        val_idx = perm[perm.shape[0] - self.sizes["val"] :]
        self._pools = {
            "train": (data["train_images"][train_idx], data["train_labels"][train_idx]),
            "val": (data["train_images"][val_idx], data["train_labels"][val_idx]),
            "test": (data["test_images"], data["test_labels"]),
        }

    def prepare_facts(self) -> None:
        """Read Fashion-MNIST and set ``class_counts`` (of the training objects). Idempotent.

        Every training-pool item is used exactly once as an object, so the counts are known
        without rendering."""
        self._load_pools()
        self.class_counts = counts_from_labels(self._pools["train"][1], self.num_classes)

    def generate(self, split: str) -> dict[str, torch.Tensor]:
        """Render ``split`` ("train", "val" or "test") if not done yet and return its tensors."""
        if split not in self.splits:
            self.prepare_facts()
            cached = self._cache_path(split)
            if cached is not None and cached.is_file():
                self.splits[split] = torch.load(cached, map_location="cpu", weights_only=True)
                log.info("synthetic WSOL %s: loaded %s", split, cached)
                return self.splits[split]
            items, labels = self._pools[split]
            start = time.perf_counter()
            out = generate_split(
                items,
                labels,
                self.sizes[split],
                self.image_size,
                self.object_scale,
                self.clutter,
                self.seed,
                split,
                textures=self._textures(),
                invert_prob=self.invert_prob,
            )
            out["boxes"] = inclusive_corners(out["boxes"])
            self.splits[split] = out
            log.info(
                "synthetic WSOL %s: %d images of %d px rendered in %.1f s",
                split, self.sizes[split], self.image_size, time.perf_counter() - start,
            )
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
                torch.save(out, tmp)
                os.replace(tmp, cached)  # atomic: concurrent runs never read a partial file
        return self.splits[split]

    def _cache_path(self, split: str) -> Path | None:
        if self.cache_dir is None:
            return None
        # Everything that determines the split's bytes, including the source items themselves.
        items, labels = self._pools[split]
        key = hashlib.sha256()
        facts = (CACHE_VERSION, split, self.sizes[split], self.image_size, self.object_scale,
                 self.clutter, self.invert_prob, self.seed, torch.__version__)
        key.update(repr(facts).encode())
        key.update(items.numpy().tobytes())
        key.update(labels.numpy().tobytes())
        return self.cache_dir / f"synthetic_wsol_{split}_{key.hexdigest()[:16]}.pt"

    def _textures(self) -> torch.Tensor:
        if self._texture_bank is None:
            self._texture_bank = load_textures()
        return self._texture_bank

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage or "", ("train", "val", "test")):
            self.generate(split)

    # -- loaders ------------------------------------------------------------------------------

    def split_tensors(self, split: str) -> list[torch.Tensor]:
        data = self.generate(split)
        tensors = [data["images"], data["labels"]]
        if split != "train":
            tensors.append(data["boxes"])
        return tensors

    # -- transforms ---------------------------------------------------------------------------

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> float32 ``(x / 255 - NORM_MEAN) / NORM_STD`` on x's device."""
        if x.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 image batch, got {x.dtype} (normalised twice?)")
        mean = torch.tensor(NORM_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
        std = torch.tensor(NORM_STD, dtype=torch.float32, device=x.device)[:, None, None]
        return x.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize``: float (B, 3, S, S) -> float32 in [0, 1] (for pictures)."""
        mean = torch.tensor(NORM_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
        std = torch.tensor(NORM_STD, dtype=torch.float32, device=x.device)[:, None, None]
        return (x.to(torch.float32) * std + mean).clamp(0.0, 1.0)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise (and, in training with ``augment``, flip) on the batch's device."""
        x, y, *rest = batch
        x = self.normalize(x)
        trainer = self.trainer
        if self.augment and trainer is not None and trainer.training:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return [x, y, *rest]

    def test_images_uint8(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Un-normalised test images, uint8 (n, 3, S, S), in test-loader order (all if None)."""
        images = self.generate("test")["images"]
        if indices is None:
            return images
        return images[torch.as_tensor(indices, dtype=torch.int64)]
