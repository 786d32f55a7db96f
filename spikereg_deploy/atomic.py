"""Outputs that appear whole or not at all: one file (`atomic_file`) or one folder of files (`atomic_folder`).

A run that fails (a bug, Ctrl-C, a full disk) must leave the previous outputs as they were and no half-written file
under a final name. Everything is staged beside its destination, on the same filesystem, so the last step is a
rename (atomic) instead of a copy (`shutil.move` across filesystems is not). Files get the mode any new file gets
(0o666 & ~umask), not `mkstemp`'s 0600. An OSError (disk full, no permission, read-only filesystem) ends as one line
naming the destination and the reason.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import SpikeRegError

__all__ = ["OutputError", "atomic_file", "atomic_files", "atomic_folder", "check_output_path", "json_text",
           "write_json"]

PathLike = str | os.PathLike[str]
_RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths in one step
_AT_FDCWD = -100


class OutputError(SpikeRegError):
    """An output that could not be written: the OS reason, and the destination the user named."""


def _output_error(err: OSError, destination: Path) -> OutputError:
    reason = err.strerror or str(err) or type(err).__name__
    return OutputError(f"cannot write output ({reason})", destination)


def check_output_path(path: PathLike, *, folder: bool) -> None:
    """Refuse, before any work is done, an output that cannot be written: a folder where a file is to go (or the
    reverse), a path under a regular file, a folder we may not write or on a read-only filesystem. The write
    itself still reports what only it can find (a full disk); this only saves the user a wasted run."""
    target = Path(path)
    if target.is_dir() and not folder:
        raise OutputError("output is a folder; give the file to write", target)
    if target.exists() and not target.is_dir() and folder:
        raise OutputError("output exists and is not a folder", target)
    existing = Path(os.path.abspath(target)).parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write output ({existing} is a file, not a folder)", target)
    # a folder output that exists may be filled in place when its parent is not writable (atomic_folder)
    receivers = [existing, target] if folder and target.is_dir() else [existing]
    if not any(os.access(p, os.W_OK | os.X_OK) for p in receivers):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        code = errno.EROFS if read_only else errno.EACCES
        raise OutputError(f"cannot write output ({os.strerror(code)}: {existing})", target)


def _hidden_sibling(folder: Path, name: str, tag: str) -> Path:
    return folder / f".{name}.{secrets.token_hex(4)}{tag}"


def _fsync_path(path: Path) -> None:
    """Flush a file's data (or a folder's entries) to disk before a rename makes it visible."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a new empty file beside `path` (named `.NAME.XXXXXXXX` + `suffix`, so writers that pick a format by
    extension still do); if the block succeeds it is flushed and renamed onto `path`, else removed."""
    with _staged_file(Path(path), suffix) as (tmp, flush):
        yield tmp
        flush()


@contextlib.contextmanager
def _staged_file(target: Path, suffix: str) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A hidden sibling of `target` and its flush; renamed onto `target` when the block ends without an error.

    The flush is separate so several files can all be flushed (where a full disk shows) before any is renamed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = _hidden_sibling(target.parent, target.name, suffix or ".tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
                break
            except FileExistsError:
                continue
    except OSError as err:
        raise _output_error(err, target) from None

    def flush() -> None:
        try:
            _fsync_path(tmp)
        except OSError as err:
            raise _output_error(err, target) from None

    try:
        yield tmp, flush
        os.replace(tmp, target)
        _fsync_path(target.parent)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise _output_error(err, target) from None
        raise


@contextlib.contextmanager
def atomic_files(*paths: tuple[PathLike, str]) -> Iterator[list[Path]]:
    """Several sibling outputs (`(path, suffix)` each) that appear together: every staged file is flushed before
    the first rename, so a full disk (found at the flush) leaves all the old files, not a mix of old and new."""
    with contextlib.ExitStack() as stack:
        staged = [stack.enter_context(_staged_file(Path(path), suffix)) for path, suffix in paths]
        yield [tmp for tmp, _flush in staged]
        for _tmp, flush in staged:
            flush()


@contextlib.contextmanager
def atomic_folder(dest: PathLike) -> Iterator[Path]:
    """Yield an empty stage folder; if the block succeeds its files replace `dest`'s in one step.

    The stage is a hidden sibling of `dest`. On success every staged file is flushed, the entries of an existing
    `dest` that the block did not write are carried into the stage (hard links, copies where links are refused), and
    the stage and `dest` swap places in one rename, so a reader sees the old complete folder or the new complete
    one. On failure the stage is removed and `dest` is untouched. Where a folder cannot be swapped (the current
    folder or one above it, a mount point, a parent folder we may not write) the staged files are renamed into
    `dest` one by one instead: each file still appears whole, but not all at the same moment.
    """
    named = Path(dest)
    if named.exists() and not named.is_dir():
        raise SpikeRegError("output exists and is not a folder", named)
    dest = Path(os.path.realpath(named))  # a link to a folder: stage beside the folder, keep the link
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        in_place = dest.is_dir() and not _swappable(dest)
        stage = _hidden_sibling(dest if in_place else dest.parent, dest.name, ".stage")
        os.mkdir(stage, 0o777)  # the umask applies
    except OSError as err:
        raise _output_error(err, named) from None
    try:
        yield stage
        for folder, _dirs, files in os.walk(stage):
            for name in files:
                _fsync_path(Path(folder) / name)
        if in_place:
            _move_entries(stage, dest)
        else:
            _swap_into_place(stage, dest)
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, OSError):
            raise _output_error(err, named) from None
        if isinstance(err, OutputError) and err.path and stage in Path(err.path).parents:
            # a file written inside the stage: name it where the user will look for it, not in the hidden stage
            raise OutputError(err.message, named / Path(err.path).relative_to(stage)) from None
        raise
    else:
        shutil.rmtree(stage, ignore_errors=True)  # the old folder, after a swap; the empty stage in place


def _swappable(dest: Path) -> bool:
    """Whether `dest` may be renamed: not a mount point, not holding our working folder, its parent writable."""
    cwd = Path.cwd().resolve()
    holds_cwd = cwd == dest or dest in cwd.parents
    return not (holds_cwd or os.path.ismount(dest) or not os.access(dest.parent, os.W_OK))


def _swap_into_place(stage: Path, dest: Path) -> None:
    """Make `stage` be `dest`; afterwards `stage` names the old folder (or nothing), for the caller to remove."""
    try:
        os.rename(stage, dest)  # no folder there yet: a plain rename is the whole swap
    except OSError as err:
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        _carry_over(dest, stage)
        os.chmod(stage, stat.S_IMODE(dest.stat().st_mode))
        _fsync_path(stage)
        _exchange(stage, dest)
    _fsync_path(dest.parent)


def _carry_over(old: Path, new: Path) -> None:
    """Put into `new` every entry of `old` that `new` lacks (folders merged), so the swap keeps unrelated files."""
    for entry in os.scandir(old):
        src, dst = Path(entry.path), new / entry.name
        if entry.is_dir(follow_symlinks=False):
            if not dst.exists():
                os.mkdir(dst)
                shutil.copystat(src, dst)
            if dst.is_dir() and not dst.is_symlink():
                _carry_over(src, dst)
        elif not os.path.lexists(dst):
            if entry.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            try:
                os.link(src, dst)
            except OSError:  # links refused (fs.protected_hardlinks, a filesystem without them): copy
                shutil.copy2(src, dst)


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders: renameat2(RENAME_EXCHANGE) where Linux offers it, else two renames (a brief gap)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(b))
    parked = _hidden_sibling(b.parent, b.name, ".old")
    os.rename(b, parked)
    try:
        os.rename(a, b)
    except OSError:
        os.rename(parked, b)
        raise
    os.rename(parked, a)


def _move_entries(stage: Path, dest: Path) -> None:
    """Rename each staged file onto its place in `dest` (folders created as needed)."""
    for folder, _dirs, files in os.walk(stage):
        target = dest / Path(folder).relative_to(stage)
        target.mkdir(exist_ok=True)
        for name in files:
            os.replace(Path(folder) / name, target / name)
    _fsync_path(dest)


def _finite_or_null(value: Any, field: str, null_non_finite: bool) -> Any:
    """A copy where every non-finite float is None (JSON `null`), or a ValueError naming the first one's field."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v, f"{field}.{k}" if field else str(k), null_non_finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v, f"{field}[{i}]", null_non_finite) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        if null_non_finite:
            return None
        raise ValueError(f"refusing to write {value} at {field!r}: JSON has no NaN or Infinity")
    return value


def json_text(data: Any, *, compact: bool = False, null_non_finite: bool = False) -> str:
    """The one JSON writer of every output: never a NaN or Infinity token (invalid JSON that other readers choke
    on). A count or energy that is not finite is a bug, so it raises, naming the field; documents where a metric
    may be undefined (Dice of a label absent from a pair, as in Learn2Reg) pass `null_non_finite` to write null."""
    clean = _finite_or_null(data, "", null_non_finite)
    if compact:
        return json.dumps(clean, separators=(",", ":"), allow_nan=False) + "\n"
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def write_json(path: PathLike, data: Any, *, compact: bool = False, null_non_finite: bool = False) -> None:
    """`json_text` written atomically to `path` (see `atomic_file`)."""
    text = json_text(data, compact=compact, null_non_finite=null_non_finite)
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(text, encoding="utf-8")
