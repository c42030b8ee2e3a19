"""The evaluator on mask metadata (wsolevaluation's OpenImages layout): PxAP, curve files, errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infocam_exp.data.wsol_masks import MaskMetadataError
from infocam_exp.evaluate import main
from infocam_exp.evaluate_masks import evaluate_masks
from tests.metrics.pxap_reference import gt_labels, normalize, reference_pxap


def _png(path: Path, binary: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(binary.astype(np.uint8) * 255, "L").save(path)


@pytest.fixture
def mask_split(tmp_path):
    """24 images: maps of two frames (float32 / float64, un-normalised), masks of other sizes,
    one to three instances, ignore masks on most images."""
    rng = np.random.default_rng(0)
    meta, masks, heat = tmp_path / "meta", tmp_path / "masks", tmp_path / "heat"
    meta.mkdir()
    ids, lines, expected = [], [], []
    for k in range(24):
        image_id = f"test/c{k % 3}/img{k}.jpg"
        ids.append(image_id)
        src = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        frame = (20, 24) if k % 2 else (16, 16)
        instances = []
        for j in range(int(rng.integers(1, 4))):
            m = np.zeros(src, dtype=bool)
            y, x = rng.integers(0, src[0] - 5), rng.integers(0, src[1] - 5)
            m[y : y + rng.integers(3, 15), x : x + rng.integers(3, 15)] = True
            instances.append(m)
            _png(masks / f"test/img{k}_m{j}.png", m)
            ignore = ""
            if j == 0 and k % 4:
                ignore = f"test/img{k}_ignore.png"
                box = np.zeros(src, dtype=bool)
                box[: src[0] // 2, : src[1] // 2] = True
                _png(masks / ignore, box)
            lines.append(f"{image_id},test/img{k}_m{j}.png,{ignore}\n")
        scoremap = rng.normal(size=frame).astype(np.float32 if k % 3 else np.float64)
        (heat / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(heat / f"{image_id}.npy", scoremap)
        box_grey = box * 255 if k % 4 else None
        fg, ign = gt_labels([m * 255 for m in instances], box_grey, frame)
        expected.append((normalize(scoremap), fg, ign))
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "localization.txt").write_text("".join(lines))
    return meta, masks, heat, expected


def test_pxap_equals_the_reference(mask_split):
    meta, masks, heat, expected = mask_split
    report = evaluate_masks(meta, heat, masks, thresholds=100, batch_size=5, progress=False)
    ref = reference_pxap(*zip(*expected, strict=True), 100)
    assert abs(report["metrics"]["pxap"] - ref["pxap"]) < 1e-9
    assert report["curves"]["tp"] == ref["tp"].tolist()
    assert report["curves"]["fp"] == ref["fp"].tolist()
    assert report["num_images"] == 24 and report["num_thresholds"] == 100
    assert report["pixels"]["ignored"] == sum(int(i.sum()) for _, _, i in expected) > 0


def test_cli_detects_masks_and_writes_report_csv_and_png(mask_split, tmp_path, capsys):
    meta, masks, heat, expected = mask_split
    out = tmp_path / "res" / "pxap.json"
    argv = ["--metadata", str(meta), "--heatmaps", str(heat), "--thresholds", "50"]
    assert main([*argv, "--mask-root", str(masks), "--json", str(out)]) == 0
    assert "PxAP" in capsys.readouterr().out
    data = json.loads(out.read_text())
    ref = reference_pxap(*zip(*expected, strict=True), 50)
    assert abs(data["metrics"]["pxap"] - ref["pxap"]) < 1e-9
    assert data["curves"]["precision"][0] is None  # nothing scores >= 2
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["pxap.json", "pxap_pr_curve.csv", "pxap_pr_curve.png"]  # no temp files
    with (out.parent / "pxap_pr_curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 52 and float(rows[-1]["threshold"]) == 0.0
    assert float(rows[-1]["recall"]) == 1.0 and rows[0]["precision"] == ""
    assert (out.parent / "pxap_pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_needs_mask_root(mask_split, caplog):
    meta, _, heat, _ = mask_split
    assert main(["--metadata", str(meta), "--heatmaps", str(heat)]) == 2
    assert "--mask-root" in caplog.text


def test_missing_mask_file_names_the_metadata_line(mask_split, caplog):
    meta, masks, heat, _ = mask_split
    (masks / "test/img2_m0.png").unlink()
    argv = ["--metadata", str(meta), "--heatmaps", str(heat), "--mask-root", str(masks)]
    assert main([*argv, "--thresholds", "10"]) == 2
    line = next(
        i
        for i, li in enumerate((meta / "localization.txt").read_text().splitlines(), 1)
        if "img2_m0.png" in li
    )
    assert "img2_m0.png: mask file not found" in caplog.text
    assert f"localization.txt:{line}" in caplog.text


def test_no_foreground_is_an_error_naming_localization(mask_split):
    meta, masks, heat, _ = mask_split
    for png in masks.rglob("*_m*.png"):
        _png(png, np.zeros((8, 8), dtype=bool))
    with pytest.raises(MaskMetadataError) as info:
        evaluate_masks(meta, heat, masks, thresholds=10, progress=False)
    assert "localization.txt" in str(info.value) and "no positive ground truth" in str(info.value)


def test_unnormalised_maps_are_rejected_with_no_normalize(mask_split):
    meta, masks, heat, _ = mask_split
    with pytest.raises(MaskMetadataError, match=r"outside \[0, 1\]"):
        evaluate_masks(meta, heat, masks, thresholds=10, normalize=False, progress=False)
