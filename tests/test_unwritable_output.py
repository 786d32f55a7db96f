"""An output that cannot be written, in every tool: exit 2, one error line naming the path and the reason, no
traceback, nothing changed where the output was to go.

The suite runs as root, for whom folder permissions do not apply and a filesystem cannot be remounted read-only, so
those two are faked at the OS calls: `os.access` saying no (what a non-root user sees on a chmod-ed folder), and
`os.open` / `os.mkdir` raising EROFS for anything created under the folder (a read-only filesystem found only when
the tool writes).
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from spikereg_deploy.cli import energy_cli, evaluate_cli, export_cli, map_cli, run_cli, simulate_cli, train_cli

SHAPE = ["--input-shape", "16", "16", "16"]
TOOLS = ["export", "simulate", "map", "energy", "evaluate", "train", "run"]


def _invocation(tool: str, net: Path, output: Path) -> tuple[Callable[[list[str]], int], list[str]]:
    """A tool's main and small, fast arguments writing to `output` (a file or a folder, as the tool wants)."""
    return {
        "export": (export_cli.main, ["-o", str(output / "m.net"), *SHAPE]),
        "simulate": (simulate_cli.main, [str(net), "--engine", "reference", "-o", str(output / "sim")]),
        "map": (map_cli.main, [str(net), *SHAPE, "-o", str(output / "mapping.json")]),
        "energy": (energy_cli.main, ["--net", str(net), "--engine", "reference", "-o", str(output / "energy")]),
        "evaluate": (evaluate_cli.main, [str(net), "--pairs", "1", *SHAPE, "-o", str(output / "eval")]),
        "train": (train_cli.main, ["--steps", "1", "-o", str(output / "a.pt")]),
        "run": (run_cli.main, ["--engine", "reference", *SHAPE, "-o", str(output / "run")]),
    }[tool]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): b"<dir>" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("tool", TOOLS)
def test_output_under_a_regular_file(tool, tmp_path, small_net, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    main, args = _invocation(tool, small_net, blocker)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # refused before any work: no progress line first
    assert f"({blocker} is a file, not a folder)" in err[0] and "Traceback" not in err[0]
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_folder_without_write_permission_is_refused_before_work(tool, tmp_path, small_net, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if Path(os.path.abspath(path)) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    main, args = _invocation(tool, small_net, locked)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].endswith(f"cannot write output (Permission denied: {locked})")
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_read_only_filesystem_found_at_the_write(tool, tmp_path, small_net, capsys, monkeypatch):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    (read_only / "old.txt").write_text("kept\n")
    real_open, real_mkdir = os.open, os.mkdir

    def under(path: object) -> bool:
        return read_only in Path(os.path.abspath(os.fsdecode(path))).parents

    def fake_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    main, args = _invocation(tool, small_net, read_only)
    assert main(args) == 2
    monkeypatch.undo()
    line = _one_error_line(capsys, "cannot write output (Read-only file system)")
    assert str(read_only) in line
    assert snapshot(read_only) == {"old.txt": b"kept\n"}


def test_export_to_an_existing_folder(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert export_cli.main(["-o", str(tmp_path / "out"), *SHAPE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spikereg-export: error: {tmp_path / 'out'}: output is a folder; give the file to write"] or \
        (len(err) == 1 and err[0].endswith(f"{tmp_path / 'out'}: output is a folder; give the file to write"))
    assert list((tmp_path / "out").iterdir()) == []


def test_check_of_an_unreadable_file(tmp_path, small_net, capsys, monkeypatch):
    """chmod 000 stops a normal user; root reads anyway, so there `os.access` is made to say what it would."""
    locked = tmp_path / "locked.net"
    locked.write_bytes(small_net.read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == locked else real_access(p, m, **kw))
        monkeypatch.setattr("h5py.File", _permission_denied)
    assert export_cli.main(["--check", str(locked)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"{locked}: cannot read the file (Permission denied)"), err


def _permission_denied(name: object, *args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EACCES, "Unable to synchronously open file (Permission denied)", str(name))
