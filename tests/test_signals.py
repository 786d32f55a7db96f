"""Ctrl-C and SIGTERM during a Lava run: exit 130 / 143 within 10 s, one line, no worker left, nothing left behind.

The command runs as a user runs it (the console script, its own process group, like a terminal's job) with TMPDIR
pointing at a folder of the test, so every temporary folder it makes (spikereg-net-*, spikereg-lava-*, Lava's
pymp-*, the output stage beside -o) can be seen.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spikereg_deploy.signals import descendant_pids

pytestmark = [pytest.mark.lava, pytest.mark.slow]

SCRIPT = Path(sys.executable).parent / "spikereg-simulate"
# tqdm's bar after at least one finished step: the Lava runtime and all its workers are up.
RUNNING = re.compile(r"Lava fixed_pt:\s+\d+%\|[^|]*\|\s*[1-9]\d*/\d+")
PREVIOUS = {"displacement.nii.gz": b"previous displacement", "report.json": b'{"previous": true}\n'}


def _alive(pid: int) -> bool:
    """Alive and not a zombie (an exited process the container's init has not reaped yet is no longer running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _interrupt_during_lava(tmp_path: Path, send) -> tuple[int, float, str, set[int], Path, Path]:
    """Start the simulation, wait until Lava is stepping, record its workers, call `send(proc)`, wait."""
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    for name, data in PREVIOUS.items():
        (out / name).write_bytes(data)
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([str(SCRIPT), "--input-shape", "16", "16", "16", "-o", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            cwd=tmp_path)
    chunks: list[str] = []
    running = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        while block := proc.stderr.read1(4096):
            chunks.append(block.decode(errors="replace"))
            if RUNNING.search("".join(chunks)):
                running.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert running.wait(120), "the Lava run never started: " + "".join(chunks)[-2000:]
        workers = descendant_pids(proc.pid)
        assert workers, "Lava forked no worker processes"
        send(proc)
        sent = time.monotonic()
        rc = proc.wait(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(5)
    return rc, elapsed, "".join(chunks), workers, scratch, out


def _check_clean_exit(rc: int, expected_rc: int, elapsed: float, stderr: str, message: str, workers: set[int],
                      scratch: Path, out: Path) -> None:
    assert rc == expected_rc, stderr[-3000:]
    assert elapsed < 10, f"took {elapsed:.1f} s to exit"
    assert "Traceback" not in stderr, stderr[-3000:]
    after_bar = stderr.replace("\r", "\n").rsplit("step/s]", 1)[1]
    assert after_bar.strip().splitlines() == [f"spikereg-simulate: {message}"], after_bar
    deadline = time.monotonic() + 5  # SIGKILLed children vanish a moment after their parent
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "Lava workers outlived the command"
    assert sorted(p.name for p in scratch.iterdir()) == [], "temporary folders left in TMPDIR"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "tmp"], "an output stage was left beside -o"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == PREVIOUS, "previous outputs changed"


def test_ctrl_c_to_the_process_group_stops_lava_cleanly(tmp_path: Path) -> None:
    rc, elapsed, stderr, workers, scratch, out = _interrupt_during_lava(
        tmp_path, lambda proc: os.killpg(proc.pid, signal.SIGINT))
    _check_clean_exit(rc, 130, elapsed, stderr, "interrupted", workers, scratch, out)


def test_sigterm_to_the_main_process_stops_lava_cleanly(tmp_path: Path) -> None:
    rc, elapsed, stderr, workers, scratch, out = _interrupt_during_lava(
        tmp_path, lambda proc: proc.send_signal(signal.SIGTERM))
    _check_clean_exit(rc, 143, elapsed, stderr, "terminated", workers, scratch, out)
