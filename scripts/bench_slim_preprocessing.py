"""Throughput of the TF-slim Inception preprocessing (infocam_exp/data/slim.py) on one CPU thread.

Decodes nothing: random RGB images of CUB's typical size (500 x 375 by default) go through the
training transform (distorted crop, TF 1.x bilinear resize to 299, flip, brightness, saturation)
and the evaluation transform (central crop 0.875, resize); prints ms per image and images/s per
core, and what the authors' 2,810 steps of 64 images need in core-seconds.
Usage: python scripts/bench_slim_preprocessing.py [--images 200] [--size 500 375]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infocam_exp.data.slim import InceptionEvalTransform, InceptionTrainTransform  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    w, h = args.size
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(8)]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs, torch threads 1")
    for name, transform in (("train", InceptionTrainTransform(299)), ("eval", InceptionEvalTransform(299))):
        transform(images[0])  # warm up
        start = time.perf_counter()
        for i in range(args.images):
            transform(images[i % len(images)])
        per_image = (time.perf_counter() - start) / args.images
        print(f"{name}: {per_image * 1e3:.1f} ms/image, {1 / per_image:.0f} images/s per core ({w}x{h} -> 299x299)")
        if name == "train":
            print(f"  2,810 steps x 64 images = 179,840 images: {179840 * per_image / 60:.1f} core-minutes")


if __name__ == "__main__":
    main()
