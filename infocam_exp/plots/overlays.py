"""Overlay figures of CAM / infoCAM maps with boxes (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from infocam_exp.cam.maps import upsample_maps
from infocam_exp.results import write_text_atomic

__all__ = ["overlay_grid_figure", "save_overlay_grid"]

GT_COLOR = "lime"
PRED_COLORS = ("red", "orange", "magenta", "cyan", "yellow")


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _images_hwc01(images) -> np.ndarray:
    """(N, 3|1, H, W) float in [0, 1] or uint8 -> (N, H, W, 3) float in [0, 1]."""
    arr = _to_numpy(images)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 3, H, W) or (N, 1, H, W), got {arr.shape}")
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    arr = np.clip(arr, 0.0, 1.0).transpose(0, 2, 3, 1)
    return np.repeat(arr, 3, axis=3) if arr.shape[3] == 1 else arr


def _raw_frame(maps, n: int, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) maps -> (N, H, W) float32, bicubic-resized to the image frame, non-finite -> 0."""
    t = torch.as_tensor(_to_numpy(maps), dtype=torch.float32)
    if t.dim() != 3 or t.shape[0] != n:
        raise ValueError(f"maps must have shape ({n}, h, w), got {tuple(t.shape)}")
    if tuple(t.shape[-2:]) != size:
        t = upsample_maps(t, size)
    return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)


def _maps_to_frame(maps, n: int, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps -> (N, H, W) float, bicubic-resized to the image frame, min-max to [0, 1]
    per map (constant or non-finite maps become zeros)."""
    t = _raw_frame(maps, n, size)
    lo = t.amin(dim=(1, 2), keepdim=True)
    span = t.amax(dim=(1, 2), keepdim=True) - lo
    out = torch.where(span > 0, (t - lo) / span.clamp_min(1e-12), torch.zeros_like(t))
    return out.numpy()


def _draw_boxes(ax, boxes, color: str, linewidth: float = 2.0) -> None:
    """Boxes (G, 4) as x0, y0, x1, y1 in pixel coordinates of the image frame."""
    if boxes is None:
        return
    arr = _to_numpy(boxes).reshape(-1, 4)
    for x0, y0, x1, y1 in arr.astype(float):
        ax.add_patch(
            Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=linewidth)
        )


def overlay_grid_figure(
    images,
    maps: Mapping[str, object],
    gt_boxes: Sequence[object] | None = None,
    pred_boxes: Mapping[str, object] | None = None,
    titles: Sequence[str] | None = None,
    map_titles: Mapping[str, Sequence[str]] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_inches: float = 2.6,
    dpi: int = 100,
    tau: float | None = None,
    difference: tuple[str, str] | None = None,
    note: str | None = None,
) -> Figure:
    """The overlay grid as a Figure: one row per image, columns = image, then one overlay per method.

    Args:
        images: (N, 3, H, W) (or (N, 1, H, W)) tensor/array, float in [0, 1] or uint8.
        maps: method name -> (N, h, w) maps; resized bicubically to (H, W) if needed and
            min-max normalised per map for display. Column order follows the mapping's order.
        gt_boxes: per image, (G, 4) ground-truth boxes x0, y0, x1, y1 in pixels of the (H, W)
            frame; drawn in green on every panel of that row. ``None`` entries are skipped.
        pred_boxes: method -> (N, 4) predicted boxes (same convention), drawn on that method's
            column in red (other colours for further boxes).
        titles: N row titles shown above the image column (e.g. class name and score).
        map_titles: method -> N titles for that method's panels (default: the method name).
        alpha: opacity of the heat map over the image.
        cmap: matplotlib colormap name for maps.
        panel_inches, dpi: panel size and resolution.
        tau: the threshold the predicted boxes were cut at (shown in the title and the legend).
        difference: ``(a, b)``: add a last column with map a minus map b in the maps' own units
            (for infoCAM - CAM: minus the mean of the other classes' CAMs, what infoCAM removes),
            in a diverging colour scale centred on 0 and scaled to its largest magnitude; the
            panel title gives that magnitude as a share of map b's range.
        note: a line under the title (e.g. how the image was cropped).

        A legend names the box colours whenever boxes are drawn.

    Returns:
        The matplotlib Figure (Agg canvas, not registered with pyplot).
    """
    imgs = _images_hwc01(images)
    n, h, w, _ = imgs.shape
    methods = list(maps)
    frames = {m: _maps_to_frame(maps[m], n, (h, w)) for m in methods}
    if gt_boxes is not None and len(gt_boxes) != n:
        raise ValueError(f"gt_boxes has {len(gt_boxes)} entries for {n} images")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images")
    pred = {m: _to_numpy(b).reshape(n, -1, 4) for m, b in (pred_boxes or {}).items()}
    unknown = set(pred) - set(methods)
    if unknown:
        raise ValueError(f"pred_boxes for methods without maps: {sorted(unknown)}")

    if difference is not None and not set(difference) <= set(methods):
        raise ValueError(f"difference {difference} names methods without maps (have {methods})")
    if difference is not None:
        raw_b = _raw_frame(maps[difference[1]], n, (h, w)).numpy()
        diffs = _raw_frame(maps[difference[0]], n, (h, w)).numpy() - raw_b
    ncols = 1 + len(methods) + (difference is not None)
    # panel height follows the image aspect, plus room for a title line
    fig = Figure(figsize=(panel_inches * ncols, n * (panel_inches * h / w + 0.3) + 0.9), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, ncols, squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(imgs[i])
        _draw_boxes(ax, None if gt_boxes is None else gt_boxes[i], GT_COLOR)
        ax.set_title(titles[i] if titles is not None else f"image {i}", fontsize=8)
        for j, m in enumerate(methods, start=1):
            ax = axes[i, j]
            ax.imshow(imgs[i])
            ax.imshow(frames[m][i], cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
            _draw_boxes(ax, None if gt_boxes is None else gt_boxes[i], GT_COLOR)
            if m in pred:
                for b, box in enumerate(pred[m][i]):
                    _draw_boxes(ax, box, PRED_COLORS[b % len(PRED_COLORS)])
            ax.set_title(map_titles[m][i] if map_titles and m in map_titles else m, fontsize=8)
        if difference is not None:
            a, b = difference
            ax = axes[i, -1]
            ax.imshow(imgs[i].mean(axis=2), cmap="gray", vmin=0.0, vmax=1.0)
            d = diffs[i]
            lim = float(np.abs(d).max()) or 1.0
            ax.imshow(d, cmap="RdBu_r", alpha=0.75, vmin=-lim, vmax=lim)
            span = float(raw_b[i].max() - raw_b[i].min())
            share = f"; peak = {lim / span:.1%} of {b}'s range" if span > 0 else ""
            ax.set_title(f"{a} - {b}\n(red +, blue -{share})", fontsize=7)
        for ax in axes[i]:
            ax.set_axis_off()
    handles = []
    if gt_boxes is not None:
        handles.append(Line2D([], [], color=GT_COLOR, lw=2, label="ground-truth box"))
    if pred:
        at = f" at tau = {tau:g}" if tau is not None else ""
        handles.append(Line2D([], [], color=PRED_COLORS[0], lw=2, label=f"predicted box (largest region{at})"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    heading = [t for t in (f"boxes at tau = {tau:g}" if tau is not None and pred else None, note) if t]
    if heading:
        fig.suptitle("\n".join(heading), fontsize=9)
    fig.tight_layout(rect=(0, 0.04 if handles else 0, 1, 0.97 if heading else 1))

    return fig


def save_overlay_grid(path: str | Path, images, maps: Mapping[str, object], **kwargs) -> Path:
    """Write ``overlay_grid_figure(images, maps, **kwargs)`` as a PNG to ``path`` (parent
    directories created; written atomically: a temporary file in the same directory is renamed
    over ``path``). Returns the written path."""
    fig = overlay_grid_figure(images, maps, **kwargs)
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_text_atomic(path, buf.getvalue())
    return path
