"""The MI-estimator benchmark table and figures, from the jobs' ``metrics.json`` records.

``python -m infocam_exp.tables mi_benchmark`` (``make table-mi-bench``) calls
``write_benchmark_table``. A job is one (task, N, seed) and holds every estimator's result on the
same N samples (``infocam_exp.mi_benchmark``). Per cell (task, N, estimator), over the seeds whose
job completed and whose estimate for that estimator is finite:

- error_s = estimate_s - truth (``test/<E>/mi_gap``); bias = mean error, RMSE = sqrt(mean error^2);
- 95% intervals by the percentile bootstrap over seeds (``BOOTSTRAP`` resamples, fixed rng, so the
  table is reproducible); the resampled seeds are the same for every estimator of a row (paired:
  all estimators saw the same data);
- bold: the smallest RMSE of the row, only when the 95% paired-bootstrap interval of
  RMSE(best) - RMSE(second best) lies below 0 (the ranking is not a draw of luck) and the two
  share at least ``MIN_SEEDS_BOLD`` seeds;
- paired gap: mean over seeds of ``test/<E>/paired_gap`` (estimate - the scored samples' own
  Monte Carlo truth), for estimators with point-wise terms;
- steps, protocol, CPU s: mean ``test/<E>/steps``, the protocol(s), mean ``test/<E>/cpu_s``.

A row whose truth se is not below a fifth of its best RMSE is flagged (``truth se!``).
Figures: ``<id>_heatmap.png`` (task x estimator, mean estimate / truth at the largest N) and
``<id>_scaling.png`` (RMSE against N per task, with the bootstrap intervals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from infocam_exp.results import git_sha, write_text_atomic
from infocam_exp.tables.aggregate import (
    Row,
    collect_rows,
    load_records,
    missing_and_duplicates,
    to_csv,
    to_markdown,
)

ROW_KEYS = ("data", "data.num_samples")
BOOTSTRAP = 2000
#: a row is ranked (bold) only with at least this many seeds
MIN_SEEDS_BOLD = 5
#: truth below this (nats) has no meaningful ratio estimate / truth in the heatmap
RATIO_MIN_TRUTH = 0.05


@dataclass
class Cell:
    """One (task, N, estimator) cell over seeds."""

    task: str
    n: int
    estimator: str
    seeds: list[int] = field(default_factory=list)
    estimates: np.ndarray = field(default_factory=lambda: np.empty(0))
    errors: np.ndarray = field(default_factory=lambda: np.empty(0))
    truth: float = math.nan
    truth_se: float = math.nan
    paired: np.ndarray = field(default_factory=lambda: np.empty(0))
    seeds_expected: int = 0
    failed: list[str] = field(default_factory=list)
    steps: float = math.nan
    cpu_s: float = math.nan
    protocol: str = ""
    bias: float = math.nan
    bias_ci: tuple[float, float] = (math.nan, math.nan)
    rmse: float = math.nan
    rmse_ci: tuple[float, float] = (math.nan, math.nan)
    paired_bias: float = math.nan
    paired_ci: tuple[float, float] = (math.nan, math.nan)
    bold: bool = False

    @property
    def mean(self) -> float:
        return float(self.estimates.mean()) if self.estimates.size else math.nan

    @property
    def std(self) -> float:
        return float(self.estimates.std(ddof=1)) if self.estimates.size > 1 else math.nan


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def bootstrap_indices(n: int, b: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(b, n) seed indices drawn with replacement (the same for every estimator of a row)."""
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def _ci(samples: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def _seed_of(rec: dict[str, Any]) -> int:
    return int(rec.get("seed", -1))


def row_cells(row: Row, estimators: Sequence[str]) -> list[Cell]:
    """Every estimator's cell of one (task, N) row, with bias, RMSE and paired bootstrap intervals."""
    recs = sorted(row.records, key=_seed_of)
    cells = []
    for e in estimators:
        c = Cell(task=row.keys["data"], n=int(row.keys["data.num_samples"]), estimator=e, seeds_expected=row.expected)
        est, err, paired, steps, cpu, protos = [], [], [], [], [], set()
        for r in recs:
            m = r["metrics"]
            v = _num(m.get(f"test/{e}/mi_estimate"))
            if not math.isfinite(v):
                why = m.get(f"test/{e}/error") or ("not run" if f"test/{e}/mi_estimate" not in m else f"estimate {v}")
                c.failed.append(f"seed {_seed_of(r)}: {why}")
                continue
            c.seeds.append(_seed_of(r))
            est.append(v)
            err.append(v - _num(m.get("test/mi_true")))
            paired.append(_num(m.get(f"test/{e}/paired_gap")))
            steps.append(_num(m.get(f"test/{e}/steps")))
            cpu.append(_num(m.get(f"test/{e}/cpu_s")))
            if m.get(f"test/{e}/protocol"):
                protos.add(str(m[f"test/{e}/protocol"]))
        truths = [_num(r["metrics"].get("test/mi_true")) for r in recs]
        ses = [_num(r["metrics"].get("test/mi_true_se")) for r in recs]
        c.truth = float(np.nanmean(truths)) if truths else math.nan
        c.truth_se = float(np.nanmean(ses)) if ses else math.nan
        c.estimates, c.errors, c.paired = np.array(est), np.array(err), np.array(paired)
        c.steps = float(np.nanmean(steps)) if steps and np.isfinite(steps).any() else math.nan
        c.cpu_s = float(np.nanmean(cpu)) if cpu and np.isfinite(cpu).any() else math.nan
        c.protocol = "/".join(sorted(protos))
        cells.append(c)
    _intervals(cells)
    return cells


def _intervals(cells: list[Cell]) -> None:
    """Bias and RMSE with bootstrap intervals; bold the best RMSE when it separates (paired)."""
    boot_rmse: dict[str, np.ndarray] = {}
    for c in cells:
        n = c.errors.size
        if n == 0:
            continue
        c.bias = float(c.errors.mean())
        c.rmse = float(np.sqrt((c.errors**2).mean()))
        if np.isfinite(c.paired).all():
            c.paired_bias = float(c.paired.mean())
        if n < 2:
            continue
        idx = bootstrap_indices(n)
        e = c.errors[idx]
        c.bias_ci = _ci(e.mean(1))
        rm = np.sqrt((e**2).mean(1))
        c.rmse_ci = _ci(rm)
        if np.isfinite(c.paired_bias):
            c.paired_ci = _ci(c.paired[idx].mean(1))
        boot_rmse[c.estimator] = rm
    # paired comparison needs the same seeds in both cells (then the indices coincide)
    ranked = sorted((c for c in cells if math.isfinite(c.rmse)), key=lambda c: c.rmse)
    if len(ranked) >= 2:
        best, second = ranked[0], ranked[1]
        if (best.seeds == second.seeds and len(best.seeds) >= MIN_SEEDS_BOLD
                and best.estimator in boot_rmse and second.estimator in boot_rmse):
            hi = np.percentile(boot_rmse[best.estimator] - boot_rmse[second.estimator], 97.5)
            best.bold = bool(hi < 0)


def _interval(v: float, ci: tuple[float, float], signed: bool = True) -> str:
    if not math.isfinite(v):
        return "missing"
    f = "+.3f" if signed else ".3f"
    if not math.isfinite(ci[0]):
        return f"{v:{f}}"
    return f"{v:{f}} [{ci[0]:{f}}, {ci[1]:{f}}]"


def _marker(bounds: dict[str, str], e: str) -> str:
    return {"lower": f"{e} (≤)", "upper": f"{e} (≥)"}.get(bounds.get(e, "none"), e)


def pivot(rows: Sequence[list[Cell]], estimators: Sequence[str], bounds: dict[str, str], what: str) -> tuple[list[str], list[list[str]]]:
    """One line per (task, N): every estimator's bias or RMSE with its 95% interval."""
    header = ["task", "N", "truth (se)", *(_marker(bounds, e) for e in estimators)]
    lines = []
    for cells in rows:
        if not cells:
            continue
        c0 = cells[0]
        best = min((c.rmse for c in cells if math.isfinite(c.rmse)), default=math.nan)
        flag = " truth se!" if math.isfinite(best) and c0.truth_se >= best / 5 else ""
        line = [c0.task, str(c0.n), f"{c0.truth:.4f} ({c0.truth_se:.4f}){flag}" if math.isfinite(c0.truth) else "missing"]
        for c in cells:
            text = _interval(c.bias, c.bias_ci) if what == "bias" else _interval(c.rmse, c.rmse_ci, signed=False)
            if c.errors.size and c.errors.size < c.seeds_expected:
                text += f" ({c.errors.size}/{c.seeds_expected} seeds)"
            line.append(f"**{text}**" if c.bold and what == "rmse" else text)
        lines.append(line)
    return header, lines


def long_table(rows: Sequence[list[Cell]]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "N", "estimator", "seeds", "truth", "mean ± std", "bias [95%]", "RMSE [95%]",
              "paired gap [95%]", "steps", "protocol", "CPU s"]
    lines = []
    for cells in rows:
        for c in cells:
            lines.append([
                c.task, str(c.n), c.estimator, f"{c.errors.size}/{c.seeds_expected}",
                f"{c.truth:.4f}" if math.isfinite(c.truth) else "missing",
                f"{c.mean:.4f} ± {c.std:.4f}" if math.isfinite(c.std) else (f"{c.mean:.4f}" if math.isfinite(c.mean) else "missing"),
                _interval(c.bias, c.bias_ci), _interval(c.rmse, c.rmse_ci, signed=False),
                _interval(c.paired_bias, c.paired_ci) if math.isfinite(c.paired_bias) else "–",
                f"{c.steps:.0f}" if math.isfinite(c.steps) else "–", c.protocol or "–",
                f"{c.cpu_s:.2f}" if math.isfinite(c.cpu_s) else "–",
            ])
    return header, lines


def csv_rows(rows: Sequence[list[Cell]]) -> list[dict[str, Any]]:
    out = []
    for cells in rows:
        for c in cells:
            out.append({
                "task": c.task, "n": c.n, "estimator": c.estimator, "seeds_done": c.errors.size,
                "seeds_expected": c.seeds_expected, "truth": c.truth, "truth_se": c.truth_se,
                "mean": c.mean, "std": c.std, "bias": c.bias, "bias_lo": c.bias_ci[0], "bias_hi": c.bias_ci[1],
                "rmse": c.rmse, "rmse_lo": c.rmse_ci[0], "rmse_hi": c.rmse_ci[1], "paired_gap": c.paired_bias,
                "paired_lo": c.paired_ci[0], "paired_hi": c.paired_ci[1], "bold": c.bold, "steps": c.steps,
                "protocol": c.protocol, "cpu_s": c.cpu_s,
            })
    return out


def plot_heatmap(rows: Sequence[list[Cell]], estimators: Sequence[str], path: Path) -> None:
    """Task x estimator, colour = mean estimate / truth at each task's largest N (1 = right)."""
    from infocam_exp.tables.plots import plt, save_figure

    largest: dict[str, list[Cell]] = {}
    for cells in rows:
        if cells and (cells[0].task not in largest or cells[0].n > largest[cells[0].task][0].n):
            largest[cells[0].task] = cells
    tasks = list(largest)
    ratio = np.full((len(tasks), len(estimators)), np.nan)
    text = [["" for _ in estimators] for _ in tasks]
    for i, t in enumerate(tasks):
        for j, c in enumerate(largest[t]):
            if not math.isfinite(c.mean):
                text[i][j] = "–"
            elif c.truth >= RATIO_MIN_TRUTH:
                ratio[i, j] = c.mean / c.truth
                text[i][j] = f"{ratio[i, j]:.2f}"
            else:
                text[i][j] = f"{c.mean:+.2f}n"  # truth ~0: the estimate in nats
    fig, ax = plt.subplots(figsize=(max(6.0, 3.5 + 0.8 * len(estimators)), max(3.0, 1.4 + 0.45 * len(tasks))))
    im = ax.imshow(np.clip(ratio, 0.0, 2.0), cmap="RdBu_r", vmin=0.0, vmax=2.0, aspect="auto")
    for i in range(len(tasks)):
        for j in range(len(estimators)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(estimators)), list(estimators), rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), [f"{t} (N={largest[t][0].n}, I={largest[t][0].truth:.2f})" for t in tasks])
    ax.set_xlabel("estimator")
    ax.set_ylabel("task (samples N, true I(X;Y) in nats)")
    ax.set_title("mean estimate / true MI at each task's largest N (1 = unbiased;\n'n': the estimate in nats where the truth is ~0)", fontsize=9)
    fig.colorbar(im, ax=ax, label="estimate / truth (clipped to [0, 2])")
    fig.tight_layout()
    save_figure(fig, path)


def plot_scaling(rows: Sequence[list[Cell]], estimators: Sequence[str], path: Path) -> None:
    """One panel per task: RMSE (nats) against N, log-log, with 95% bootstrap intervals."""
    from infocam_exp.tables.plots import plt, save_figure

    by_task: dict[str, list[Cell]] = {}
    for cells in rows:
        for c in cells:
            by_task.setdefault(c.task, []).append(c)
    tasks = list(by_task)
    ncols = min(4, max(1, len(tasks)))
    nrows = -(-len(tasks) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    colours = {e: f"C{i % 10}" for i, e in enumerate(estimators)}
    styles = {e: ("-" if i < 10 else "--") for i, e in enumerate(estimators)}
    for ax in grid.ravel()[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(grid.ravel(), tasks, strict=False):
        for e in estimators:
            sel = sorted((c for c in by_task[task] if c.estimator == e and math.isfinite(c.rmse)), key=lambda c: c.n)
            if not sel:
                continue
            x = [c.n for c in sel]
            y = np.array([c.rmse for c in sel])
            lo = np.array([c.rmse_ci[0] if math.isfinite(c.rmse_ci[0]) else c.rmse for c in sel])
            hi = np.array([c.rmse_ci[1] if math.isfinite(c.rmse_ci[1]) else c.rmse for c in sel])
            ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", ms=3, capsize=2, color=colours[e], ls=styles[e], label=e)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples N")
        ax.set_ylabel("RMSE (nats)")
        ax.set_title(f"{task} (I = {by_task[task][0].truth:.3f} nats)", fontsize=9)
    handles, labels = grid.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(7, len(labels)), fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path)


def estimator_bounds(estimators: Sequence[str]) -> dict[str, str]:
    """{name: 'lower' | 'upper' | 'none'} from the estimator registry (none when unknown)."""
    from infocam_exp.mi_benchmark import _known_estimators

    known = _known_estimators()
    return {e: getattr(known.get(e), "bound", "none") for e in estimators}


def write_benchmark_table(cfg: DictConfig, table_id: str) -> int:
    """Write ``<out_dir>/<table_id>.{md,csv}`` and the two figures; return the missing/failed jobs."""
    spec = cfg.table
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    missing_keys = [k for k in (*ROW_KEYS, "seed") if k not in params]
    if missing_keys:
        raise ValueError(f"table {table_id}: the sweep must vary {', '.join(missing_keys)} (hydra.sweeper.params)")
    estimators = [str(e) for e in cfg.estimators]
    rows = collect_rows(load_records(Path(spec.runs_dir)), params, list(ROW_KEYS))
    table = [row_cells(r, estimators) for r in rows]
    bounds = estimator_bounds(estimators)
    missing = sum(r.expected - len(r.records) for r in rows)
    shas = sorted({r.get("git_sha") or "unknown" for row in rows for r in row.records})
    out_dir = Path(spec.out_dir)
    md = [f"# {spec.title}", "", str(spec.get("notes") or "").strip(), ""]
    md += ["## RMSE [95% bootstrap interval] (nats); bold: best, separated from the second best", "",
           to_markdown(*pivot(table, estimators, bounds, "rmse"))]
    md += ["## Bias [95% bootstrap interval] (nats)", "", to_markdown(*pivot(table, estimators, bounds, "bias"))]
    md += ["## All numbers", "", to_markdown(*long_table(table))]
    failed = [f"- {c.task} N={c.n} {c.estimator}: {f}" for cells in table for c in cells for f in c.failed]
    if failed:
        md += [f"\n**{len(failed)} estimator result(s) failed inside complete jobs:**", *failed]
    md.append(f"\nFigures: `{table_id}_heatmap.png`, `{table_id}_scaling.png`. Runs: `{spec.runs_dir}`; "
              f"regenerate with `{spec.get('command')}`.")
    md.append(f"Code versions of the runs: {', '.join(shas) or 'none'}; table written at {git_sha() or 'unknown'}.")
    md.extend(missing_and_duplicates(rows))
    write_text_atomic(out_dir / f"{table_id}.md", "\n".join(md) + "\n")
    write_text_atomic(out_dir / f"{table_id}.csv", to_csv(csv_rows(table)))
    ran = [cells for cells in table if any(c.errors.size for c in cells)]  # rows with results
    plot_heatmap(ran, estimators, out_dir / f"{table_id}_heatmap.png")
    plot_scaling(ran, estimators, out_dir / f"{table_id}_scaling.png")
    print("\n".join(md))
    print(f"\nWrote {out_dir / (table_id + '.md')}, .csv, _heatmap.png and _scaling.png")
    return missing
