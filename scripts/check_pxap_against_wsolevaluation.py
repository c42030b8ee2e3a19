"""Check our PxAP against wsolevaluation's own ``MaskEvaluator`` on generated masks and maps.

Usage (a checkout of github.com/clovaai/wsolevaluation; nothing of it is copied here)::

    python scripts/check_pxap_against_wsolevaluation.py /path/to/wsolevaluation \\
        [--images 400] [--thresholds 100 1000] [--seed 0]

Generates a split in wsolevaluation's OpenImages layout in a temporary folder: masks as PNG files
of random original sizes and modes (8-bit grey, 1-bit, grey values 1..255, RGB, RGBA), one to
three instances per image (some empty, some overlapping the ignore box), an ignore mask per image
(some empty), and 224 x 224 float64 score maps with ties on the bin edges (values on the 1/100
and 1/1000 grids, float32-rounded grid values just off the edges, exact 0s and 1s, smooth and
noisy maps). Then, at each threshold count:

* ``infocam_exp.evaluate_masks.evaluate_masks`` (the CLI's code path: reading the PNGs, resizing,
  histograms, curve) with ``normalize=False`` against ``MaskEvaluator.accumulate``/``compute``
  on the same maps;
* with ``normalize=True`` against ``MaskEvaluator`` on wsolevaluation's ``normalize_scoremap`` of
  the maps (``inference.py``);
* the per-bin counts against ``MaskEvaluator``'s histograms, exactly;
* if the checkout has ``test_data/test_masks`` (real OpenImages masks), the same on those.

Prints the largest absolute PxAP difference; exits 1 if it exceeds 1e-9 or a count differs.
wsolevaluation needs two shims on current numpy/without its extra packages, applied here in
memory only: ``np.float`` (removed in numpy 1.24) is set to ``float``, and a stub module stands in
for ``munch`` when it is not installed (only its metadata helper uses it; we pass the metadata
object directly).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infocam_exp.evaluate_masks import evaluate_masks  # noqa: E402

SIZE = 224


def _import_wsolevaluation(checkout: Path):
    if not (checkout / "evaluation.py").is_file():
        raise SystemExit(f"{checkout}: not a wsolevaluation checkout (no evaluation.py)")
    if not hasattr(np, "float"):
        np.float = float  # removed from numpy; wsolevaluation uses it as a dtype
    try:
        import munch  # noqa: F401
    except ImportError:
        stub = types.ModuleType("munch")
        stub.Munch = dict
        sys.modules["munch"] = stub
    sys.path.insert(0, str(checkout))
    import evaluation
    import inference

    return evaluation, inference


def _random_map(rng: np.random.Generator, kind: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    if kind == 0:  # on the 1/1000 grid: every value is a bin edge at 1000 thresholds
        m = np.arange(0, 1, 0.001)[np.minimum(rng.integers(0, 1001, size=(SIZE, SIZE)), 999)]
        m[rng.random((SIZE, SIZE)) < 0.05] = 1.0
    elif kind == 1:  # on the 1/100 grid (edges at both counts), float32-rounded half the time
        m = np.arange(0, 1, 0.01)[rng.integers(0, 100, size=(SIZE, SIZE))]
        m[rng.random((SIZE, SIZE)) < 0.05] = 1.0
        if rng.random() < 0.5:
            m = m.astype(np.float32).astype(np.float64)
    elif kind == 2:  # smooth blob, normalised: exact 0 and 1
        cx, cy, s = rng.uniform(30, 190), rng.uniform(30, 190), rng.uniform(10, 60)
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
        m = (m - m.min()) / (m.max() - m.min())
    elif kind == 3:  # noise, not normalised (min > 0, max < 1)
        m = rng.uniform(0.1, 0.9, size=(SIZE, SIZE))
    else:  # coarse levels: large ties
        m = rng.integers(0, 5, size=(SIZE, SIZE)) / 4.0
    return m.astype(np.float64)


def _save_mask(rng: np.random.Generator, binary: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = rng.integers(0, 5)
    if mode == 0:
        Image.fromarray(binary.astype(np.uint8) * 255, "L").save(path)
    elif mode == 1:
        Image.fromarray(binary).convert("1").save(path)
    elif mode == 2:  # any non-zero grey is foreground (> 0.5 on 0..255 values)
        grey = np.where(binary, rng.integers(1, 256, size=binary.shape), 0).astype(np.uint8)
        Image.fromarray(grey, "L").save(path)
    elif mode == 3:
        Image.fromarray(np.repeat(binary[..., None].astype(np.uint8) * 255, 3, axis=2)).save(path)
    else:
        rgba = np.repeat(binary[..., None].astype(np.uint8) * 255, 4, axis=2)
        rgba[..., 3] = 255
        Image.fromarray(rgba, "RGBA").save(path)


def _rect(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), dtype=bool)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    out[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
    return out


def generate(root: Path, images: int, seed: int) -> tuple[Path, Path, Path, dict]:
    """A generated split; returns (metadata dir, mask root, heatmap dir, id -> map)."""
    rng = np.random.default_rng(seed)
    meta, masks, heat = root / "meta", root / "masks", root / "heat"
    meta.mkdir(parents=True)
    ids, lines, maps = [], [], {}
    for k in range(images):
        image_id = f"test/c{k % 7}/img{k:04d}.jpg"
        h, w = (int(v) for v in rng.integers(60, 700, size=2))
        ids.append(image_id)
        for j in range(int(rng.integers(1, 4))):
            binary = _rect(rng, h, w) if rng.random() < 0.9 else np.zeros((h, w), dtype=bool)
            mask_path = f"test/c{k % 7}/img{k:04d}_m{j}.png"
            _save_mask(rng, binary, masks / mask_path)
            ignore_path = ""
            if j == 0:
                ignore_path = f"test/c{k % 7}/img{k:04d}_ignore.png"
                box = _rect(rng, h, w) if rng.random() < 0.7 else np.zeros((h, w), dtype=bool)
                _save_mask(rng, box, masks / ignore_path)
            lines.append(f"{image_id},{mask_path},{ignore_path}\n")
        m = _random_map(rng, k % 5)
        maps[image_id] = m
        (heat / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(heat / f"{image_id}.npy", m)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "localization.txt").write_text("".join(lines))
    return meta, masks, heat, maps


def real_masks(checkout: Path, root: Path, seed: int) -> tuple[Path, Path, Path, dict] | None:
    """wsolevaluation's bundled OpenImages masks, with random maps."""
    base = checkout / "test_data" / "test_masks"
    ignores = sorted(base.glob("*/*/*_ignore.png"))
    if not ignores:
        return None
    rng = np.random.default_rng(seed)
    meta, heat = root / "meta", root / "heat"
    meta.mkdir(parents=True)
    ids, lines, maps = [], [], {}
    for k, ignore in enumerate(ignores):
        stem = ignore.name[: -len("_ignore.png")]
        rel_dir = ignore.parent.relative_to(base).as_posix()
        image_id = f"{rel_dir}/{stem}.jpg"
        ids.append(image_id)
        for j, mask in enumerate(sorted(ignore.parent.glob(f"{stem}_m*.png"))):
            ignore_path = f"{rel_dir}/{ignore.name}" if j == 0 else ""
            lines.append(f"{image_id},{rel_dir}/{mask.name},{ignore_path}\n")
        m = _random_map(rng, k % 5)
        maps[image_id] = m
        (heat / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(heat / f"{image_id}.npy", m)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "localization.txt").write_text("".join(lines))
    return meta, base, heat, maps


def theirs(evaluation, meta: Path, mask_root: Path, maps: dict, n: int, normalizer=None):
    """wsolevaluation's MaskEvaluator on the maps; returns (auc, fg hist, bg hist, seconds)."""
    start = time.perf_counter()
    evaluator = evaluation.MaskEvaluator(
        metadata=types.SimpleNamespace(localization=str(meta / "localization.txt")),
        dataset_name="OpenImages",
        split="test",
        cam_threshold_list=list(np.arange(0, 1, 1.0 / n)),
        iou_threshold_list=[30, 50, 70],
        mask_root=str(mask_root),
        multi_contour_eval=False,
    )
    for image_id, m in maps.items():
        scoremap = normalizer(m.copy()) if normalizer else m.copy()
        evaluator.accumulate(scoremap, image_id)
    # compute() prints its result and divides 0 by 0 at the empty top bin (masked out after)
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(invalid="ignore"):
        auc = evaluator.compute()
    seconds = time.perf_counter() - start
    return float(auc), evaluator.gt_true_score_hist, evaluator.gt_false_score_hist, seconds


def compare(name, evaluation, inference, meta, mask_root, heat, maps, counts) -> tuple[float, bool]:
    worst, counts_ok = 0.0, True
    for n in counts:
        for normalize in (False, True):
            start = time.perf_counter()
            ours = evaluate_masks(meta, heat, mask_root, thresholds=n, normalize=normalize,
                                  progress=False)
            ours_s = time.perf_counter() - start
            norm = inference.normalize_scoremap if normalize else None
            auc, fg_hist, bg_hist, theirs_s = theirs(evaluation, meta, mask_root, maps, n, norm)
            diff = abs(ours["metrics"]["pxap"] - auc)
            same = (
                ours["curves"]["tp"] == np.cumsum(fg_hist[::-1]).astype(np.int64).tolist()
                and ours["curves"]["fp"] == np.cumsum(bg_hist[::-1]).astype(np.int64).tolist()
            )
            worst = max(worst, diff)
            counts_ok &= same
            print(
                f"{name:>9}  images {ours['num_images']:4d}  thresholds {n:5d}  normalize "
                f"{normalize!s:5}  ours {ours['metrics']['pxap']:.12f}  wsolevaluation "
                f"{auc:.12f}  |diff| {diff:.3e}  counts equal {same}  "
                f"({ours_s:.1f} s vs {theirs_s:.1f} s)"
            )
    return worst, counts_ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a wsolevaluation checkout (work tree)")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    evaluation, inference = _import_wsolevaluation(args.checkout.resolve())
    worst, ok = 0.0, True
    with tempfile.TemporaryDirectory() as tmp:
        meta, masks, heat, maps = generate(Path(tmp) / "gen", args.images, args.seed)
        w, c = compare("generated", evaluation, inference, meta, masks, heat, maps, args.thresholds)
        worst, ok = max(worst, w), ok and c
        real = real_masks(args.checkout.resolve(), Path(tmp) / "real", args.seed)
        if real is not None:
            w, c = compare("real", evaluation, inference, *real, args.thresholds)
            worst, ok = max(worst, w), ok and c
    print(f"max |PxAP difference| = {worst:.3e}; per-bin counts equal: {ok}")
    return 0 if worst <= 1e-9 and ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
