"""Write a PNG grid of synthetic WSOL samples with their ground-truth boxes, for a human to inspect.

    python scripts/preview_synthetic_wsol.py --out outputs/preview_synthetic_wsol.png
    python scripts/preview_synthetic_wsol.py --split train --clutter 1.0 --image-size 96

Each tile is one image at ``--zoom`` x its size (nearest-neighbour, so pixels stay visible), with
its box drawn on the pixels it covers (green outline: first and last covered row/column) and its
class name underneath.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from infocam_exp.data.synthetic_wsol import SyntheticWSOLDataModule

log = logging.getLogger("preview_synthetic_wsol")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/preview_synthetic_wsol.png")
    ap.add_argument("--root", default=None, help="data root with Fashion-MNIST (default: search)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--n", type=int, default=48, help="number of tiles")
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--clutter", type=float, default=0.5)
    ap.add_argument("--object-scale", type=float, nargs=2, default=(0.5, 0.9))
    ap.add_argument("--invert-prob", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zoom", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    dm = SyntheticWSOLDataModule(
        root=args.root,
        image_size=args.image_size,
        object_scale=args.object_scale,
        num_train=args.n,
        num_val=args.n,
        num_test=args.n,
        seed=args.seed,
        clutter=args.clutter,
        invert_prob=args.invert_prob,
    )
    start = time.perf_counter()
    data = dm.generate(args.split)
    log.info("rendered %d %s images in %.2f s", args.n, args.split, time.perf_counter() - start)

    s, z = args.image_size, args.zoom
    label_h = 14
    rows = -(-args.n // args.cols)
    sheet = Image.new("RGB", (args.cols * (s * z + 4), rows * (s * z + 4 + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    images = data["images"].permute(0, 2, 3, 1).numpy()
    for i in range(args.n):
        r, c = divmod(i, args.cols)
        x0, y0 = c * (s * z + 4) + 2, r * (s * z + 4 + label_h) + 2
        tile = Image.fromarray(np.ascontiguousarray(images[i])).resize(
            (s * z, s * z), Image.NEAREST
        )
        sheet.paste(tile, (x0, y0))
        # Inclusive corners: the outline covers the first and last object pixels exactly.
        bx0, by0, bx1, by1 = (int(v) for v in data["boxes"][i, 0].tolist())
        draw.rectangle(
            [x0 + bx0 * z, y0 + by0 * z, x0 + (bx1 + 1) * z - 1, y0 + (by1 + 1) * z - 1],
            outline=(0, 255, 0),
        )
        draw.text((x0, y0 + s * z), dm.class_names[int(data["labels"][i])], fill=(0, 0, 0))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
