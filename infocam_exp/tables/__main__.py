"""``python -m infocam_exp.tables [--strict] [--runs DIR] ID [overrides...]``: write
``outputs/tables/ID.{md,csv}`` (+ figure) from the runs that exist.

Reads the table's spec and sweep from ``configs/table/ID.yaml`` (composed with the same overrides
the sweep ran with) and the runs' ``metrics.json`` files. The table shows the rows that have runs
and lists the jobs of the grid that are missing or failed; the exit status is 0 unless
``--strict`` is given and a job is missing or failed (``make table-*`` passes it). ``--runs DIR``
reads an ad-hoc multirun folder instead (e.g. ``outputs/multiruns/mi_synthetic/<time>``): the
grid is then the values its jobs have for the table's swept keys. A figure is written only when
there is data for it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from infocam_exp.__main__ import CONFIG_DIR
from infocam_exp.errors import ConfigError, UserError, full_error_requested, report_user_error
from infocam_exp.results import git_sha, write_text_atomic
from infocam_exp.tables.aggregate import (
    Column,
    collect_rows,
    expand_grid,
    grid_from_records,
    load_records,
    missing_and_duplicates,
    parse_overrides,
    protocol_differences,
    table_cells,
    to_csv,
    to_markdown,
)

log = logging.getLogger("infocam_exp.tables")


def available_tables() -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / "table").glob("*.yaml"))


def _compose(table_id: str, overrides: list[str]) -> DictConfig:
    if table_id not in available_tables():
        raise ConfigError(f"unknown table {table_id!r}; known: {', '.join(available_tables())}")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"+table={table_id}", *overrides], return_hydra_config=True)
    # as in the sweep, a command-line value of a swept key replaces its list: after
    # `+table=mi_synthetic data.dim=1`, `tables mi_synthetic data.dim=1` expects those jobs only
    swept = cfg.hydra.sweeper.params
    with open_dict(cfg):
        for key, value in parse_overrides(overrides).items():
            if key in swept:
                swept[key] = value
    return cfg


def _point_at_runs(cfg: DictConfig, runs: Path, table_id: str) -> None:
    """Read the records under ``runs`` with the grid their jobs span (same task only)."""
    if not runs.is_dir():
        raise ConfigError(f"--runs {runs}: not a folder (give a multirun folder, e.g. outputs/multiruns/<task>/<time>)")
    records = [r for r in load_records(runs) if r.get("task_name") in (None, cfg.get("task_name"))]
    keys = list(OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True))
    with open_dict(cfg):
        cfg.table.runs_dir = str(runs)
        cfg.table.command = f"python -m infocam_exp.tables --runs {runs} {table_id}"
        cfg.hydra.sweeper.params = grid_from_records(records, keys)


def make_table(table_id: str, overrides: list[str] | None = None, runs: str | Path | None = None) -> int:
    """Write the table files from the runs that exist; return the number of expected jobs that
    are missing or failed (the rows without any run are left out of the table and listed)."""
    cfg = _compose(table_id, list(overrides or []))
    if runs is not None:
        _point_at_runs(cfg, Path(runs), table_id)
    spec = cfg.table
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    records = load_records(Path(spec.runs_dir))
    if runs is not None:
        records = [r for r in records if r.get("task_name") in (None, cfg.get("task_name"))]
    if not records or not params:
        print(f"No runs of table {table_id} in {spec.runs_dir}: nothing written. Run them with "
              f"`{spec.get('command') or 'make table-' + table_id}`, or point at a multirun folder with --runs DIR.")
        return max(1, len(expand_grid(params)))
    if spec.get("builder"):  # a table with its own layout (e.g. mi_benchmark: bias, RMSE, wall time)
        return instantiate(spec.builder, _partial_=True)(cfg=cfg, table_id=table_id)
    columns = [Column(**OmegaConf.to_container(c, resolve=True)) for c in spec.columns]
    rows = collect_rows(records, params, list(spec.rows), [c.metric for c in columns])
    present = [r for r in rows if r.records]
    header, cells, raw = table_cells(present, columns, list(spec.rows))
    out_dir = Path(spec.out_dir)
    missing = sum(r.expected - len(r.records) for r in rows)
    shas = sorted({r.get("git_sha") or "unknown" for row in rows for r in row.records})
    md = [f"# {spec.title}", "", str(spec.get("notes") or "").strip(), "", to_markdown(header, cells)]
    md.append(f"Rows with runs: {len(present)} of {len(rows)}.")
    md.append(f"Runs: `{spec.runs_dir}`; regenerate with `{spec.get('command') or 'make table-' + table_id}`.")
    md.append(f"Mean ± sample std over seeds. Code versions of the runs: {', '.join(shas) or 'none'}; table written at {git_sha() or 'unknown'}.")
    if spec.get("protocol_differences", False):
        md.extend(protocol_differences(rows, list(spec.rows)))
    md.extend(missing_and_duplicates(rows))
    if spec.get("plot") and not present:
        md.append("\nNo figure: no row has runs.")
    write_text_atomic(out_dir / f"{table_id}.md", "\n".join(md) + "\n")
    write_text_atomic(out_dir / f"{table_id}.csv", to_csv(raw))
    written = [out_dir / f"{table_id}.md", out_dir / f"{table_id}.csv"]
    if spec.get("plot") and present:
        plot = instantiate(spec.plot, _partial_=True)
        if plot(rows=present, path=out_dir / f"{table_id}.png") is not False:  # False: nothing to draw
            written.append(out_dir / f"{table_id}.png")
    print("\n".join(md))
    print("\nWrote " + ", ".join(str(p) for p in written))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infocam_exp.tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a job of the grid is missing or failed")
    parser.add_argument("--runs", metavar="DIR", help="aggregate this (ad-hoc multirun) folder instead of the table's own")
    parser.add_argument("table_id", help=f"one of: {', '.join(available_tables())}")
    parser.add_argument("overrides", nargs="*", help="config overrides the sweep was run with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        missing = make_table(args.table_id, args.overrides, runs=args.runs)
    except UserError as err:
        if full_error_requested():
            raise
        return report_user_error(err, prog="python -m infocam_exp.tables")
    if missing:
        print(f"\n{missing} job(s) of the grid missing or failed" + (" (--strict: exit status 1)." if args.strict else "."))
    return 1 if (args.strict and missing) else 0


if __name__ == "__main__":
    sys.exit(main())
