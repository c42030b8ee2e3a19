"""Aggregate per-run ``metrics.json`` records of a table's sweep into rows: mean and spread over seeds.

A table is declared in ``configs/table/<id>.yaml``: the sweep (``hydra.sweeper.params``) defines the
expected jobs, ``table.rows`` the override keys that name a row (the remaining swept key is the
seed), ``table.columns`` the metrics. Tables read only ``metrics.json`` files.

A record belongs to a job when its value of every swept key matches (``record_value``: the
job's override, else its config-group choice, else its resolved ``config.yaml``), so jobs of an
ad-hoc sweep that left a key at its default still match. Jobs of the grid with no record are
listed as not run.

Which records count:

- a job with several records (a stale copy of the run folder, a rerun in another folder): the
  newest complete one (by file modification time) is used, else the newest record; the row's
  ``notes`` name the one used and the ones ignored, and the table prints them;
- a record that is not ``complete`` (failed, diverged, interrupted, running) is a failed job;
- a complete record whose value of a reported metric is infinite, or NaN while another seed of the
  same row has a finite value, is a failed job too (never averaged in); a metric that is NaN in
  every seed of a row (e.g. few-shot accuracy with no few-shot class) is shown as ``n/a``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infocam_exp.results import METRICS_FILE, read_json

log = logging.getLogger(__name__)


@dataclass
class Column:
    """One reported quantity.

    Attributes:
        metric: key in ``metrics.json``'s metrics, e.g. ``test/mi_estimate``.
        label: column header.
        scale: multiply values by this (100 for percentages).
        digits: decimals shown.
        spread: show ``mean ± std`` over seeds (else the mean alone, for seed-independent values).
        paper: published numbers: {"key=value[,key=value]": number}; the first entry whose
            key=value pairs all match the row is shown in a "paper" column beside ours.
    """

    metric: str
    label: str
    scale: float = 1.0
    digits: int = 4
    spread: bool = True
    paper: Mapping[str, float] | None = None


@dataclass
class Row:
    """One table row: its key values, the number of jobs expected, the complete records used, and
    the jobs that failed (``failed``) or have no record at all (``missing``, as ``key=value,...``)."""

    keys: dict[str, str]
    expected: int
    records: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.records) == self.expected


def expand_grid(params: Mapping[str, Any]) -> list[dict[str, str]]:
    """All combinations of a Hydra basic-sweeper ``params`` block (comma-separated choices)."""
    keys = list(params)
    values = [[v.strip() for v in str(params[k]).split(",")] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """{'data.dim': '1', 'loss': 'ce'} from ['data.dim=1', 'loss=ce'] (leading +/~ dropped)."""
    out = {}
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        out[key] = value
    return out


def _override_text(value: Any) -> str:
    """A config value as a command-line override would spell it (1, 0.5, true, [1,2], mnist)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override_text(v) for v in value) + "]"
    return str(value)


def _run_config(rec: dict[str, Any]) -> Any:
    """The resolved ``config.yaml`` beside a record (cached in the record), or None."""
    if "_config" not in rec:
        from omegaconf import OmegaConf

        path = Path(rec.get("_dir", "")) / "config.yaml"
        try:
            rec["_config"] = OmegaConf.load(path) if path.is_file() else None
        except Exception:  # an unreadable config only means the key is unknown
            rec["_config"] = None
    return rec["_config"]


def record_value(rec: dict[str, Any], key: str) -> str | None:
    """The value a job had for ``key`` (``data.dim``, ``loss``, ``seed``): its command-line
    override, else its chosen config-group option, else the value in its resolved config.yaml
    (so ``-m data.dim=1,2`` jobs still have a ``data.prior``); None when unknown."""
    overrides = parse_overrides(rec.get("overrides", []))
    if key in overrides:
        return overrides[key]
    choices = rec.get("choices") or {}
    if key in choices and choices[key] is not None:
        return str(choices[key])
    if key in ("seed", "data_seed") and rec.get(key) is not None:
        return str(rec[key])
    cfg = _run_config(rec)
    if cfg is not None:
        from omegaconf import OmegaConf

        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            return _override_text(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    return None


def _sort_key(value: str) -> tuple:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def grid_from_records(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, str]:
    """A basic-sweeper ``params`` block spanning the values the records have for ``keys``
    (comma-separated, sorted; keys no record knows are left out): the grid of an ad-hoc sweep."""
    params = {}
    for key in keys:
        values = {v for rec in records if (v := record_value(rec, key)) is not None}
        if values:
            params[key] = ",".join(sorted(values, key=_sort_key))
    return params


def load_records(runs_dir: Path) -> list[dict[str, Any]]:
    """Every ``metrics.json`` under ``runs_dir`` (any depth), with its folder as ``_dir`` and the
    file's modification time as ``_mtime``."""
    records = []
    for path in sorted(Path(runs_dir).rglob(METRICS_FILE)):
        rec = read_json(path)
        if rec is None:
            log.warning("Unreadable %s: ignored", path)
            continue
        rec["_dir"] = str(path.parent)
        rec["_mtime"] = path.stat().st_mtime
        records.append(rec)
    return records


def _pick(matches: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The record that speaks for a job: the newest complete one, else the newest; and why."""
    complete = [r for r in matches if r.get("status") == "complete"]
    pool, why = (complete, "newest complete") if complete else (matches, "newest, none complete")
    return max(pool, key=lambda r: r.get("_mtime", 0.0)), why


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fail_nonfinite(row: Row, metrics: Sequence[str]) -> None:
    """Move complete records with an infinite metric, or a NaN one where another seed of the row is
    finite, from ``row.records`` to ``row.failed``."""
    for metric in metrics:
        values = [r["metrics"].get(metric) for r in row.records]
        some_finite = any(_is_number(v) and math.isfinite(v) for v in values)
        keep = []
        for rec, v in zip(row.records, values, strict=True):
            if _is_number(v) and (math.isinf(v) or (math.isnan(v) and some_finite)):
                row.failed.append(
                    f"{rec['_dir']}: complete, but {metric} = {v}"
                    + (" while other seeds are finite" if math.isnan(v) else "")
                    + ": counted as failed, not averaged"
                )
            else:
                keep.append(rec)
        row.records = keep


def collect_rows(
    records: list[dict[str, Any]],
    params: Mapping[str, Any],
    row_keys: Sequence[str],
    metrics: Sequence[str] = (),
) -> list[Row]:
    """Match records to the expected grid; one ``Row`` per combination of ``row_keys``.

    ``metrics``: the reported metric keys; a complete record with a non-finite value of one of
    them counts as failed (see the module docstring for the exact rule and for duplicates)."""
    grid = expand_grid(params)
    swept = list(params)
    # each record's values of the swept keys, looked up once (config.yaml only where needed)
    values = [tuple(record_value(rec, k) for k in swept) for rec in records]
    by_values: dict[tuple, list[dict[str, Any]]] = {}
    for rec, vals in zip(records, values, strict=True):
        by_values.setdefault(vals, []).append(rec)
    rows: dict[tuple, Row] = {}
    for job in grid:
        key = tuple(job[k] for k in row_keys)
        row = rows.setdefault(key, Row(keys={k: job[k] for k in row_keys}, expected=0))
        row.expected += 1
        matches = by_values.get(tuple(job[k] for k in swept), [])
        if not matches:
            row.missing.append(",".join(f"{k}={v}" for k, v in job.items()))
            continue
        rec, why = _pick(matches)
        if len(matches) > 1:
            job_name = ",".join(f"{k}={v}" for k, v in job.items())
            ignored = ", ".join(f"{r['_dir']} ({r.get('status')})" for r in matches if r is not rec)
            row.notes.append(f"{job_name}: {len(matches)} records; used {rec['_dir']} ({why}); ignored {ignored}")
        if rec.get("status") == "complete":
            row.records.append(rec)
        else:
            row.failed.append(f"{rec['_dir']}: {rec.get('status')} {rec.get('error') or ''}".strip())
    for row in rows.values():
        _fail_nonfinite(row, metrics)
    return list(rows.values())


def _stats(row: Row, col: Column) -> tuple[float, float, int]:
    vals = [r["metrics"].get(col.metric) for r in row.records]
    vals = [float(v) * col.scale for v in vals if _is_number(v) and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan, 0
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return float(np.mean(vals)), std, len(vals)


def _paper(row: Row, col: Column) -> float | None:
    for match, value in (col.paper or {}).items():
        pairs = parse_overrides([p for p in match.split(",") if p])
        if all(row.keys.get(k) == v for k, v in pairs.items()):
            return float(value)
    return None


def table_cells(rows: list[Row], columns: Sequence[Column], row_keys: Sequence[str]) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """Header, formatted cells (markdown) and raw numbers (CSV) of the table."""
    header = list(row_keys) + ["seeds"]
    for col in columns:
        if col.paper:
            header.append(f"{col.label} (paper)")
        header.append(col.label)
    cells, raw = [], []
    for row in rows:
        line = [row.keys[k] for k in row_keys] + [f"{len(row.records)}/{row.expected}"]
        numbers: dict[str, Any] = dict(row.keys) | {"seeds_done": len(row.records), "seeds_expected": row.expected}
        for col in columns:
            if col.paper:
                p = _paper(row, col)
                line.append("–" if p is None else f"{p:.{col.digits}f}")
                numbers[f"{col.metric}:paper"] = p
            mean, std, n = _stats(row, col)
            if n == 0:
                nan_everywhere = row.records and all(
                    _is_number(v := r["metrics"].get(col.metric)) and math.isnan(v) for r in row.records
                )
                line.append("n/a" if nan_everywhere else "missing")
            elif col.spread and n > 1:
                line.append(f"{mean:.{col.digits}f} ± {std:.{col.digits}f}")
            else:
                line.append(f"{mean:.{col.digits}f}")
            numbers[f"{col.metric}:mean"] = mean
            numbers[f"{col.metric}:std"] = std
        cells.append(line)
        raw.append(numbers)
    return header, cells, raw


def missing_and_duplicates(rows: Sequence[Row]) -> list[str]:
    """Markdown lines that end a table: the expected jobs missing or failed, and the jobs with
    more than one record (which one was used); empty when there is nothing to say."""
    lines: list[str] = []
    missing = sum(r.expected - len(r.records) for r in rows)
    if missing:
        lines.append(f"\n**{missing} expected job(s) missing or failed.**")
        lines.extend(f"- {f}" for row in rows for f in row.failed)
        not_run = [m for row in rows for m in row.missing]
        if not_run:
            lines.append(f"\nNot run ({len(not_run)}):")
            lines.extend(f"- {m}" for m in not_run)
    duplicates = [n for row in rows for n in row.notes]
    if duplicates:
        lines.append(f"\n**{len(duplicates)} job(s) with more than one record** (the newest complete one is used):")
        lines.extend(f"- {n}" for n in duplicates)
    return lines


def flatten_facts(facts: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"data.box_transform.boxes_clipped": "false", ...}``: nested dicts joined with dots,
    every other value (lists included) as compact JSON."""
    out: dict[str, str] = {}
    for key, value in facts.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_facts(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return out


#: Keys of facts that differ between machines or copies, not between protocols: never compared.
_LOCAL_KEYS = frozenset({"path"})


def _without_local(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_local(v) for k, v in value.items() if k not in _LOCAL_KEYS}
    if isinstance(value, list):
        return [_without_local(v) for v in value]
    return value


def protocol_differences(rows: Sequence[Row], row_keys: Sequence[str]) -> list[str]:
    """Markdown lines for under a table: each protocol fact (metrics.json's ``protocol`` block)
    whose value is not the same in every record of the table, with each row's value(s); facts
    that are the same everywhere are not listed. Empty when nothing differs or no record has a
    protocol block. Values that differ between the seeds of one row are shown with their seeds.
    File paths (``path`` keys) are machine-local and never compared; their sha256 are."""
    per_row: list[tuple[str, list[tuple[Any, dict[str, str]]]]] = []
    for row in rows:
        name = ", ".join(f"{k}={row.keys[k]}" for k in row_keys)
        per_row.append((name, [(r.get("seed"), flatten_facts(_without_local(r.get("protocol") or {})))
                               for r in row.records]))
    facts = sorted({k for _, recs in per_row for _, f in recs for k in f})
    lines: list[str] = []
    for fact in facts:
        values = {f.get(fact, "(absent)") for _, recs in per_row for _, f in recs}
        if len(values) < 2:
            continue
        lines.append(f"- `{fact}`:")
        for name, recs in per_row:
            seen: dict[str, list[str]] = {}
            for seed, f in recs:
                seen.setdefault(f.get(fact, "(absent)"), []).append(str(seed))
            if not seen:
                lines.append(f"  - {name}: (no complete run)")
            elif len(seen) == 1:
                lines.append(f"  - {name}: {next(iter(seen))}")
            else:
                shown = "; ".join(f"{v} (seed {', '.join(seeds)})" for v, seeds in seen.items())
                lines.append(f"  - {name}: {shown}")
    if lines:
        lines.insert(0, "\n**Protocol facts that differ between rows** (metrics.json `protocol`; facts the same in every run are not listed):")
    return lines


def to_markdown(header: list[str], cells: list[list[str]]) -> str:
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join("---" for _ in header) + "|\n")
    for line in cells:
        out.write("| " + " | ".join(line) + " |\n")
    return out.getvalue()


def to_csv(raw: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    fields = list(dict.fromkeys(k for r in raw for k in r))
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(raw)
    return out.getvalue()
