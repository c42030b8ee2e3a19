"""Plots written beside tables (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from infocam_exp.results import write_text_atomic  # noqa: E402
from infocam_exp.tables.aggregate import Row  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    write_text_atomic(Path(path), buf.getvalue())


def _metric(row: Row, key: str) -> np.ndarray:
    return np.array([r["metrics"][key] for r in row.records if isinstance(r["metrics"].get(key), int | float)])


#: (metric key, label, marker) of the estimates drawn by ``mi_vs_dim``, per loss.
_MI_SERIES = {
    "test/mi_estimate": ("paper recipe", "o"),
    "test/mi_estimate_prior_corrected": ("+ H(Y)", "s"),
}


def mi_vs_dim(rows: Sequence[Row], path: Path, estimators: Sequence[str] = ("test/mi_estimate", "test/mi_estimate_prior_corrected")) -> bool:
    """Synthetic MI table: estimates against the exact I(X;Y) over d (top) and their gap to it
    (bottom), one column per prior. Estimates that coincide stay visible: every series has its
    own marker (hollow) and a small horizontal offset, and the exact value is drawn as a line with
    black markers, so a grid with a single d still shows it. Returns False (and writes nothing)
    when no row has records."""
    rows = [r for r in rows if r.records]
    if not rows:
        return False
    priors = list(dict.fromkeys(r.keys["data.prior"] for r in rows))
    fig, axes = plt.subplots(2, len(priors), figsize=(5.8 * len(priors), 7.2), squeeze=False, sharex="col", gridspec_kw={"height_ratios": [3, 2]})
    colours = plt.get_cmap("tab10")
    for col, prior in enumerate(priors):
        top, bottom = axes[0, col], axes[1, col]
        sel = [r for r in rows if r.keys["data.prior"] == prior]
        dims = sorted({int(r.keys["data.dim"]) for r in sel})
        truth = {int(r.keys["data.dim"]): float(_metric(r, "test/mi_true").mean()) for r in sel}
        if len(dims) == 1:  # a one-point line would be invisible: the exact value spans the panel
            top.axhline(truth[dims[0]], color="k", lw=1.5, label="exact I(X;Y)", zorder=1)
        else:
            top.plot(dims, [truth[d] for d in dims], "k-", lw=1.5, marker="_", ms=18, mew=2, label="exact I(X;Y)", zorder=1)
        series = [(loss, est) for loss in dict.fromkeys(r.keys["loss"] for r in sel) for est in estimators if not (loss != "ce" and est.endswith("prior_corrected"))]
        for i, (loss, est) in enumerate(series):
            pts = [(int(r.keys["data.dim"]), _metric(r, est)) for r in sel if r.keys["loss"] == loss]
            pts = [(d, v) for d, v in sorted(pts) if v.size]
            if not pts:
                continue
            # multiplicative offset on the log axis: series side by side, never on top of each other
            shift = 1.0 + 0.04 * (i - (len(series) - 1) / 2)
            xs = [d * shift for d, _ in pts]
            mean = np.array([v.mean() for _, v in pts])
            std = np.array([v.std() for _, v in pts])
            label_est, marker = _MI_SERIES.get(est, (est, "^"))
            style = {"marker": marker, "mfc": "none", "mew": 1.5, "ms": 7, "capsize": 3, "color": colours(i % 10), "label": f"{loss}, {label_est}"}
            top.errorbar(xs, mean, yerr=std, ls="-", lw=1, **style)
            gap = mean - np.array([truth[d] for d, _ in pts])
            bottom.errorbar(xs, gap, yerr=std, ls="none", **style)
        bottom.axhline(0.0, color="k", lw=1)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(dims, [str(d) for d in dims])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            if len(dims) == 1:
                ax.set_xlim(dims[0] / 1.5, dims[0] * 1.5)
        top.set_ylabel("I(X;Y) (nats)")
        top.set_title(f"{prior} prior: estimate (mean ± std over seeds) vs exact")
        top.legend(fontsize=8)
        bottom.set_xlabel("input dimension d")
        bottom.set_ylabel("estimate - exact (nats)")
        bottom.set_title("gap to the exact value")
    fig.tight_layout()
    save_figure(fig, path)
    return True


def per_class_accuracy(rows: Sequence[Row], path: Path, group_key: str = "data", series_key: str = "loss") -> None:
    """Per-class test accuracy (mean over seeds), one panel per ``group_key`` value, one line per
    ``series_key`` value (e.g. CE vs PC-softmax). Classes sorted by training count when known."""
    groups = list(dict.fromkeys(r.keys.get(group_key, "") for r in rows))
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        for row in (r for r in rows if r.keys.get(group_key, "") == group and r.records):
            vecs = [r["metrics"].get("test/class_acc") for r in row.records]
            vecs = np.array([v for v in vecs if isinstance(v, list)], dtype=float)
            if not vecs.size:
                continue
            label = ", ".join(f"{v}" for k, v in row.keys.items() if k != group_key)
            seen = (~np.isnan(vecs)).sum(axis=0)  # a class absent from the test split stays NaN
            mean = np.where(seen > 0, np.nansum(vecs, axis=0) / np.maximum(seen, 1), np.nan) * 100
            ax.plot(np.arange(len(mean)), mean, marker="o", ms=3, label=label or row.keys.get(series_key, ""))
        ax.set_title(f"{group_key}={group}" if group else "per-class accuracy")
        ax.set_xlabel("class index")
        ax.set_ylabel("test accuracy %")
        ax.legend(fontsize=7)
    save_figure(fig, path)
