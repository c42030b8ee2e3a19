"""Safe extraction: every member is checked before anything is written, then the archive is
extracted into a fresh folder (the caller renames what it needs into place).

tar: each member must pass tarfile's ``data`` filter (no absolute paths, nothing outside the
target, no links pointing outside, no device files), and, stricter, no member name may contain a
``..`` component or pass through a symbolic link of the archive. The extraction itself runs with
``filter="data"`` too. zip: no absolute paths or drive letters, no ``..`` components, no symbolic
links (zipfile would write them as plain files; a link out of the target is named as such).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from infocam_exp.fetch.download import FetchError


class HostileArchiveError(FetchError):
    """An archive member that would be written outside the target (or is not a plain file or folder)."""


def _lexical_escape(name: str) -> bool:
    """True if ``name`` is absolute or has a ``..`` component (either separator)."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in name.replace("\\", "/").split("/")


def _link_escapes(member_name: str, target: str) -> bool:
    """True if a link at ``member_name`` pointing to ``target`` resolves outside the archive root."""
    if target.startswith(("/", "\\")):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(member_name), target.replace("\\", "/")))
    return joined == ".." or joined.startswith("../")


def check_tar(archive: Path, dest: Path) -> list[str]:
    """Check every member of the tar ``archive`` for extraction into ``dest`` (not created here).

    Returns:
        The top-level names of the archive.

    Raises:
        HostileArchiveError: naming the first offending member and why.
    """
    tops: list[str] = []
    links: set[str] = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = member.name
            if _lexical_escape(name):
                raise HostileArchiveError(f"{archive.name}: member {name!r} points outside the target folder; nothing was extracted")
            parts = PurePosixPath(name).parts
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in links:
                    raise HostileArchiveError(
                        f"{archive.name}: member {name!r} goes through the symbolic link {'/'.join(parts[:i])!r}; nothing was extracted"
                    )
            if (member.issym() or member.islnk()) and _link_escapes(name if member.issym() else "", member.linkname):
                raise HostileArchiveError(
                    f"{archive.name}: link {name!r} -> {member.linkname!r} points outside the target folder; nothing was extracted"
                )
            try:
                tarfile.data_filter(member, str(dest))
            except tarfile.FilterError as e:
                raise HostileArchiveError(f"{archive.name}: member {name!r} refused ({e}); nothing was extracted") from None
            if member.issym() or member.islnk():
                links.add(posixpath.normpath(name))
            top = parts[0] if parts else ""
            if top and top != "." and top not in tops:
                tops.append(top)
    return tops


def check_zip(archive: Path) -> list[str]:
    """Check every member of the zip ``archive``; returns its top-level names.

    Raises:
        HostileArchiveError: naming the first offending member and why.
    """
    tops: list[str] = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if _lexical_escape(name):
                raise HostileArchiveError(f"{archive.name}: member {name!r} points outside the target folder; nothing was extracted")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                where = "points outside the target folder" if _link_escapes(name, target) else "is a symbolic link (not extracted from zip archives)"
                raise HostileArchiveError(f"{archive.name}: member {name!r} -> {target!r} {where}; nothing was extracted")
            top = name.replace("\\", "/").split("/", 1)[0]
            if top and top not in tops:
                tops.append(top)
    return tops


def archive_format(archive: Path) -> str:
    """"zip" or "tar" (by content, not by name)."""
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise FetchError(f"{archive}: neither a zip nor a tar archive")


def check_archive(archive: Path, dest: Path) -> list[str]:
    """Check ``archive`` (zip or tar) for extraction into ``dest``; returns its top-level names."""
    return check_zip(archive) if archive_format(archive) == "zip" else check_tar(archive, dest)


def extract(archive: Path, dest: Path) -> None:
    """Extract the already checked ``archive`` into the existing folder ``dest``."""
    if archive_format(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")


def tree_stats(folder: Path, skip: str = "") -> tuple[int, int]:
    """(number of files, total bytes) below ``folder``, not counting a top-level file named ``skip``."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for fn in filenames:
            if dirpath == str(folder) and fn == skip:
                continue
            files += 1
            size += os.lstat(os.path.join(dirpath, fn)).st_size
    return files, size
