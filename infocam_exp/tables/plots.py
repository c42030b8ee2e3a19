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


def mi_vs_dim(rows: Sequence[Row], path: Path, estimators: Sequence[str] = ("test/mi_estimate", "test/mi_estimate_prior_corrected")) -> None:
    """Synthetic MI table: estimate (mean ± std over seeds) vs d, one panel per prior, truth curve."""
    priors = list(dict.fromkeys(r.keys["data.prior"] for r in rows))
    fig, axes = plt.subplots(1, len(priors), figsize=(5.5 * len(priors), 4), squeeze=False)
    for ax, prior in zip(axes[0], priors, strict=True):
        sel = [r for r in rows if r.keys["data.prior"] == prior and r.records]
        dims = sorted({int(r.keys["data.dim"]) for r in sel})
        truth = {int(r.keys["data.dim"]): _metric(r, "test/mi_true").mean() for r in sel}
        ax.plot(dims, [truth[d] for d in dims], "k-", lw=2, label="exact I(X;Y)")
        for loss in dict.fromkeys(r.keys["loss"] for r in sel):
            for est in estimators:
                if loss != "ce" and est.endswith("prior_corrected"):
                    continue
                pts = [(int(r.keys["data.dim"]), _metric(r, est)) for r in sel if r.keys["loss"] == loss]
                pts = [(d, v) for d, v in sorted(pts) if v.size]
                if not pts:
                    continue
                label = f"{loss}: {'+ H(Y)' if est.endswith('prior_corrected') else 'paper recipe'}"
                ax.errorbar([d for d, _ in pts], [v.mean() for _, v in pts], yerr=[v.std() for _, v in pts], marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.set_xlabel("dimension d")
        ax.set_ylabel("nats")
        ax.set_title(f"{prior} prior")
        ax.legend(fontsize=8)
    save_figure(fig, path)


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
