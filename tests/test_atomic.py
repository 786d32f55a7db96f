"""Atomic outputs: normal file modes, and a failure anywhere leaves the previous outputs byte-identical."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from spikereg_deploy import atomic
from spikereg_deploy.atomic import OutputError, atomic_file, atomic_folder
from spikereg_deploy.errors import SpikeRegError


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry under `folder` (hidden ones too) with its bytes; folders map to b"<dir>"."""
    out = {}
    for path in sorted(folder.rglob("*")):
        out[str(path.relative_to(folder))] = b"<dir>" if path.is_dir() else path.read_bytes()
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


@pytest.fixture
def previous(tmp_path) -> Path:
    """An output folder from an earlier run, with a file of the user's beside it."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.json").write_text("old a\n")
    (out / "sub" / "b.csv").write_text("old b\n")
    (out / "notes.txt").write_text("the user's own file\n")
    return out


def test_file_mode_follows_umask(tmp_path, umask_027):
    with atomic_file(tmp_path / "x.json", suffix=".json") as tmp:
        assert tmp.suffix == ".json" and tmp.parent == tmp_path and tmp.name.startswith(".x.json.")
        tmp.write_text("{}")
    assert mode(tmp_path / "x.json") == 0o666 & ~0o027
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_folder_modes_follow_umask(tmp_path, umask_027):
    with atomic_folder(tmp_path / "new" / "out") as stage:
        (stage / "r.txt").write_text("r")
    assert mode(tmp_path / "new" / "out") == 0o777 & ~0o027
    assert mode(tmp_path / "new" / "out" / "r.txt") == 0o666 & ~0o027


def test_file_failure_keeps_old_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.net"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert snapshot(tmp_path) == {"m.net": b"old"}


def test_folder_swap_replaces_outputs_and_keeps_other_files(previous):
    with atomic_folder(previous) as stage:
        assert stage.parent == previous.parent and stage.name.startswith(".out.")
        (stage / "a.json").write_text("new a\n")
        (stage / "sub").mkdir()
        (stage / "sub" / "c.png").write_bytes(b"png")
    assert snapshot(previous) == {"a.json": b"new a\n", "notes.txt": b"the user's own file\n", "sub": b"<dir>",
                                  "sub/b.csv": b"old b\n", "sub/c.png": b"png"}
    assert sorted(p.name for p in previous.parent.iterdir()) == ["out"]  # no stage, no parked old folder


def test_folder_raise_inside_block_leaves_previous_identical(previous):
    before = snapshot(previous)
    with pytest.raises(KeyError), atomic_folder(previous) as stage:
        (stage / "a.json").write_text("new a\n")
        raise KeyError("bug after the first file")
    assert snapshot(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir()) == ["out"]


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_folder_enospc_at_nth_flush_leaves_previous_identical(previous, monkeypatch, failing_call):
    """A full disk shows up when data is flushed: the Nth fsync fails, the old folder is untouched."""
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == failing_call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    before = snapshot(previous)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(OutputError) as err, atomic_folder(previous) as stage:
        for name in ("a.json", "x.csv", "y.png"):
            (stage / name).write_text("new\n")
    assert str(err.value) == f"{os.path.realpath(previous)}: cannot write output (No space left on device)"
    assert isinstance(err.value, SpikeRegError)
    assert snapshot(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir()) == ["out"]


def test_folder_enospc_at_nth_write_leaves_previous_identical(previous, monkeypatch):
    real_write, calls = Path.write_text, []

    def write_text(self: Path, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, *args, **kwargs)

    before = snapshot(previous)
    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OutputError, match="No space left"), atomic_folder(previous) as stage:
        (stage / "a.json").write_text("new a\n")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.csv").write_text("new b\n")
    monkeypatch.undo()
    assert snapshot(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir()) == ["out"]


def test_unwritable_destination_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as err, atomic_file(blocker / "x.json") as tmp:
        tmp.write_text("{}")
    text = str(err.value)
    assert text.startswith(f"{blocker / 'x.json'}: cannot write output (File exists") and "\n" not in text


def test_read_only_filesystem_at_rename_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def replace(src: object, dst: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OutputError, match="Read-only file system"), atomic_file(target) as tmp:
        tmp.write_text("new")
    assert snapshot(tmp_path) == {"r.json": b"old"}


def test_folder_that_holds_the_working_folder_is_filled_in_place(previous, monkeypatch):
    monkeypatch.chdir(previous)
    inode = previous.stat().st_ino
    with atomic_folder(".") as stage:
        assert stage.parent == previous.resolve()
        (stage / "a.json").write_text("new a\n")
    assert previous.stat().st_ino == inode  # not swapped: the working folder stays the same folder
    assert snapshot(previous) == {"a.json": b"new a\n", "notes.txt": b"the user's own file\n", "sub": b"<dir>",
                                  "sub/b.csv": b"old b\n"}


def test_folder_through_a_link_keeps_the_link(previous):
    link = previous.parent / "link"
    link.symlink_to(previous)
    with atomic_folder(link) as stage:
        (stage / "a.json").write_text("via link\n")
    assert link.is_symlink() and (previous / "a.json").read_text() == "via link\n"


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(SpikeRegError, match="not a folder"), atomic_folder(tmp_path / "out"):
        pass
