"""Check two facts of docs/protocol.md against the originals (run by hand; needs their files).

    python scripts/check_authors_protocol.py cub-lists PATH
        PATH: a CUB_200_2011 folder (its images.txt and train_test_split.txt), or wsolevaluation's
        metadata/CUB folder (train/ and test/image_ids.txt list the official splits in images.txt
        order). Applies the imbalanced rule (10 / 30 training, 5 / 15 test images of each odd / even
        class id, first in images.txt order) and compares it with the shipped authors' lists.

    python scripts/check_authors_protocol.py scripts-parse REPO
        REPO: a checkout of kfzyqin/Research-Softmax-with-Mutual-Information. Feeds the flags of
        every released info_cam/*/scripts/*.sh to that folder's own argument parser
        (utils/util_args.py) and says which scripts it rejects (e.g. `-max-cam` with one dash).

    python scripts/check_authors_protocol.py box-extent DIR
        DIR: a folder with localization.txt and image_sizes.txt in wsolevaluation's format (its
        metadata/CUB/test: the 5,794 official CUB test images). Counts the boxes that reach outside
        the 224 x 224 centre crop under the authors' transform (x * 255 / w - 15): the boxes that
        clipping would change.

Exit status 0 when every check holds (cub-lists) or after reporting (scripts-parse, box-extent).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
import sys
from collections import Counter
from pathlib import Path

from infocam_exp.data.author_lists import CUB_IMBALANCED_TEST, CUB_IMBALANCED_TRAIN, read_cub_list


def _rule(paths: list[str], keep_odd: int, keep_even: int) -> list[str]:
    seen: Counter = Counter()
    out = []
    for rel in paths:
        class_id = int(rel.split(".", 1)[0])
        seen[class_id] += 1
        if seen[class_id] <= (keep_odd if class_id % 2 else keep_even):
            out.append(rel)
    return out


def _official(path: Path) -> dict[str, list[str]]:
    if (path / "train" / "image_ids.txt").is_file():  # wsolevaluation metadata
        read = lambda split: [ln.strip() for ln in (path / split / "image_ids.txt").read_text().splitlines() if ln.strip()]  # noqa: E731
        return {"train": read("train"), "test": read("test")}
    from infocam_exp.data.cub import read_cub, split_official

    train, test = split_official(read_cub(path, check_files=False))
    return {"train": [im.rel_path for im in train], "test": [im.rel_path for im in test]}


def check_cub_lists(path: Path) -> int:
    official = _official(path)
    bad = 0
    for split, name, caps in (("train", CUB_IMBALANCED_TRAIN, (10, 30)), ("test", CUB_IMBALANCED_TEST, (5, 15))):
        listed = [e.key for e in read_cub_list(name)]
        got = _rule(official[split], *caps)
        same = got == listed
        print(f"{split}: {len(official[split])} official images, rule picks {len(got)}, list has {len(listed)}: "
              + ("identical (same images, same order)" if same else "DIFFERENT"))
        if not same:
            bad += 1
            i = next((i for i, (a, b) in enumerate(zip(got, listed, strict=False)) if a != b), min(len(got), len(listed)))
            print(f"  first difference at position {i}: rule {got[i:i + 1]} vs list {listed[i:i + 1]}")
    return 1 if bad else 0


def check_scripts(repo: Path) -> int:
    for folder in sorted((repo / "info_cam").iterdir()):
        args_file = folder / "utils" / "util_args.py"
        if not args_file.is_file():
            continue
        spec = importlib.util.spec_from_file_location(f"util_args_{folder.name}", args_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for script in sorted((folder / "scripts").glob("*.sh")):
            text = script.read_text().replace("\\\n", " ")
            line = next((ln for ln in text.splitlines() if "python train.py" in ln), None)
            if line is None:
                continue
            # the script's own variable assignments (name=value lines), substituted as the shell would
            values = dict(re.findall(r'^(\w+)=(.*)$', text, flags=re.M))
            values = {k: v.strip().strip('"').strip("'") for k, v in values.items()}
            command = re.sub(r"\$\{(\w+)\}", lambda m, v=values: v.get(m.group(1), ""), line.split("python train.py", 1)[1])
            sys.argv = ["train.py", *shlex.split(command)]
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    module.get_args()
                verdict = "parses"
            except SystemExit:
                verdict = "REJECTED by argparse: " + err.getvalue().strip().splitlines()[-1]
            print(f"{script.relative_to(repo)}: {verdict}")
    return 0


def box_extent(folder: Path) -> int:
    sizes = {}
    for line in (folder / "image_sizes.txt").read_text().splitlines():
        if line.strip():
            path, w, h = line.strip().split(",")
            sizes[path] = (float(w), float(h))
    total = outside = 0
    for line in (folder / "localization.txt").read_text().splitlines():
        if not line.strip():
            continue
        path, *box = line.strip().split(",")
        w, h = sizes[path]
        x0, y0, x1, y1 = (float(v) * 255 / d - 15 for v, d in zip(box, (w, h, w, h), strict=True))
        total += 1
        outside += x0 < 0 or y0 < 0 or x1 > 223 or y1 > 223
    print(f"{outside} of {total} boxes ({100 * outside / max(total, 1):.1f}%) reach outside the 224 crop")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=("cub-lists", "scripts-parse", "box-extent"))
    parser.add_argument("path", type=Path)
    a = parser.parse_args()
    checks = {"cub-lists": check_cub_lists, "scripts-parse": check_scripts, "box-extent": box_extent}
    return checks[a.check](a.path)


if __name__ == "__main__":
    sys.exit(main())
