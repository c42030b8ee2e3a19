"""The MI-estimator benchmark table: truth, estimate, bias, RMSE and wall time per job.

``python -m infocam_exp.tables mi_benchmark`` (``make table-mi-bench``) calls
``write_benchmark_table``, which reads the sweep's ``metrics.json`` records and writes
``mi_benchmark.{md,csv,png}``. Per row (task, samples per class, estimator), over the seeds whose
run completed:

- truth: ``test/mi_true`` (the same for every seed) and its standard error ``test/mi_true_se``;
- estimate: mean ± sample std of ``test/mi_estimate``;
- bias: mean estimate - truth; RMSE: sqrt(mean over seeds of (estimate - truth)^2);
- wall s: mean ``wall_time_s`` of the record (one job: data, training or estimation, test).

The figure plots estimate against truth (largest sample size) and bias against sample size per task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from infocam_exp.estimators.direct import estimate_key
from infocam_exp.results import git_sha, write_text_atomic
from infocam_exp.tables.aggregate import (
    Row,
    collect_rows,
    load_records,
    missing_and_duplicates,
    to_csv,
    to_markdown,
)

ROW_KEYS = ("data", "data.samples_per_class", "estimator")


@dataclass
class BenchmarkCell:
    """Summary of one (task, sample size, estimator) row."""

    task: str
    samples: int
    estimator: str
    seeds_done: int
    seeds_expected: int
    truth: float
    truth_se: float
    mean: float
    std: float
    bias: float
    rmse: float
    wall_s: float


def _values(records: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    vals = [r["metrics"].get(key) for r in records]
    return np.array([float(v) for v in vals if isinstance(v, int | float) and math.isfinite(v)])


def summarise(row: Row) -> BenchmarkCell:
    """Truth, mean ± std, bias, RMSE and mean wall time of one row's complete records."""
    recs = row.records
    truth_vals = _values(recs, "test/mi_true")
    truth = float(truth_vals.mean()) if truth_vals.size else math.nan
    se_vals = _values(recs, "test/mi_true_se")
    # kNN and the plug-in record train/mi_estimate (they read the training split)
    est = np.array([float(v) if isinstance(v := r["metrics"].get(estimate_key(r["metrics"])), int | float) else math.nan for r in recs])
    truth_per = np.array([float(r["metrics"].get("test/mi_true", math.nan)) for r in recs])
    errors = est - truth_per
    walls = [float(r["wall_time_s"]) for r in recs if isinstance(r.get("wall_time_s"), int | float)]
    # a diverged estimate (NaN or inf) is kept: it makes the mean, bias and RMSE non-finite
    return BenchmarkCell(
        task=row.keys["data"],
        samples=int(row.keys["data.samples_per_class"]),
        estimator=row.keys["estimator"],
        seeds_done=len(recs),
        seeds_expected=row.expected,
        truth=truth,
        truth_se=float(se_vals.mean()) if se_vals.size else math.nan,
        mean=float(est.mean()) if est.size else math.nan,
        std=float(est.std(ddof=1)) if est.size > 1 else (0.0 if est.size else math.nan),
        bias=float(errors.mean()) if errors.size else math.nan,
        rmse=float(np.sqrt((errors**2).mean())) if errors.size else math.nan,
        wall_s=float(np.mean(walls)) if walls else math.nan,
    )


def _fmt(v: float, digits: int = 4) -> str:
    return "missing" if not math.isfinite(v) else f"{v:.{digits}f}"


def long_table(cells: Sequence[BenchmarkCell]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "N/class", "estimator", "seeds", "truth", "truth se", "estimate", "bias", "RMSE", "wall s"]
    lines = []
    for c in cells:
        estimate = "missing" if not c.seeds_done else (f"{c.mean:.4f} ± {c.std:.4f}" if math.isfinite(c.mean) else "diverged")
        lines.append([
            c.task, str(c.samples), c.estimator, f"{c.seeds_done}/{c.seeds_expected}", _fmt(c.truth),
            _fmt(c.truth_se), estimate, _fmt(c.bias), _fmt(c.rmse), _fmt(c.wall_s, 1),
        ])
    return header, lines


def bias_pivot(cells: Sequence[BenchmarkCell]) -> tuple[list[str], list[list[str]]]:
    """One line per (task, N): each estimator's bias (RMSE); the smallest RMSE in bold."""
    estimators = list(dict.fromkeys(c.estimator for c in cells))
    keys = list(dict.fromkeys((c.task, c.samples) for c in cells))
    by = {(c.task, c.samples, c.estimator): c for c in cells}
    header = ["task", "N/class", "truth", *estimators]
    lines = []
    for task, n in keys:
        row = [by.get((task, n, e)) for e in estimators]
        rmses = [c.rmse for c in row if c is not None and c.seeds_done and math.isfinite(c.rmse)]
        best = min(rmses) if rmses else math.nan
        truth = next((c.truth for c in row if c is not None and math.isfinite(c.truth)), math.nan)
        line = [task, str(n), _fmt(truth)]
        for c in row:
            if c is None or not c.seeds_done:
                line.append("missing")
                continue
            text = f"{c.bias:+.3f} ({c.rmse:.3f})" if math.isfinite(c.rmse) else "diverged"
            line.append(f"**{text}**" if c.rmse == best else text)
        lines.append(line)
    return header, lines


def plot_benchmark(cells: Sequence[BenchmarkCell], path: Path) -> None:
    """Left: estimate vs truth at the largest N (error bars: std over seeds). Then one panel per
    task: bias vs samples per class (log scale), one line per estimator."""
    from infocam_exp.tables.plots import plt, save_figure

    tasks = list(dict.fromkeys(c.task for c in cells))
    estimators = list(dict.fromkeys(c.estimator for c in cells))
    colours = {e: f"C{i % 10}" for i, e in enumerate(estimators)}
    ncols = min(3, 1 + len(tasks))
    nrows = -(-(1 + len(tasks)) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), squeeze=False)
    axes = grid.reshape(1, -1)
    for extra in axes[0, 1 + len(tasks):]:
        extra.axis("off")
    ax = axes[0, 0]
    n_max = max((c.samples for c in cells), default=0)
    lo, hi = math.inf, -math.inf
    for e in estimators:
        sel = [c for c in cells if c.estimator == e and c.samples == n_max and math.isfinite(c.mean)]
        if sel:
            ax.errorbar([c.truth for c in sel], [c.mean for c in sel], yerr=[c.std for c in sel], fmt="o", ms=4, capsize=2, color=colours[e], label=e)
            lo, hi = min(lo, *(c.truth for c in sel)), max(hi, *(c.truth for c in sel))
    if math.isfinite(lo):
        ax.plot([lo - 0.1, hi + 0.1], [lo - 0.1, hi + 0.1], "k--", lw=1, label="estimate = truth")
    ax.set_xlabel("true I(X;Y) (nats)")
    ax.set_ylabel("estimate (nats)")
    ax.set_title(f"estimate vs truth, N = {n_max}/class")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    sizes = sorted({c.samples for c in cells})
    for ax, task in zip(axes[0, 1 : 1 + len(tasks)], tasks, strict=True):
        for e in estimators:
            sel = sorted((c for c in cells if c.task == task and c.estimator == e and math.isfinite(c.bias)), key=lambda c: c.samples)
            if sel:
                ax.errorbar([c.samples for c in sel], [c.bias for c in sel], yerr=[c.std for c in sel], marker="o", ms=3, capsize=2, color=colours[e], label=e)
        ax.axhline(0.0, color="k", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training samples per class")
        ax.set_ylabel("bias (nats)")
        ax.set_title(task)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


def write_benchmark_table(cfg: DictConfig, table_id: str) -> int:
    """Write ``<out_dir>/<table_id>.{md,csv,png}``; return the number of missing or failed jobs."""
    spec = cfg.table
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    missing_keys = [k for k in ROW_KEYS if k not in params]
    if missing_keys:
        raise ValueError(f"table {table_id}: the sweep must vary {', '.join(missing_keys)} (hydra.sweeper.params)")
    rows = collect_rows(load_records(Path(spec.runs_dir)), params, list(ROW_KEYS))
    cells = [summarise(r) for r in rows]
    missing = sum(r.expected - len(r.records) for r in rows)
    shas = sorted({r.get("git_sha") or "unknown" for row in rows for r in row.records})
    out_dir = Path(spec.out_dir)
    md = [f"# {spec.title}", "", str(spec.get("notes") or "").strip(), ""]
    md += ["## Bias (RMSE) per estimator; smallest RMSE in bold", "", to_markdown(*bias_pivot(cells))]
    md += ["## All numbers", "", to_markdown(*long_table(cells))]
    md.append(f"Runs: `{spec.runs_dir}`; regenerate with `{spec.get('command')}`.")
    md.append(f"Code versions of the runs: {', '.join(shas) or 'none'}; table written at {git_sha() or 'unknown'}.")
    md.extend(missing_and_duplicates(rows))
    write_text_atomic(out_dir / f"{table_id}.md", "\n".join(md) + "\n")
    write_text_atomic(out_dir / f"{table_id}.csv", to_csv([vars(c) for c in cells]))
    plot_benchmark(cells, out_dir / f"{table_id}.png")
    print("\n".join(md))
    print(f"\nWrote {out_dir / (table_id + '.md')} and .csv and .png")
    return missing
