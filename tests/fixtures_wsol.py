"""Generators of tiny datasets in the exact release layouts, for the WSOL data tests.

- ``make_cub``: a ``CUB_200_2011/`` folder (classes.txt, images.txt, image_class_labels.txt,
  train_test_split.txt, bounding_boxes.txt, images/<NNN.Name>/<file>.jpg).
- ``make_tiny_imagenet``: a ``tiny-imagenet-200/`` folder (wnids.txt, words.txt, train/<wnid>/...,
  val/images + val_annotations.txt, test/images).
- ``make_wsol_metadata``: wsolevaluation-style metadata for a generated CUB folder.

Images are real JPEGs (PIL): a filled shape in a class colour on a noisy background, inside a
known box, so tests can check boxes against pixels. Everything is deterministic (seeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (220, 200, 20), (200, 40, 200)]


@dataclass(frozen=True)
class FixtureImage:
    """Ground truth of one generated image: ``rel`` is the path below the image root,
    ``label`` 0-based, ``box`` (x0, y0, x1, y1) in pixels, ``size`` (w, h)."""

    rel: str
    label: int
    box: tuple[float, float, float, float]
    size: tuple[int, int]
    is_train: bool = True
    cub_id: int = 0


def draw_image(path: Path, size: tuple[int, int], box: tuple[int, int, int, int], colour: tuple[int, int, int],
               seed: int, ellipse: bool = False) -> None:
    """Write a JPEG of ``size = (w, h)``: grey noise with a filled shape spanning
    ``box = (x0, y0, x1, y1)`` (PIL's inclusive corners)."""
    rng = np.random.default_rng(seed)
    w, h = size
    noise = rng.integers(60, 120, size=(h, w, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    draw = ImageDraw.Draw(image)
    (draw.ellipse if ellipse else draw.rectangle)(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=95)


def make_cub(root: Path, num_classes: int = 3, per_class: int = 5, train_per_class: int = 2) -> list[FixtureImage]:
    """Write ``root/CUB_200_2011`` with ``num_classes`` classes of ``per_class`` images each; in
    each class the first ``train_per_class`` images (images.txt order) are training images.

    Image ids run class by class (1, 2, ...), sizes vary (wider and taller than square), boxes are
    integer-valued so wsolevaluation's integer metadata matches exactly. Returns the truth, in
    images.txt order.
    """
    cub = root / "CUB_200_2011"
    (cub / "images").mkdir(parents=True, exist_ok=True)
    names = [f"{k + 1:03d}.Bird_{chr(ord('A') + k)}" for k in range(num_classes)]
    sizes = [(80, 60), (60, 90), (100, 100), (72, 48), (64, 64), (90, 70)]
    truth: list[FixtureImage] = []
    image_id = 0
    for k, name in enumerate(names):
        for j in range(per_class):
            image_id += 1
            w, h = sizes[(image_id - 1) % len(sizes)]
            x, y = 5 + (3 * j) % 15, 4 + (5 * k) % 12
            bw, bh = w // 2 + j, h // 2 - k
            rel = f"{name}/{name.split('.', 1)[1]}_{j + 1:04d}_{1000 + image_id}.jpg"
            draw_image(cub / "images" / rel, (w, h), (x, y, x + bw, y + bh), CLASS_COLOURS[k % 5], seed=image_id, ellipse=j % 2 == 1)
            truth.append(FixtureImage(rel, k, (float(x), float(y), float(x + bw), float(y + bh)), (w, h), j < train_per_class, image_id))
    (cub / "classes.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(names)))
    (cub / "images.txt").write_text("".join(f"{t.cub_id} {t.rel}\n" for t in truth))
    (cub / "image_class_labels.txt").write_text("".join(f"{t.cub_id} {t.label + 1}\n" for t in truth))
    (cub / "train_test_split.txt").write_text("".join(f"{t.cub_id} {int(t.is_train)}\n" for t in truth))
    (cub / "bounding_boxes.txt").write_text(
        "".join(f"{t.cub_id} {t.box[0]:.1f} {t.box[1]:.1f} {t.box[2] - t.box[0]:.1f} {t.box[3] - t.box[1]:.1f}\n" for t in truth)
    )
    return truth


def make_wsol_metadata(out: Path, splits: dict[str, list[FixtureImage]]) -> Path:
    """Write wsolevaluation metadata (``out/{split}/image_ids.txt, class_labels.txt,
    image_sizes.txt, localization.txt``, comma-separated, labels 0-based, integer boxes)."""
    for split, images in splits.items():
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "image_ids.txt").write_text("".join(f"{t.rel}\n" for t in images))
        (d / "class_labels.txt").write_text("".join(f"{t.rel},{t.label}\n" for t in images))
        (d / "image_sizes.txt").write_text("".join(f"{t.rel},{t.size[0]},{t.size[1]}\n" for t in images))
        (d / "localization.txt").write_text(
            "".join(f"{t.rel},{int(t.box[0])},{int(t.box[1])},{int(t.box[2])},{int(t.box[3])}\n" for t in images)
        )
    return out


def make_tiny_imagenet(root: Path, num_classes: int = 3, train_per_class: int = 4, val_per_class: int = 4) -> dict[str, list[FixtureImage]]:
    """Write ``root/tiny-imagenet-200`` (64 x 64 JPEGs). Val images are interleaved across classes
    (val_0 class 0, val_1 class 1, ...), like the release's shuffled val set. Boxes are corner
    coordinates with x1 - x0 != x1 (so an x y w h misreading shows). Returns
    ``{"wnids": ..., "train": [...], "val": [...]}`` truths (image ids relative to the folder)."""
    tiny = root / "tiny-imagenet-200"
    tiny.mkdir(parents=True, exist_ok=True)
    wnids = [f"n{1000000 + 17 * k:08d}" for k in range(num_classes)]
    (tiny / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    words = ["n00001740\tentity"] + [f"{w}\tthing {k}, object {k}" for k, w in enumerate(wnids)] + ["n99999999\tunused"]
    (tiny / "words.txt").write_text("\n".join(words) + "\n")
    train: list[FixtureImage] = []
    for k, w in enumerate(wnids):
        lines = []
        for j in range(train_per_class):
            x0, y0 = 8 + 2 * j, 10 + 3 * k
            x1, y1 = 40 + j, 50 - k
            name = f"{w}_{j}.JPEG"
            draw_image(tiny / "train" / w / "images" / name, (64, 64), (x0, y0, x1, y1), CLASS_COLOURS[k % 5], seed=100 * k + j)
            lines.append(f"{name}\t{x0}\t{y0}\t{x1}\t{y1}\n")
            train.append(FixtureImage(f"train/{w}/images/{name}", k, (x0, y0, x1, y1), (64, 64)))
        (tiny / "train" / w / f"{w}_boxes.txt").write_text("".join(lines))
    val: list[FixtureImage] = []
    lines = []
    for i in range(num_classes * val_per_class):
        k = i % num_classes
        x0, y0, x1, y1 = 20 + i % 5, 12, 52, 60 - i % 7
        name = f"val_{i}.JPEG"
        draw_image(tiny / "val" / "images" / name, (64, 64), (x0, y0, x1, y1), CLASS_COLOURS[k % 5], seed=5000 + i)
        lines.append(f"{name}\t{wnids[k]}\t{x0}\t{y0}\t{x1}\t{y1}\n")
        val.append(FixtureImage(f"val/images/{name}", k, (x0, y0, x1, y1), (64, 64), is_train=False))
    (tiny / "val" / "val_annotations.txt").write_text("".join(lines))
    (tiny / "test" / "images").mkdir(parents=True, exist_ok=True)
    return {"wnids": wnids, "train": train, "val": val}  # type: ignore[dict-item]


# --------------------------------------------------------------------------------------------
# Folders holding exactly the images the authors' shipped lists name


def _tiny_jpeg(size: int = 8) -> bytes:
    """One small JPEG's bytes (written to every listed file: the list tests need real files the
    loaders decode, not distinct pixels)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8), "RGB").save(buf, format="JPEG")
    return buf.getvalue()


def make_cub_from_lists(
    root: Path, train_list: Path, test_list: Path, order: str = "sorted", extra_per_class: int = 0,
    write_images: bool = True,
) -> dict[str, list[str]]:
    """Write ``root/CUB_200_2011`` in the release layout with the images of the authors' CUB lists
    (8 x 8 JPEGs): classes from the lists' folder names, train_test_split.txt = 1 for the training
    list. Returns ``{"train": [...], "test": [...]}``: the listed paths below ``images/``, list order.

    ``order``: images.txt order, ``"sorted"`` (by class folder, then file name) or ``"lists"``
    (class by class, the class's listed training and test images alternately, each in list order,
    as the release's images.txt interleaves them). ``extra_per_class``: unlisted training (test)
    images added after the listed ones of every class whose listed training (test) count is at its
    cap, the largest count among classes of the same id parity (10 / 30 training, 5 / 15 test), so
    "the first N images of a class" has images to leave out where the release has more.
    ``write_images=False`` writes the annotation files only (for readers run with check_files=False).
    """
    if order not in ("sorted", "lists"):
        raise ValueError(f"order must be 'sorted' or 'lists', got {order!r}")
    listed = {}
    for split, path in (("train", train_list), ("test", test_list)):
        listed[split] = [line.split(":")[0][len("images/"):] for line in path.read_text().splitlines() if line.strip()]
    cub = root / "CUB_200_2011"
    folders = sorted({rel.split("/")[0] for rels in listed.values() for rel in rels})
    class_id = {f: int(f.split(".")[0]) for f in folders}
    is_train = {rel: 1 for rel in listed["train"]} | {rel: 0 for rel in listed["test"]}
    if order == "sorted":
        ordered = sorted(is_train)
    else:
        per_class = {split: {f: [r for r in listed[split] if r.startswith(f + "/")] for f in folders} for split in listed}
        caps = {(split, odd): max(len(v) for f, v in per_class[split].items() if class_id[f] % 2 == odd)
                for split in listed for odd in (0, 1)}
        ordered = []
        for f in folders:
            train, test = per_class["train"][f], per_class["test"][f]
            for i in range(max(len(train), len(test))):
                ordered += train[i:i + 1] + test[i:i + 1]
            for split, rels in (("train", train), ("test", test)):
                if extra_per_class and len(rels) == caps[(split, class_id[f] % 2)]:
                    extra = [f"{f}/Unlisted_{split}_{j}.jpg" for j in range(extra_per_class)]
                    is_train.update({rel: int(split == "train") for rel in extra})
                    ordered += extra
    jpeg = _tiny_jpeg()
    for f in folders:
        (cub / "images" / f).mkdir(parents=True, exist_ok=True)
    for rel in ordered if write_images else ():
        (cub / "images" / rel).write_bytes(jpeg)
    (cub / "classes.txt").write_text("".join(f"{class_id[f]} {f}\n" for f in folders))
    (cub / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel in enumerate(ordered, 1)))
    (cub / "image_class_labels.txt").write_text(
        "".join(f"{i} {class_id[rel.split('/')[0]]}\n" for i, rel in enumerate(ordered, 1))
    )
    (cub / "train_test_split.txt").write_text("".join(f"{i} {is_train[rel]}\n" for i, rel in enumerate(ordered, 1)))
    (cub / "bounding_boxes.txt").write_text("".join(f"{i} 1.0 2.0 4.0 3.0\n" for i in range(1, len(ordered) + 1)))
    return listed


def make_tiny_from_lists(root: Path, val_list: Path, test_list: Path) -> dict[str, list]:
    """Write ``root/tiny-imagenet-200`` in the release layout whose val/images hold exactly the
    images of the authors' Tiny-ImageNet lists (8 x 8 JPEGs), val_annotations.txt in val_N order
    (as released), and one training image per class. wnids.txt is in reverse-sorted order, so
    the class indices differ from the lists' own label numbers. Returns ``{"wnids": [...],
    "val": [(wnid, file), ...], "test": [...]}`` in list order."""
    listed = {}
    for split, path in (("val", val_list), ("test", test_list)):
        listed[split] = [tuple(line.split()[1].split("/")) for line in path.read_text().splitlines() if line.strip()]
    tiny = root / "tiny-imagenet-200"
    wnids = sorted({w for pairs in listed.values() for w, _ in pairs}, reverse=True)
    jpeg = _tiny_jpeg()
    (tiny / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (tiny / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (tiny / "words.txt").write_text("".join(f"{w}\tclass {w}\n" for w in wnids))
    for w in wnids:
        (tiny / "train" / w / "images").mkdir(parents=True, exist_ok=True)
        (tiny / "train" / w / "images" / f"{w}_0.JPEG").write_bytes(jpeg)
        (tiny / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t1\t1\t6\t6\n")
    (tiny / "val" / "images").mkdir(parents=True, exist_ok=True)
    pairs = sorted(listed["val"] + listed["test"], key=lambda p: int(p[1].split("_")[1].split(".")[0]))
    for _, file in pairs:
        (tiny / "val" / "images" / file).write_bytes(jpeg)
    (tiny / "val" / "val_annotations.txt").write_text("".join(f"{f}\t{w}\t1\t2\t6\t5\n" for w, f in pairs))
    (tiny / "test" / "images").mkdir(parents=True, exist_ok=True)
    return {"wnids": wnids, **listed}
