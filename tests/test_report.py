"""``make report``: one static page built from records and table files only. Checked on
generated outputs (structure, every image it references exists, tables not yet built are listed
with their command, published numbers marked) and rendered in headless Chromium (not blank, no
console message: a page with ``console.error`` fails it, checked by hand; a missing image logs
nothing in headless Chromium, which is why the structural test checks every ``src``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infocam_exp.report import build_report, main, markdown_to_html, summarise_records
from tests.conftest import needs_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _png(path: Path, colour=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((40, 60, 3), dtype=np.uint8)
    arr[:] = colour
    arr[10:30, 20:40] = 255
    Image.fromarray(arr).save(path)


def _record(path: Path, **extra) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rec = {"status": "complete", "git_sha": "abc1234", "metrics": {"test/acc": 0.5}, **extra}
    (path / "metrics.json").write_text(json.dumps(rec))


def _outputs(root: Path) -> Path:
    out = root / "outputs"
    tables = out / "tables"
    tables.mkdir(parents=True)
    (tables / "wsol_cub.md").write_text(
        "# WSOL on CUB\n\nNotes with `code` and **bold**.\n\n"
        "| model | seeds | Top-1 Loc | Top-1 Loc (paper) |\n|---|---|---|---|\n"
        "| resnet50 | 3/3 | **54.10 ± 0.20** | 55.83 |\n\nRuns: somewhere.\n"
    )
    _png(tables / "wsol_cub.png")
    for seed, thr in ((0, 0.8), (1, 0.9)):
        _record(out / "tables" / "runs" / "wsol_cub" / f"seed={seed}", protocol={"model": {"adl_threshold": thr}, "data": {"box_transform": "authors"}})
    run = out / "runs" / "synthetic_wsol_infocam" / "2026-01-01"
    _record(run, task_name="synthetic_wsol_infocam")
    _png(run / "pictures" / "test_overlays.png", (30, 200, 30))
    _png(run / "curves" / "test_localization.png", (30, 30, 200))
    _png(out / "benchmarks" / "box_eval.png", (100, 100, 0))
    (out / "benchmarks" / "box_eval.md").write_text("Box evaluator: maps/s, cold and warm\n")
    return out


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.ids, self.paper_cells = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if "id" in a:
            self.ids.append(a["id"])
        if tag in ("td", "th") and a.get("class") == "paper":
            self.paper_cells += 1


def test_report_structure_images_and_missing_tables(tmp_path):
    out = _outputs(tmp_path)
    page = build_report(out)
    assert page == out / "report" / "index.html"
    text = page.read_text()
    parser = _Collect()
    parser.feed(text)
    assert parser.ids == ["wsol_cub"]  # the one built table has a section
    assert parser.paper_cells == 2  # header and value of the published column are marked
    assert len(parser.imgs) == 4  # table figure, WSOL overlays and curves, the benchmark figure
    for src in parser.imgs:
        assert not src.startswith(("/", "http")) and (page.parent / src).is_file(), src
    # every table config without a table file is listed with its command
    assert "Tables not built yet" in text
    for cmd in ("make table-mi", "make table-mi-bench", "make table-wsol-tiny", "make table-mnist"):
        assert f"<code>{cmd}</code>" in text
    assert "make table-wsol-cub" in text  # the built table's regenerate command
    # records: count, SHA and the protocol fact that differs between runs
    assert "Records: 2" in text and "abc1234" in text
    assert "model.adl_threshold" in text and "0.8, 0.9" in text
    assert "<strong>54.10 ± 0.20</strong>" in text and "<code>code</code>" in text
    assert "Box evaluator: maps/s, cold and warm" in text


def test_report_on_empty_outputs_lists_every_table(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    text = build_report(out).read_text()
    assert "Tables: none yet" in text and text.count("<li><strong>") >= 8
    assert main(["--outputs", str(tmp_path / "nowhere")]) == 2


def test_summarise_records_shared_and_varying(tmp_path):
    _record(tmp_path / "a", protocol={"x": 1, "y": {"z": [1, 2]}})
    _record(tmp_path / "b", protocol={"x": 2, "y": {"z": [1, 2]}}, status="failed")
    s = summarise_records(tmp_path)
    assert (s.count, s.complete) == (2, 1)
    assert s.shared_protocol == {"y.z": [1, 2]} and s.varying_protocol == {"x": [1, 2]}


def test_markdown_table_escapes_html():
    html = markdown_to_html("| a | b |\n|---|---|\n| <x> | 1 |\n")
    assert "&lt;x&gt;" in html and "<x>" not in html


@needs_data(CHROMIUM is not None, "Debian's chromium for the report's browser check (apt-get install chromium; CI installs it)")
@pytest.mark.slow
def test_report_renders_in_chromium_without_console_errors(tmp_path):
    page = build_report(_outputs(tmp_path))
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--window-size=1200,1600", f"--screenshot={shot}", page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 5, "blank screenshot"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
