"""The authors' split lists shipped in ``infocam_exp/data/splits/`` (CC BY 4.0, see its README).

Qin et al.'s "first N images of a class" follow the order of their own list files, which no release
file gives, so the lists themselves are the protocol. This module reads them; the CUB and
Tiny-ImageNet readers map each entry onto the user's copy of the dataset and fail on an entry the
copy lacks, naming the entry and the list file.

- ``cub_imbalanced_train.txt`` / ``cub_imbalanced_test.txt``: lines
  ``images/<NNN.Name>/<file>.jpg: <label>`` (0-based class index); 3,997 / 1,996 lines.
- ``tiny_imagenet_val.txt`` / ``tiny_imagenet_test.txt``: lines ``<their id> <wnid>/<val_N.JPEG>
  <their label>``; 5,000 lines each (25 per class). Only the wnid and the file name are used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from infocam_exp.data.base import DataFormatError

T = TypeVar("T")

CUB_IMBALANCED_TRAIN = "cub_imbalanced_train.txt"
CUB_IMBALANCED_TEST = "cub_imbalanced_test.txt"
TINY_VAL = "tiny_imagenet_val.txt"
TINY_TEST = "tiny_imagenet_test.txt"


def list_path(name: str) -> Path:
    """Path of a shipped list file (inside the installed package)."""
    path = Path(str(resources.files("infocam_exp.data") / "splits" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"the authors' split list {path} is missing from the installed package; reinstall "
            "infocam-exp (the lists are package data: infocam_exp/data/splits/*.txt)"
        )
    return path


@dataclass(frozen=True)
class ListEntry:
    """One line of a list: ``key`` is what the reader matches (CUB: the path below ``images/``;
    Tiny-ImageNet: the val file name), ``label`` the CUB class index or None, ``wnid`` the
    Tiny-ImageNet class or None; ``where`` is ``file:line`` for error messages."""

    key: str
    label: int | None
    wnid: str | None
    where: str


def read_cub_list(name: str, path: Path | None = None) -> list[ListEntry]:
    """Entries of a CUB list, in file order. ``path`` overrides the shipped file (tests)."""
    path = path or list_path(name)
    out = []
    fmt = "images/<NNN.Name>/<file>.jpg: <label>"
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            rel, sep, label = text.rpartition(":")
            if not sep or not rel.startswith("images/") or not label.strip().isdigit():
                raise DataFormatError(path, f"got {text!r}, expected '{fmt}'", line=lineno)
            out.append(ListEntry(rel[len("images/"):], int(label), None, f"{path}:{lineno}"))
    return out


def read_tiny_list(name: str, path: Path | None = None) -> list[ListEntry]:
    """Entries of a Tiny-ImageNet list, in file order (their id and label are dropped)."""
    path = path or list_path(name)
    out = []
    fmt = "<id> <wnid>/<val_N.JPEG> <label>"
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[1].count("/") != 1:
                raise DataFormatError(path, f"got {line.strip()!r}, expected '{fmt}'", line=lineno)
            wnid, file = fields[1].split("/")
            out.append(ListEntry(file, None, wnid, f"{path}:{lineno}"))
    return out


def select_entries(
    entries: Sequence[ListEntry],
    by_key: Mapping[str, T],
    missing_error: Callable[[ListEntry, int], Exception],
    check: Callable[[ListEntry, T], None],
    name: Callable[[ListEntry], str],
) -> list[T]:
    """The records a list names, in the list's order.

    ``by_key`` maps an entry's ``key`` to the user's record. An entry absent from it raises
    ``missing_error(first_absent_entry, number_absent)``; a duplicate entry raises
    DataFormatError at its line (``name`` says how the entry is called there); ``check`` raises
    on an entry that disagrees with its record (label, wnid).
    """
    missing = [e for e in entries if e.key not in by_key]
    if missing:
        raise missing_error(missing[0], len(missing))
    out, seen = [], set()
    for e in entries:
        if e.key in seen:
            raise DataFormatError(e.where, f"{name(e)} is listed twice")
        seen.add(e.key)
        record = by_key[e.key]
        check(e, record)
        out.append(record)
    return out
