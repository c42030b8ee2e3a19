"""``python -m infocam_exp.tables ID [overrides...]``: write ``outputs/tables/ID.{md,csv}`` (+ plot).

Reads the table's spec and sweep from ``configs/table/ID.yaml`` (composed with the same overrides
the sweep ran with) and the runs' ``metrics.json`` files. Exits 1 when a job of the grid is missing
or failed (the table still shows every row, with what is there).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from infocam_exp.__main__ import CONFIG_DIR
from infocam_exp.results import git_sha, write_text_atomic
from infocam_exp.tables.aggregate import (
    Column,
    collect_rows,
    load_records,
    missing_and_duplicates,
    protocol_differences,
    table_cells,
    to_csv,
    to_markdown,
)

log = logging.getLogger("infocam_exp.tables")


def available_tables() -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / "table").glob("*.yaml"))


def make_table(table_id: str, overrides: list[str] | None = None) -> int:
    """Write the table files; return the number of expected jobs that are missing or failed."""
    if table_id not in available_tables():
        raise SystemExit(f"Unknown table {table_id!r}; known: {', '.join(available_tables())}")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"+table={table_id}", *(overrides or [])], return_hydra_config=True)
    spec = cfg.table
    if spec.get("builder"):  # a table with its own layout (e.g. mi_benchmark: bias, RMSE, wall time)
        return instantiate(spec.builder, _partial_=True)(cfg=cfg, table_id=table_id)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    columns = [Column(**OmegaConf.to_container(c, resolve=True)) for c in spec.columns]
    records = load_records(Path(spec.runs_dir))
    rows = collect_rows(records, params, list(spec.rows), [c.metric for c in columns])
    header, cells, raw = table_cells(rows, columns, list(spec.rows))
    out_dir = Path(spec.out_dir)
    missing = sum(r.expected - len(r.records) for r in rows)
    shas = sorted({r.get("git_sha") or "unknown" for row in rows for r in row.records})
    md = [f"# {spec.title}", "", str(spec.get("notes") or "").strip(), "", to_markdown(header, cells)]
    md.append(f"Runs: `{spec.runs_dir}`; regenerate with `{spec.get('command') or 'make table-' + table_id}`.")
    md.append(f"Mean ± sample std over seeds. Code versions of the runs: {', '.join(shas) or 'none'}; table written at {git_sha() or 'unknown'}.")
    if spec.get("protocol_differences", False):
        md.extend(protocol_differences(rows, list(spec.rows)))
    md.extend(missing_and_duplicates(rows))
    write_text_atomic(out_dir / f"{table_id}.md", "\n".join(md) + "\n")
    write_text_atomic(out_dir / f"{table_id}.csv", to_csv(raw))
    if spec.get("plot"):
        plot = instantiate(spec.plot, _partial_=True)
        plot(rows=rows, path=out_dir / f"{table_id}.png")
    print("\n".join(md))
    print(f"\nWrote {out_dir / (table_id + '.md')} and .csv" + (" and .png" if spec.get("plot") else ""))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infocam_exp.tables", description=__doc__)
    parser.add_argument("table_id", help=f"one of: {', '.join(available_tables())}")
    parser.add_argument("overrides", nargs="*", help="config overrides the sweep was run with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return 1 if make_table(args.table_id, args.overrides) else 0


if __name__ == "__main__":
    sys.exit(main())
