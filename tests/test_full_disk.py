"""A full disk during any tool's second run: exit 2, one line naming the output and "No space left on device", the
first run's outputs byte for byte, and no stage folder or temporary file left beside them.

The fake disk fills at the Nth `fsync` of the atomic writer: every output file of every tool is flushed there
before a rename makes it visible, and that flush is where a real full disk (delayed allocation) reports ENOSPC.
Each tool is tried with the disk filling at its first and at its last flush, so both "nothing written yet" and
"all but the last file staged" are covered.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from spikereg_deploy import atomic
from spikereg_deploy.cli import energy_cli, evaluate_cli, export_cli, map_cli, run_cli, simulate_cli, train_cli

SHAPE = ["--input-shape", "16", "16", "16"]
SMALL_MODEL = "[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\ntime_steps = 3\n"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every entry under `root` (hidden ones too) with its bytes; folders map to b"<dir>"."""
    return {str(p.relative_to(root)): b"<dir>" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


class FullDisk:
    """`os.fsync` as the atomic writer sees it: counts the flushes of files (not of folders' entries), and from
    file flush `fail_at` on raises ENOSPC, as a disk that filled up while the data was written."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.calls = fail_at, 0
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            self._real(fd)
            return
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._real(fd)


def _tools(tmp_path: Path, small_net: Path) -> dict[str, tuple[Callable[[list[str]], int], list[str], Path]]:
    """Per tool: its main, its arguments (small and fast), and the output it writes (file or folder)."""
    sim = tmp_path / "given" / "sim"
    cfg = tmp_path / "given" / "ann.toml"
    return {
        "export": (export_cli.main, ["-o", str(tmp_path / "out" / "m.net"), *SHAPE], tmp_path / "out" / "m.net"),
        "simulate": (simulate_cli.main, [str(small_net), "--engine", "reference", "-o", str(tmp_path / "out")],
                     tmp_path / "out"),
        "map": (map_cli.main, [str(small_net), *SHAPE, "-o", str(tmp_path / "out" / "mapping.json")],
                tmp_path / "out" / "mapping.json"),
        "energy": (energy_cli.main, [str(sim / "report.json"), "--net", str(small_net), "-o", str(tmp_path / "out")],
                   tmp_path / "out"),
        "evaluate": (evaluate_cli.main, [str(small_net), "--pairs", "1", *SHAPE, "-o", str(tmp_path / "out")],
                     tmp_path / "out"),
        "train": (train_cli.main, ["--config", str(cfg), "-o", str(tmp_path / "out" / "a.pt")],
                  tmp_path / "out" / "a.pt"),
        "run": (run_cli.main, ["--engine", "reference", *SHAPE, "-o", str(tmp_path / "out")], tmp_path / "out"),
    }


def _given_inputs(tmp_path: Path, small_net: Path, tool: str) -> None:
    """What energy and train read: a simulation report of `small_net`, a tiny ANN config."""
    given = tmp_path / "given"
    given.mkdir(exist_ok=True)
    if tool == "energy":
        assert simulate_cli.main([str(small_net), "--engine", "reference", "-o", str(given / "sim")]) == 0
    (given / "ann.toml").write_text(f"stage = 'ann'\nshape = [16, 16, 16]\n{SMALL_MODEL}"
                                    "[optim]\nsteps = 1\nbatch_size = 1\n")


@pytest.mark.parametrize("which", ["first", "last"])
@pytest.mark.parametrize("tool", ["export", "simulate", "map", "energy", "evaluate", "train", "run"])
def test_full_disk_keeps_previous_outputs(tool, which, tmp_path, small_net, monkeypatch, capsys):
    _given_inputs(tmp_path, small_net, tool)
    main, args, output = _tools(tmp_path, small_net)[tool]
    counter = FullDisk()
    monkeypatch.setattr(atomic.os, "fsync", counter)
    assert main(args) == 0, capsys.readouterr().err
    if tool == "train":  # a finished checkpoint is "nothing to do": give the rerun a fresh start to fail
        args = [*args, "--fresh"]
    out_root = tmp_path / "out"
    (out_root / "mine.txt").write_text("the user's own file\n")
    before = snapshot(out_root)
    capsys.readouterr()

    monkeypatch.setattr(atomic.os, "fsync", FullDisk(1 if which == "first" else counter.calls))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error line"
    assert "Traceback" not in "\n".join(err)
    assert sum("error:" in line for line in err) == 1, err  # progress lines may come first, one error line
    assert err[-1].endswith("cannot write output (No space left on device)"), err
    named = err[-1].split(": error: ", 1)[1].split(": cannot write output")[0]
    assert Path(named) == output or output in Path(named).parents or Path(named).parent == output.parent, named
    monkeypatch.undo()
    assert snapshot(out_root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["given", "out", "small.net"]  # no stage beside "out"
