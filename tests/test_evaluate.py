"""The heatmap-file evaluator: metadata parsing, validation, box rescaling, JSON output."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from infocam_exp.evaluate import (
    MetadataError,
    evaluate,
    load_metadata,
    main,
    rescale_boxes,
)
from infocam_exp.metrics.boxes import default_thresholds
from tests.metrics.opencv_reference import opencv_threshold_ious


def _write_split(root: Path, ids, sizes, boxes, labels=True) -> Path:
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "image_sizes.txt").write_text("".join(f"{i},{w},{h}\n" for i, (w, h) in sizes.items()))
    lines = [f"{i},{x0},{y0},{x1},{y1}\n" for i, bs in boxes.items() for x0, y0, x1, y1 in bs]
    (meta / "localization.txt").write_text("".join(lines))
    if labels:
        (meta / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    return meta


def _blob(size: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


@pytest.fixture
def split(tmp_path):
    """Three images of different original sizes, 56 x 56 heatmaps in nested folders."""
    ids = ["001.A/img_1.jpg", "001.A/img_2.jpg", "002.B/img_3.jpg"]
    sizes = {ids[0]: (112, 112), ids[1]: (224, 112), ids[2]: (56, 56)}
    boxes = {
        ids[0]: [(40, 40, 80, 80)],
        ids[1]: [(0, 0, 20, 20), (100, 20, 160, 60)],
        ids[2]: [(5, 5, 15, 15)],
    }
    meta = _write_split(tmp_path, ids, sizes, boxes)
    heat = tmp_path / "heat"
    maps = [_blob(56, 30, 30, 6), _blob(56, 32, 20, 5), _blob(56, 45, 45, 3)]
    for image_id, m in zip(ids, maps, strict=True):
        path = heat / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, m)
    return meta, heat, ids, sizes, boxes, maps


def test_rescale_boxes_truncates_like_wsolevaluation():
    out = rescale_boxes([(10, 21, 99, 50)], image_size=(100, 60), map_size=(224, 224))
    # int(10 * 224 / 100) = 22, int(21 * 224 / 60) = 78, int(99 * 2.24) = 221, int(50 * 224 / 60)
    assert out.tolist() == [[22, 78, 221, 186]]


def test_evaluate_matches_the_opencv_reference(split, tmp_path):
    meta, heat, ids, sizes, boxes, maps = split
    report = evaluate(meta, heat, thresholds=100, batch_size=2, progress=False)
    assert report["num_images"] == 3
    gts = [rescale_boxes(boxes[i], sizes[i], (56, 56)) for i in ids]
    gt = torch.full((3, 2, 4), -1, dtype=torch.int64)
    for k, g in enumerate(gts):
        gt[k, : len(g)] = torch.from_numpy(g)
    largest, anyr = opencv_threshold_ious(
        torch.from_numpy(np.stack(maps)), gt, default_thresholds(100)
    )
    want = float((largest >= 0.5).double().mean(0).max() * 100)
    assert report["metrics"]["max_box_acc"] == pytest.approx(want)
    v2 = [float((anyr >= t).double().mean(0).max() * 100) for t in (0.3, 0.5, 0.7)]
    assert report["metrics"]["max_box_acc_v2"] == pytest.approx(sum(v2) / 3)
    assert report["metrics"]["max_box_acc_v2_iou70"] == pytest.approx(v2[2])
    assert report["metrics"]["gt_known_loc"] == pytest.approx(
        float((largest[:, 20] >= 0.5).double().mean() * 100)
    )
    assert len(report["curves"]["thresholds"]) == 100
    assert len(report["curves"]["max_box_acc_v2_iou50"]) == 100


def test_cli_prints_table_and_writes_json_atomically(split, tmp_path, capsys):
    meta, heat, *_ = split
    out = tmp_path / "res" / "metrics.json"
    code = main(["--metadata", str(meta), "--heatmaps", str(heat), "--thresholds", "50"])
    assert code == 0
    assert gc.isenabled()  # the CLI pauses the cyclic collector while it scores, then restores it
    code = main(
        ["--metadata", str(meta), "--heatmaps", str(heat), "--thresholds", "50", "--json", str(out)]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "MaxBoxAccV2" in table and "GT-known Loc" in table
    data = json.loads(out.read_text())
    assert data["num_images"] == 3 and "max_box_acc" in data["metrics"]
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temp file left


def _error(meta, heat, **kw) -> str:
    with pytest.raises(MetadataError) as info:
        evaluate(meta, heat, thresholds=10, progress=False, **kw)
    return str(info.value)


def test_missing_heatmap_names_id_and_path(split):
    meta, heat, ids, *_ = split
    (heat / f"{ids[1]}.npy").unlink()
    msg = _error(meta, heat)
    assert ids[1] in msg and str(heat / f"{ids[1]}.npy") in msg


def test_wrong_shape_is_reported(split):
    meta, heat, ids, *_ = split
    np.save(heat / f"{ids[0]}.npy", np.zeros((2, 56, 56), dtype=np.float32))
    msg = _error(meta, heat)
    assert "2-D" in msg and ids[0] in msg


def test_nan_is_an_error_unless_allowed(split):
    meta, heat, ids, *_ = split
    m = _blob(56, 30, 30, 6)
    m[3, 3] = np.nan
    np.save(heat / f"{ids[2]}.npy", m)
    msg = _error(meta, heat)
    assert "NaN" in msg and ids[2] in msg
    report = evaluate(meta, heat, thresholds=10, allow_nan=True, progress=False)
    assert report["num_images"] == 3


def test_unparsable_metadata_line_names_file_and_line(split):
    meta, heat, *_ = split
    with (meta / "localization.txt").open("a") as f:
        f.write("001.A/img_1.jpg,1,2,three,4\n")
    msg = _error(meta, heat)
    assert "localization.txt:5:" in msg and "three" in msg and "<x0>" in msg


def test_bad_size_line(split):
    meta, heat, ids, *_ = split
    (meta / "image_sizes.txt").write_text(f"{ids[0]},112\n")
    msg = _error(meta, heat)
    assert "image_sizes.txt:1:" in msg and "<width>" in msg


def test_id_missing_from_a_metadata_file(split):
    meta, heat, ids, *_ = split
    lines = (meta / "localization.txt").read_text().splitlines(keepends=True)
    (meta / "localization.txt").write_text("".join(li for li in lines if ids[2] not in li))
    msg = _error(meta, heat)
    assert "localization.txt" in msg and ids[2] in msg


def test_missing_metadata_file(split):
    meta, heat, *_ = split
    (meta / "image_sizes.txt").unlink()
    assert "image_sizes.txt" in _error(meta, heat)


def test_cli_process_flushes_everything_before_its_quick_exit(split, tmp_path):
    # `python -m infocam_exp.evaluate` ends with os._exit (no interpreter teardown): the table on
    # a pipe, the log lines and the JSON report must all be complete, and the status kept.
    meta, heat, ids, *_ = split
    out = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "infocam_exp.evaluate", "--metadata", str(meta), "--heatmaps"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    res = subprocess.run(
        [*cmd, str(heat), "--thresholds", "50", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split() == ["images", "3"]
    assert res.stdout.rstrip().splitlines()[-1].startswith("GT-known Loc")
    assert f"wrote {out}" in res.stderr
    assert json.loads(out.read_text())["num_images"] == 3
    (heat / f"{ids[0]}.npy").unlink()
    res = subprocess.run([*cmd, str(heat)], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and ids[0] in res.stderr


@pytest.mark.parametrize("kernels", ["c", "numba"])
def test_cli_scores_the_same_with_either_kernel_set_and_c_needs_no_numba(split, tmp_path, kernels):
    # The evaluate CLI's whole run (fresh caches): with the C kernels numba is never imported;
    # both kernel sets write the same report.
    meta, heat, *_ = split
    out = tmp_path / f"{kernels}.json"
    code = (
        "import sys\n"
        "from infocam_exp.evaluate import main\n"
        f"status = main(['--metadata', {str(meta)!r}, '--heatmaps', {str(heat)!r}, '--json', {str(out)!r}])\n"
        "print(status, 'numba' in sys.modules)\n"
    )
    env = dict(os.environ, INFOCAM_BOX_KERNEL=kernels, INFOCAM_KERNEL_CACHE=str(tmp_path / "c"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-2:] == ["0", "False" if kernels == "c" else "True"]
    report = json.loads(out.read_text())
    from infocam_exp.evaluate import evaluate

    assert report["metrics"] == evaluate(meta, heat, backend="torch")["metrics"]


def test_cli_reports_errors_with_status_2(split, caplog):
    meta, heat, ids, *_ = split
    (heat / f"{ids[0]}.npy").unlink()
    assert main(["--metadata", str(meta), "--heatmaps", str(heat), "--thresholds", "10"]) == 2
    assert ids[0] in caplog.text
    assert gc.isenabled()
    gc.disable()  # a caller's own choice is kept
    try:
        assert main(["--metadata", str(meta), "--heatmaps", str(heat)]) == 2
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_load_metadata_groups_multiple_boxes(split):
    meta, _, ids, *_ = split
    parsed = load_metadata(meta)
    assert parsed.image_ids == ids
    assert len(parsed.boxes[ids[1]]) == 2
    assert parsed.image_sizes[ids[1]] == (224, 112)


def test_cpu_evaluation_needs_no_torch_sweep_and_the_torch_backend_agrees(split, monkeypatch):
    import infocam_exp.metrics.boxes as boxes_mod

    meta, heat, *_ = split

    def boom(*_args, **_kwargs):
        raise AssertionError("the torch sweep ran")

    with monkeypatch.context() as patch:
        for name in ("sweep_levels", "threshold_ious"):
            patch.setattr(boxes_mod, name, boom)
        auto = evaluate(meta, heat, thresholds=100, progress=False, workers=2)
        compiled = evaluate(meta, heat, thresholds=100, progress=False, backend="compiled")
        with pytest.raises(AssertionError, match="torch sweep ran"):
            evaluate(meta, heat, thresholds=100, progress=False, backend="torch")
    by_torch = evaluate(meta, heat, thresholds=100, progress=False, backend="torch")
    assert auto == compiled
    assert by_torch["metrics"] == auto["metrics"] and by_torch["curves"] == auto["curves"]


@pytest.mark.parametrize("kernels", ["c", "numba"])
def test_warm_up_reports_the_kernels_and_where_they_live(capsys, kernels):
    from tests.metrics.conftest import use_box_kernels

    with use_box_kernels(kernels) as chosen:
        assert main(["--warm-up"]) == 0
        out = capsys.readouterr().out
    assert out.startswith("box sweep ready in ")
    assert out.rstrip().endswith(f": {kernels} kernels, compiled code in {chosen.location()}")
    assert os.path.exists(chosen.location())


def test_fast_npy_reader_equals_np_load_and_falls_back(tmp_path):
    from infocam_exp.files import _NPY_HEADERS
    from infocam_exp.files import read_npy as _read_npy

    _NPY_HEADERS.clear()
    g = np.random.default_rng(0)
    arrays = {
        "a.npy": g.random((7, 5), dtype=np.float32),
        "b.npy": g.random((7, 5), dtype=np.float32),  # same header: read straight
        "c.npy": g.random((5, 7)),  # another shape and dtype
        "d.npy": np.asfortranarray(g.random((7, 5), dtype=np.float32)),  # Fortran order
        "e.npy": g.random((7, 5)).astype(">f8"),  # big-endian
    }
    for name, arr in arrays.items():
        np.save(tmp_path / name, arr)
    for name, arr in arrays.items():
        got = _read_npy(tmp_path / name)
        assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)
    assert len(_NPY_HEADERS) == 3  # Fortran order is never cached
    assert sum(h[0] == open(tmp_path / "a.npy", "rb").read(len(h[0])) for h in _NPY_HEADERS) == 1
    # a file cut short, or with bytes after the data, under a cached header: np.load decides
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(raw[:-4])
    with pytest.raises(ValueError):
        _read_npy(tmp_path / "short.npy")
    (tmp_path / "long.npy").write_bytes(raw + b"\0" * 4)
    assert np.array_equal(_read_npy(tmp_path / "long.npy"), np.load(tmp_path / "long.npy"))


def test_truncated_heatmap_is_a_clear_error(split):
    meta, heat, ids, *_ = split
    path = heat / f"{ids[1]}.npy"
    path.write_bytes(path.read_bytes()[:200])
    msg = _error(meta, heat)
    assert str(path) in msg and "not a readable .npy array" in msg


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_per_map_uint8_conversion_equals_the_reference(dtype):
    # The CLI converts each map as it is read; the bytes must be the independent numpy
    # reference's (float16 is widened to float32 first, as the torch form does).
    from infocam_exp.evaluate import _to_uint8
    from tests.metrics.opencv_reference import normalize_to_uint8

    g = np.random.default_rng(1)
    for i in range(200):
        top = 2 if dtype == np.float16 else 6  # float16 overflows past 65504
        m = g.standard_normal((13, 11)) * 10.0 ** g.integers(-4, top) + g.integers(-9, 9) * 10.0**top
        if i == 0:
            m[:] = 2.5  # constant: no region
        if i == 1:
            m[4, 4] = np.nan  # with --allow-nan: no region
        m = m.astype(dtype)
        want = normalize_to_uint8(m if dtype != np.float16 else m.astype(np.float32))
        assert np.array_equal(_to_uint8(m[None], True)[0], want), i
