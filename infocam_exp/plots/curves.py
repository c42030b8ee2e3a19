"""Accuracy-vs-threshold figure of a WSOL evaluation (``curves/<split>_localization.png``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["CURVE_STYLES", "localization_curves_figure"]

#: curve key -> (line style, legend label). Colour is the map method; the line style is the
#: metric, with one meaning in both panels (no style is used for two metrics).
CURVE_STYLES: dict[str, tuple[object, str]] = {
    "gt_known_loc_curve": ("-", "GT-known Loc (largest box, IoU >= 0.5)"),
    "top1_loc_curve": ("--", "Top-1 Loc (largest box, IoU >= 0.5)"),
    "max_box_acc_v2_iou30_curve": (":", "any region's box, IoU >= 0.3"),
    "max_box_acc_v2_iou50_curve": ("-.", "any region's box, IoU >= 0.5"),
    "max_box_acc_v2_iou70_curve": ((0, (6, 2, 1, 2, 1, 2)), "any region's box, IoU >= 0.7"),
}
_LEFT = ("gt_known_loc_curve", "top1_loc_curve")


def localization_curves_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], split: str, tau: float) -> Figure:
    """Two panels over the score-map threshold: the largest region's box (GT-known and Top-1
    Loc; ``tau`` marked) and every region's box (MaxBoxAccV2 at IoU 30/50/70).

    Args:
        curves: method -> {"thresholds": [...], "<metric>_curve": [...], ...} as the callback
            writes it to ``curves/<split>_localization.json``.
        split: "val" or "test" (titles).
        tau: the fixed threshold of Top-1 / GT-known Loc.
    """
    fig = Figure(figsize=(11, 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    used: set[str] = set()
    for i, c in enumerate(curves.values()):
        for key, values in c.items():
            if key not in CURVE_STYLES:
                continue
            used.add(key)
            ax = axes[0] if key in _LEFT else axes[1]
            ax.plot(c["thresholds"], values, ls=CURVE_STYLES[key][0], color=colours(i % 10))
    axes[0].axvline(tau, color="gray", lw=0.8)
    axes[0].annotate(f"tau = {tau:g}", (tau, 0.02), xytext=(3, 0), textcoords="offset points", fontsize=8, color="gray")
    axes[0].set_title(f"{split}: the largest region's box (MaxBoxAcc, Top-1 Loc)", fontsize=10)
    axes[1].set_title(f"{split}: every region's box (MaxBoxAccV2)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("score-map threshold tau")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("localisation accuracy (fraction of images)")
    handles = [Line2D([], [], color=colours(i % 10), lw=3, label=m) for i, m in enumerate(curves)]
    handles += [Line2D([], [], color="k", ls=ls, label=label) for key, (ls, label) in CURVE_STYLES.items() if key in used]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig
