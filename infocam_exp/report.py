"""``python -m infocam_exp.report``: one static page of every result (``make report``).

Writes ``outputs/report/index.html`` (opens from disk, no server, no script) from files that
already exist, never by running a job:

- every table under ``outputs/tables/`` (``<id>.md``, as ``python -m infocam_exp.tables`` writes
  it), as an HTML table with the published numbers marked, its figures inline, the command that
  regenerates it, the git SHAs and dates of its records and the protocol facts of its runs
  (``metrics.json``'s ``protocol`` block: the facts all runs share, and those that differ);
- the tables not built yet, each with its ``make table-*`` command;
- the overlays of the latest embedded WSOL run, the MI-estimator figures, and the measurement
  figures under ``outputs/benchmarks/`` (e.g. the box evaluator's speed).

Figures are copied next to the page (``outputs/report/figures/``), so the folder can be moved
or archived whole.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infocam_exp.results import METRICS_FILE, read_json, write_text_atomic

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Makefile target suffix of each table id (``make table-<suffix>``), where it differs from the id.
MAKE_TARGETS = {
    "mi_synthetic": "mi",
    "mi_benchmark": "mi-bench",
    "mnist": "mnist",
    "cifar_lt": "cifar-lt",
    "cub_pc": "cub-pc",
    "wsol_synthetic": "wsol-synthetic",
    "wsol_cub": "wsol-cub",
    "wsol_tiny": "wsol-tiny",
}
WSOL_TASKS = ("synthetic_wsol_infocam",)


@dataclass
class TableInfo:
    """What the page says of one table config."""

    table_id: str
    title: str
    command: str
    runs_dir: Path


@dataclass
class RecordSummary:
    """The records behind a table: how many, their status, code versions, dates, protocol."""

    count: int = 0
    complete: int = 0
    shas: list[str] = field(default_factory=list)
    first: str = ""
    last: str = ""
    shared_protocol: dict[str, Any] = field(default_factory=dict)
    varying_protocol: dict[str, list[Any]] = field(default_factory=dict)


def table_infos(outputs: Path, config_dir: Path = CONFIG_DIR) -> list[TableInfo]:
    """Every ``configs/table/*.yaml``: id, title, regenerate command and runs folder (its
    ``${paths.output_dir}`` read as ``outputs``)."""
    from omegaconf import OmegaConf

    infos = []
    for path in sorted((config_dir / "table").glob("*.yaml")):
        spec = OmegaConf.to_container(OmegaConf.load(path), resolve=False).get("table") or {}
        target = MAKE_TARGETS.get(path.stem)
        default_cmd = f"make table-{target}" if target else f"python -m infocam_exp +table={path.stem} && python -m infocam_exp.tables {path.stem}"
        runs = str(spec.get("runs_dir", f"${{paths.output_dir}}/tables/runs/{path.stem}"))
        runs = runs.replace("${paths.output_dir}", str(outputs))
        infos.append(TableInfo(path.stem, str(spec.get("title", path.stem)), str(spec.get("command") or default_cmd), Path(runs)))
    return infos


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def summarise_records(runs_dir: Path) -> RecordSummary:
    """Status counts, SHAs, first/last record date and protocol facts of every record under
    ``runs_dir`` (any depth)."""
    summary = RecordSummary()
    if not runs_dir.is_dir():
        return summary
    facts: list[dict[str, Any]] = []
    dates = []
    shas = set()
    for path in sorted(runs_dir.rglob(METRICS_FILE)):
        rec = read_json(path)
        if not rec:
            continue
        summary.count += 1
        summary.complete += rec.get("status") == "complete"
        shas.add(rec.get("git_sha") or "unknown")
        dates.append(path.stat().st_mtime)
        flat: dict[str, Any] = {}
        _flatten("", rec.get("protocol") or {}, flat)
        facts.append(flat)
    summary.shas = sorted(shas)
    if dates:
        fmt = "%Y-%m-%d %H:%M UTC"
        summary.first = _dt.datetime.fromtimestamp(min(dates), _dt.timezone.utc).strftime(fmt)
        summary.last = _dt.datetime.fromtimestamp(max(dates), _dt.timezone.utc).strftime(fmt)
    keys = sorted({k for f in facts for k in f})
    for key in keys:
        values = [json.dumps(f.get(key), sort_keys=True) for f in facts]
        distinct = list(dict.fromkeys(values))
        if len(distinct) == 1:
            summary.shared_protocol[key] = json.loads(distinct[0])
        else:
            summary.varying_protocol[key] = [json.loads(v) for v in distinct]
    return summary


# --------------------------------------------------------------------------- markdown -> HTML
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _CODE.sub(r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str) -> str:
    """The subset of Markdown the table writers use: ``#`` headings, paragraphs, pipe tables
    (columns whose header says "paper" or "published" get the class ``paper``), ``**bold**``
    and inline code."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            flush()
            header = _cells(line)
            paper = [bool(re.search(r"paper|published", h, re.I)) for h in header]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append('<div class="scroll"><table>')
            out.append("<tr>" + "".join(f'<th{" class=paper" if p else ""}>{_inline(h)}</th>' for h, p in zip(header, paper, strict=False)) + "</tr>")
            for row in rows:
                out.append("<tr>" + "".join(f'<td{" class=paper" if j < len(paper) and paper[j] else ""}>{_inline(c)}</td>' for j, c in enumerate(row)) + "</tr>")
            out.append("</table></div>")
            continue
        if line.startswith("#"):
            flush()
            level = min(6, len(line) - len(line.lstrip("#")) + 2)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip().startswith(("- ", "* ")):
            flush()
            out.append(f"<ul><li>{_inline(line.strip()[2:])}</li></ul>")
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


# --------------------------------------------------------------------------- page
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-top: 0.6em; }
table { border-collapse: collapse; font-size: 13px; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.paper { background: #fff4d6; } .scroll { overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.meta { color: #555; font-size: 13px; } code { background: #f4f4f4; padding: 0 3px; }
.missing li { margin: 0.2em 0; } details { margin: 0.4em 0; }
"""


def _copy_figure(src: Path, figures: Path, name: str) -> str:
    figures.mkdir(parents=True, exist_ok=True)
    dst = figures / name
    shutil.copyfile(src, dst)
    return f"figures/{name}"


def _figure(src: str, caption: str) -> str:
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}"><figcaption class="meta">{_inline(caption)}</figcaption></figure>'


def _protocol_html(summary: RecordSummary) -> str:
    if not summary.shared_protocol and not summary.varying_protocol:
        return '<p class="meta">Protocol: the records carry no protocol block.</p>'
    parts = ["<details><summary>Protocol of these runs</summary>"]
    if summary.varying_protocol:
        parts.append("<p class=meta>Differs between runs:</p><ul>")
        parts += [f"<li><code>{html.escape(k)}</code>: {html.escape(', '.join(json.dumps(v) for v in vs))}</li>" for k, vs in summary.varying_protocol.items()]
        parts.append("</ul>")
    if summary.shared_protocol:
        parts.append("<p class=meta>Shared by every run:</p><ul>")
        parts += [f"<li><code>{html.escape(k)}</code>: {html.escape(json.dumps(v))}</li>" for k, v in summary.shared_protocol.items()]
        parts.append("</ul>")
    parts.append("</details>")
    return "\n".join(parts)


def _latest(paths: Iterable[Path]) -> Path | None:
    paths = [p for p in paths if p.is_file()]
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def _wsol_overlay(outputs: Path) -> tuple[Path, Path] | None:
    """The newest ``pictures/test_overlays.png`` of an embedded WSOL run, and its run folder."""
    candidates = []
    for pic in outputs.rglob("pictures/test_overlays.png"):
        rec = read_json(pic.parent.parent / METRICS_FILE) or {}
        if rec.get("task_name") in WSOL_TASKS:
            candidates.append(pic)
    pic = _latest(candidates)
    return (pic, pic.parent.parent) if pic else None


def build_report(outputs: Path = Path("outputs"), out_dir: Path | None = None, config_dir: Path = CONFIG_DIR) -> Path:
    """Write ``out_dir/index.html`` (default ``outputs/report``) and its figures; returns the
    page's path. Reads only existing files."""
    outputs = Path(outputs)
    out_dir = Path(out_dir) if out_dir else outputs / "report"
    figures = out_dir / "figures"
    if figures.exists():
        shutil.rmtree(figures)
    tables_dir = outputs / "tables"
    built, missing = [], []
    body: list[str] = []
    for info in table_infos(outputs, config_dir):
        md_path = tables_dir / f"{info.table_id}.md"
        if not md_path.is_file():
            missing.append(info)
            continue
        built.append(info)
        summary = summarise_records(info.runs_dir)
        section = [f'<section id="{info.table_id}">', markdown_to_html(md_path.read_text())]
        for png in sorted(tables_dir.glob(f"{info.table_id}*.png")):
            if png.stem == info.table_id or png.stem.startswith(info.table_id + "_"):
                section.append(_figure(_copy_figure(png, figures, png.name), f"`{png.name}`"))
        written = _dt.datetime.fromtimestamp(md_path.stat().st_mtime, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        dates = f"{summary.first} to {summary.last}" if summary.first else "none found"
        section.append(
            f'<p class="meta">Regenerate: <code>{html.escape(info.command)}</code> '
            f"(table only, from the records: <code>python -m infocam_exp.tables {info.table_id}</code>). "
            f"Records: {summary.count} in <code>{html.escape(str(info.runs_dir))}</code>, {summary.complete} complete, "
            f"written {dates}; code: {html.escape(', '.join(summary.shas) or 'unknown')}. Table file written {written}.</p>"
        )
        section.append(_protocol_html(summary))
        section.append("</section>")
        body.append("\n".join(section))

    extras: list[str] = []
    overlay = _wsol_overlay(outputs)
    if overlay:
        pic, run = overlay
        rec = read_json(run / METRICS_FILE) or {}
        extras.append("<h2>Embedded WSOL benchmark: the latest run's overlays</h2>")
        extras.append(_figure(_copy_figure(pic, figures, "wsol_overlays.png"), f"`{run}` (code {rec.get('git_sha', 'unknown')}); rerun: `python -m infocam_exp +experiment=synthetic_wsol_infocam`"))
        curves = run / "curves" / "test_localization.png"
        if curves.is_file():
            extras.append(_figure(_copy_figure(curves, figures, "wsol_curves.png"), "accuracy against the score-map threshold, test split"))
    bench = outputs / "benchmarks"
    bench_pngs = sorted(bench.glob("*.png")) if bench.is_dir() else []
    if bench_pngs:
        extras.append("<h2>Measurements</h2>")
        for png in bench_pngs:
            note = png.with_suffix(".md")
            caption = note.read_text().strip().splitlines()[0] if note.is_file() else f"`{png.name}`"
            extras.append(_figure(_copy_figure(png, figures, f"bench_{png.name}"), caption))

    nav = " · ".join(f'<a href="#{i.table_id}">{html.escape(i.table_id)}</a>' for i in built)
    missing_html = ""
    if missing:
        missing_html = "<h2>Tables not built yet</h2><ul class=missing>" + "".join(
            f"<li><strong>{html.escape(i.table_id)}</strong>: {html.escape(i.title)}: <code>{html.escape(i.command)}</code></li>" for i in missing
        ) + "</ul>"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>infocam-exp results</title>
<style>{CSS}</style></head><body>
<h1>infocam-exp: results</h1>
<p class="meta">Built {now} from the files under <code>{html.escape(str(outputs))}</code> by <code>make report</code>; nothing was rerun.
Published numbers are shaded <span class="paper">like this</span>. Tables: {nav or "none yet"}.</p>
{chr(10).join(body)}
{chr(10).join(extras)}
{missing_html}
</body></html>
"""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    write_text_atomic(path, page)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infocam_exp.report", description="Write outputs/report/index.html from existing tables and records.")
    parser.add_argument("--outputs", default="outputs", help="the outputs folder to read (default: outputs)")
    parser.add_argument("--out", default=None, help="folder of the page (default: OUTPUTS/report)")
    args = parser.parse_args(argv)
    outputs = Path(args.outputs)
    if not outputs.is_dir():
        print(f"error: no outputs folder at {outputs}; run an experiment or a table first, or pass --outputs DIR", file=sys.stderr)
        return 2
    path = build_report(outputs, Path(args.out) if args.out else None)
    print(f"Wrote {path} (open it in a browser: file://{path.resolve()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
