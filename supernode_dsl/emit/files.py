"""Writing outputs atomically: a failure never leaves a half-written or truncated file.

A single output is written with :func:`write_atomic`; an output of several files (a
:class:`FileTree`, e.g. per-rank workload traces) with :func:`write_tree_atomic`: all of
them or none."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MANIFEST", "FileTree", "write_atomic", "write_tree_atomic"]

#: The file a :class:`FileTree` directory lists its files in; only a directory holding it
#: is ever replaced.
MANIFEST = "cmx-files.txt"


@dataclass(frozen=True)
class FileTree:
    """An output of several files: relative name (no folders) -> content."""

    files: Mapping[str, bytes]

    def __post_init__(self) -> None:
        bad = [n for n in self.files if not n or "/" in n or n.startswith(".") or n == MANIFEST]
        if bad:
            raise ValueError(f"bad file name in a FileTree: {bad[0]!r}")


def _umask_mode(path: str, mode: int) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` via a temporary file in the same folder
    and a rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        _umask_mode(tmp, 0o666)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree_atomic(path: str | Path, tree: FileTree) -> None:
    """Write ``tree`` as the directory ``path``: every file goes into a temporary directory
    next to it, which then takes the place of ``path``.  An existing ``path`` is replaced
    only if it is a directory this function wrote (it holds :data:`MANIFEST`); anything
    else raises :class:`FileExistsError` and is left alone.  On any failure the old
    directory (if any) stays as it was."""
    target = Path(path)
    if target.exists() and not (target.is_dir() and (target / MANIFEST).is_file()):
        raise FileExistsError(f"'{target}' exists and is not a directory cmx wrote "
                              f"(no {MANIFEST}); remove it or choose another -o")
    parent = target.parent if str(target.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    old = tmp.with_name(tmp.name.removesuffix(".tmp") + ".old")
    try:
        for name in sorted(tree.files):
            (tmp / name).write_bytes(tree.files[name])
        (tmp / MANIFEST).write_text("".join(f"{n}\n" for n in sorted(tree.files)),
                                    encoding="utf-8")
        _umask_mode(str(tmp), 0o777)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.replace(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
