"""The one reader and the one writer of the files a user names.

Reading (:func:`read_bytes`, :func:`read_text`): every input file -- a ``.cmx`` file and its
imports, expert loads, plans -- is checked with ``os.stat`` before it is opened: only a
regular file is read (a FIFO, a device, a directory or a socket is ``E031``), and only up to
:func:`max_input_bytes` (``E030``: 1 MiB for a ``.cmx`` source, 64 MiB for a data file,
loads or a plan; ``CMX_MAX_INPUT_BYTES`` sets both).  The file is opened non-blocking, so
a FIFO swapped in after the check cannot hang the reader, and checked again on the open
descriptor.  Text that is not UTF-8 is reported at
the line and column of the first bad byte.  A file that cannot be opened is reported with
the caller's code (``E011`` for sources, ``E021`` for loads, ``E024`` for plans).

Writing (:func:`write_outputs`): all outputs of a command are written together or not at all.
Each is staged in a temporary file next to its target and renamed over it only once every
output is staged (and standard output written); a failed rename puts back the files already
replaced.  A symlink is followed and its target replaced.  An output that is one of the
inputs or another output is an :class:`OutputConflict` (a usage error); one that exists and
is not a regular file is ``E031`` (``-`` is standard output, the only stream allowed); a
failed write (no such folder, no space, a closed pipe) is ``E032``.

An output of several files (a :class:`FileTree`, e.g. per-rank workload traces) is a
directory: it is staged as a temporary directory and takes the target's place with the other
outputs.  An existing directory is replaced only if cmx wrote it (it lists its files in
:data:`MANIFEST`); any other directory is ``E031`` and left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "DEFAULT_MAX_SOURCE_BYTES",
    "MANIFEST",
    "MAX_INPUT_BYTES_ENV",
    "FileTree",
    "Output",
    "OutputConflict",
    "check_outputs",
    "max_input_bytes",
    "read_bytes",
    "read_text",
    "write_atomic",
    "write_outputs",
]

#: The environment variable that sets the size limit of every input file, in bytes.
MAX_INPUT_BYTES_ENV = "CMX_MAX_INPUT_BYTES"
#: The size limit of a ``.cmx`` source when ``CMX_MAX_INPUT_BYTES`` is not set: 200 times
#: the largest shipped machine (5 KB); 1 MiB of statements takes over a minute to check.
DEFAULT_MAX_SOURCE_BYTES = 1024 * 1024
#: The size limit of a data file (expert loads, a plan) when ``CMX_MAX_INPUT_BYTES`` is not
#: set: a plan of CloudMatrix384 is about 4.5 MB.
DEFAULT_MAX_DATA_BYTES = 64 * 1024 * 1024

_CHUNK = 1 << 20
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _error(code: str, message: str, at: Span | None = None) -> CmxError:
    return CmxError([Diagnostic(code, message, at)])


def _kind(mode: int) -> str | None:
    """What a file of ``mode`` is when it is not a regular file (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def max_input_bytes(source: bool = False) -> int:
    """The size limit of an input file: ``CMX_MAX_INPUT_BYTES`` if set, else
    :data:`DEFAULT_MAX_SOURCE_BYTES` for a ``source`` and :data:`DEFAULT_MAX_DATA_BYTES` for
    a data file.

    Raises :class:`CmxError` (``E030``) when the variable is not a positive whole number.
    """
    raw = os.environ.get(MAX_INPUT_BYTES_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_SOURCE_BYTES if source else DEFAULT_MAX_DATA_BYTES
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 18:
        raise _error("E030", f"{MAX_INPUT_BYTES_ENV}={os.environ[MAX_INPUT_BYTES_ENV]!r}: "
                     "give the limit in bytes, a whole number >= 1")
    return int(raw)


def _too_large(name: str, size: str, limit: int, at: Span | None) -> CmxError:
    return _error("E030", f"'{name}' is {size}; the limit for an input file is {_mib(limit)} "
                  f"(raise it with {MAX_INPUT_BYTES_ENV}=BYTES)", at)


def read_bytes(path: str | Path, code: str, at: Span | None = None, *,
               shown: str | None = None, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (default
    :func:`max_input_bytes` of a data file) of them.

    Raises :class:`CmxError`: ``E031`` if ``path`` is not a regular file, ``E030`` if it is
    larger than the limit, ``code`` if it cannot be opened or read.  ``at`` locates the
    diagnostic (an ``import``), ``shown`` is the name it gives (default ``path``).
    """
    name = shown or str(path)
    cap = max_input_bytes() if limit is None else limit
    try:
        _check_kind(os.stat(path).st_mode, name, at)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        raise _error(code, f"cannot read '{name}': {_reason(err)}", at) from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        _check_kind(st.st_mode, name, at)  # the file may have been swapped since the stat
        if st.st_size > cap:
            raise _too_large(name, _mib(st.st_size), cap, at)
        chunks: list[bytes] = []
        total = 0
        try:
            while total <= cap and (chunk := f.read(min(_CHUNK, cap + 1 - total))):
                chunks.append(chunk)
                total += len(chunk)
        except OSError as err:
            raise _error(code, f"cannot read '{name}': {_reason(err)}", at) from None
    if total > cap:  # the file grew while it was read
        raise _too_large(name, f"more than {_mib(cap)}", cap, at)
    return b"".join(chunks)


def _check_kind(mode: int, name: str, at: Span | None) -> None:
    if (kind := _kind(mode)) is not None:
        raise _error("E031", f"'{name}' is {kind}; cmx reads only regular files", at)


def _reason(err: OSError | ValueError) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or str(err)


def read_text(path: str | Path, code: str, at: Span | None = None, *,
              shown: str | None = None, limit: int | None = None) -> SourceText:
    """The UTF-8 text of the regular file ``path`` as a :class:`SourceText` named ``shown``
    (default ``path``), read by :func:`read_bytes` (same errors).

    Text that is not UTF-8 is ``code``, located at the line and column of the first bad
    byte (the line shown with the bad bytes replaced).
    """
    name = shown or str(path)
    data = read_bytes(path, code, at, shown=name, limit=limit)
    try:
        return SourceText(name, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        col = len(data[start:err.start].decode("utf-8", "replace")) + 1
        shown_text = SourceText(name, data.decode("utf-8", "replace"))
        raise _error(code, f"'{name}' is not UTF-8 text: byte 0x{data[err.start]:02x} at "
                     f"line {line}, column {col}",
                     Span(shown_text, line, col, line, col + 1)) from None


# ---- writing -----------------------------------------------------------------------------

#: The file a :class:`FileTree` directory lists its files in; only a directory holding it
#: is ever replaced.
MANIFEST = "cmx-files.txt"


@dataclass(frozen=True)
class FileTree:
    """An output of several files, written as one directory: name (no folders) -> content."""

    files: Mapping[str, bytes]

    def __post_init__(self) -> None:
        bad = [n for n in self.files if not n or "/" in n or n.startswith(".") or n == MANIFEST]
        if bad:
            raise ValueError(f"bad file name in a FileTree: {bad[0]!r}")


@dataclass(frozen=True, slots=True)
class Output:
    """One output of a command: ``path`` (``-`` for standard output) and its ``data``
    (text is written as UTF-8; a :class:`FileTree` as a directory)."""

    path: str | Path
    data: str | bytes | FileTree

    @property
    def payload(self) -> bytes:
        """The bytes to write (not for a :class:`FileTree`)."""
        if isinstance(self.data, FileTree):
            raise TypeError("a FileTree has no single payload")
        return self.data.encode("utf-8") if isinstance(self.data, str) else self.data


class OutputConflict(ValueError):
    """An output path that is also an input, or given for two outputs (a usage error)."""


def _is_stdout(path: str | Path) -> bool:
    return str(path) == "-"


def _identity(path: str | Path) -> tuple[str, tuple[int, int] | None]:
    """The real path of ``path`` (symlinks followed) and its (device, inode) if it exists."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        return real, None
    return real, (st.st_dev, st.st_ino)


def check_outputs(paths: Sequence[str | Path], inputs: Iterable[str | Path] = ()) -> None:
    """Check that ``paths`` can be written: before a command runs and again before it writes.

    Raises :class:`OutputConflict` when an output is one of ``inputs`` or appears twice
    (standard output ``-`` included), :class:`CmxError` ``E031`` when an output exists and
    is not a regular file (after symlinks), ``E032`` when its folder does not exist.
    """
    seen: dict[object, str] = {}
    if sum(1 for p in paths if _is_stdout(p)) > 1:
        raise OutputConflict("two outputs would both go to standard output ('-')")
    known: dict[object, str] = {}
    for p in inputs:
        real, ident = _identity(p)
        known[real] = str(p)
        if ident is not None:
            known[ident] = str(p)
    diags: list[Diagnostic] = []
    for p in paths:
        if _is_stdout(p):
            continue
        real, ident = _identity(p)
        for key in (real, ident):
            if key is None:
                continue
            if key in known:
                raise OutputConflict(f"the output '{p}' is the input '{known[key]}'; write "
                                     "the output somewhere else")
            if key in seen:
                raise OutputConflict(f"'{p}' is given for two outputs (the other one is "
                                     f"'{seen[key]}')")
        seen[real] = str(p)
        if ident is not None:
            seen[ident] = str(p)
        if (d := _target_problem(p, real)) is not None:
            diags.append(d)
    if diags:
        raise CmxError(diags)


def _target_problem(path: str | Path, real: str) -> Diagnostic | None:
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        folder = os.path.dirname(real) or "."
        if not os.path.isdir(folder):
            return Diagnostic("E032", f"cannot write '{path}': the folder '{folder}' does not "
                              "exist")
        return None
    except (OSError, ValueError) as err:
        return Diagnostic("E032", f"cannot write '{path}': {_reason(err)}")
    if stat.S_ISDIR(mode):
        if os.path.isfile(os.path.join(real, MANIFEST)):
            return None  # a FileTree cmx wrote: replaced whole (a file output fails at rename)
        return Diagnostic("E031", f"'{path}' is a directory cmx did not write (it has no "
                          f"{MANIFEST}); cmx replaces only files and directories it wrote")
    if (kind := _kind(mode)) is not None:
        return Diagnostic("E031", f"'{path}' is {kind}; cmx writes only regular files "
                          "(use -o - for standard output)")
    return None


@dataclass(frozen=True, slots=True)
class _Staged:
    output: Output
    target: str
    tmp: str


def _usual_mode(base: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def _stage_tree(out: Output, tree: FileTree) -> _Staged:
    """Write ``tree`` into a temporary directory next to its target, with its manifest."""
    target = os.path.realpath(out.path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                           dir=os.path.dirname(target) or ".")
    try:
        for name in sorted(tree.files):
            Path(tmp, name).write_bytes(tree.files[name])
        Path(tmp, MANIFEST).write_text("".join(f"{n}\n" for n in sorted(tree.files)),
                                       encoding="utf-8")
        os.chmod(tmp, _usual_mode(0o777))  # mkdtemp creates 0700
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _Staged(out, target, tmp)


def _stage(out: Output) -> _Staged:
    """Write ``out`` to a temporary file in its target's folder, with the target's mode (or
    the usual 0666 & ~umask for a new file)."""
    if isinstance(out.data, FileTree):
        return _stage_tree(out, out.data)
    target = os.path.realpath(out.path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                               dir=os.path.dirname(target) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(out.payload)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = _usual_mode(0o666)
        os.chmod(tmp, mode)  # mkstemp creates 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _Staged(out, target, tmp)


def _discard(path: str) -> None:
    """Remove a staged file or directory, or a backup, if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def _backup(s: _Staged) -> str | None:
    """Keep the current target of ``s`` aside: a hard link to a file (the target stays in
    place until the atomic rename), or the directory itself moved away (a directory cannot
    be renamed over a non-empty one)."""
    backup = f"{s.tmp}.bak"
    if isinstance(s.output.data, FileTree):
        os.replace(s.target, backup)
        return backup
    try:
        os.link(s.target, backup)
    except OSError:
        return None
    return backup


def _restore(s: _Staged, existed: bool, backup: str | None) -> None:
    """Undo the rename of ``s``: put its backup back, or remove a target that is new."""
    with contextlib.suppress(OSError):
        if isinstance(s.output.data, FileTree) or (backup is None and not existed):
            _discard(s.target)
        if backup is not None:
            os.replace(backup, s.target)


def _commit(staged: Sequence[_Staged]) -> None:
    """Rename every staged file (or directory) over its target; if one rename fails, put
    back the targets already replaced (a new one is removed) and raise."""
    done: list[tuple[_Staged, bool, str | None]] = []
    try:
        for s in staged:
            existed = os.path.lexists(s.target)
            backup = _backup(s) if existed else None
            try:
                os.replace(s.tmp, s.target)
            except BaseException:
                _restore(s, existed, backup)
                raise
            done.append((s, existed, backup))
    except BaseException:
        for s, existed, backup in reversed(done):
            _restore(s, existed, backup)
        raise
    finally:
        for _, _, backup in done:
            if backup is not None and os.path.lexists(backup):
                _discard(backup)


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_outputs(outputs: Sequence[Output], inputs: Iterable[str | Path] = ()) -> None:
    """Write every output of a command, all or none (see the module's description).

    Raises :class:`OutputConflict` or :class:`CmxError` (``E031``, ``E032``) as
    :func:`check_outputs`, ``E032`` for a :class:`FileTree` given standard output (a
    directory has no single stream), and ``E032`` when a write fails; then no output file
    has changed (standard output, written last before the renames, may hold part of its
    data).
    """
    for out in outputs:
        if _is_stdout(out.path) and isinstance(out.data, FileTree):
            raise _error("E032", f"cannot write a directory of {len(out.data.files)} files to "
                         "standard output; give -o DIR")
    check_outputs([o.path for o in outputs], inputs)
    staged: list[_Staged] = []
    current: Output | None = None
    try:
        for out in outputs:
            if not _is_stdout(out.path):
                current = out
                staged.append(_stage(out))
        for out in outputs:
            if _is_stdout(out.path):
                current = out
                _write_stdout(out.payload)
        current = None
        _commit(staged)
    except OSError as err:
        where = "standard output" if current is not None and _is_stdout(current.path) else (
            f"'{current.path}'" if current is not None else "the outputs")
        raise _error("E032", f"cannot write {where}: {_reason(err)}; no output file was "
                     "changed") from None
    finally:
        for s in staged:
            _discard(s.tmp)


def write_atomic(path: str | Path, data: str | bytes | FileTree) -> None:
    """Write one output (:func:`write_outputs` of one :class:`Output`)."""
    write_outputs([Output(path, data)])
