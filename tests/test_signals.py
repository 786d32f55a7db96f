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

from spikereg_deploy.errors import cli_entry
from spikereg_deploy.signals import Terminated, deferred_signals, descendant_pids, exit_status_for

BIN = Path(sys.executable).parent  # the venv's console scripts
# tqdm's bar after at least one finished step: the Lava runtime and all its workers are up.
LAVA_BAR = "Lava fixed_pt"
RUNNING = re.compile(r"Lava fixed_pt:\s+\d+%\|[^|]*\|\s*[1-9]\d*/\d+")
PREVIOUS = {"displacement.nii.gz": b"previous displacement", "report.json": b'{"previous": true}\n'}


def _alive(pid: int) -> bool:
    """Alive and not a zombie (an exited process the container's init has not reaped yet is no longer running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _interrupt(tmp_path: Path, command: list[str], started: re.Pattern[str],
               send) -> tuple[int, float, str, set[int], Path, Path]:
    """Start `command -o OUT`, wait until stderr matches `started`, record its children, call `send(proc)`, wait."""
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    for name, data in PREVIOUS.items():
        (out / name).write_bytes(data)
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([str(BIN / command[0]), *command[1:], "-o", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            cwd=tmp_path)
    chunks: list[str] = []
    running = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        while block := proc.stderr.read1(4096):
            chunks.append(block.decode(errors="replace"))
            if started.search("".join(chunks)):
                running.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert running.wait(120), "the run never reached the point to interrupt: " + "".join(chunks)[-2000:]
        workers = descendant_pids(proc.pid)
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
                      scratch: Path, out: Path, after: str) -> None:
    """`after`: a pattern of the progress lines before the signal; exactly one line may follow the last of them."""
    assert rc == expected_rc, stderr[-3000:]
    assert elapsed < 10, f"took {elapsed:.1f} s to exit"
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    last_progress = max(i for i, line in enumerate(lines) if re.search(after, line))
    assert lines[last_progress + 1:] == [message], repr(stderr[-500:])
    deadline = time.monotonic() + 5  # SIGKILLed children vanish a moment after their parent
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "Lava workers outlived the command"
    assert sorted(p.name for p in scratch.iterdir()) == [], "temporary folders left in TMPDIR"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "tmp"], "an output stage was left beside -o"
    assert not [p.name for p in out.rglob(".*")], "an output stage was left inside -o"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == PREVIOUS, "previous outputs changed"


SIMULATE_LAVA = ["spikereg-simulate", "--input-shape", "16", "16", "16"]


@pytest.mark.lava
@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_lava_cleanly(tmp_path: Path) -> None:
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, SIMULATE_LAVA, RUNNING, lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert workers, "Lava forked no worker processes"
    _check_clean_exit(rc, 130, elapsed, stderr, "spikereg-simulate: interrupted", workers, scratch, out, LAVA_BAR)


@pytest.mark.lava
@pytest.mark.slow
def test_sigterm_to_the_main_process_stops_lava_cleanly(tmp_path: Path) -> None:
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, SIMULATE_LAVA, RUNNING, lambda proc: proc.send_signal(signal.SIGTERM))
    assert workers, "Lava forked no worker processes"
    _check_clean_exit(rc, 143, elapsed, stderr, "spikereg-simulate: terminated", workers, scratch, out, LAVA_BAR)


@pytest.mark.slow
def test_sigterm_during_a_reference_run_leaves_no_temporary_net(tmp_path: Path) -> None:
    """The embedded model goes through a temporary .net (spikereg-net-*): SIGTERM used to leave it each time."""
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, ["spikereg-simulate", "--engine", "reference"], re.compile(r"memory estimate.*\n"),
        lambda proc: proc.send_signal(signal.SIGTERM))
    _check_clean_exit(rc, 143, elapsed, stderr, "spikereg-simulate: terminated", workers, scratch, out,
                      "memory estimate|reference engine")


@pytest.mark.lava
@pytest.mark.slow
def test_ctrl_c_during_the_lava_stage_of_spikereg_run(tmp_path: Path) -> None:
    """The whole chain: exit 130 (not 2, "stage failed"), workers ended, no simulation stage left."""
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, ["spikereg-run", "--input-shape", "16", "16", "16"], RUNNING,
        lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert workers, "Lava forked no worker processes"
    # the whole run is staged beside -o (atomic_folder): model.net, already exported, never reaches the old folder
    _check_clean_exit(rc, 130, elapsed, stderr, "spikereg-run: interrupted", workers, scratch, out, LAVA_BAR)
    assert not (out / "simulation").exists() and not (out / "model.net").exists()


@pytest.mark.lava
@pytest.mark.slow
def test_sigterm_during_the_lava_stage_of_spikereg_run(tmp_path: Path) -> None:
    """SIGTERM to the main process only (what `kill` or a job scheduler sends): 143, workers ended, old run kept."""
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, ["spikereg-run", "--input-shape", "16", "16", "16"], RUNNING,
        lambda proc: proc.send_signal(signal.SIGTERM))
    assert workers, "Lava forked no worker processes"
    _check_clean_exit(rc, 143, elapsed, stderr, "spikereg-run: terminated", workers, scratch, out, LAVA_BAR)
    assert not (out / "simulation").exists() and not (out / "model.net").exists()


def test_a_deferred_signal_is_raised_only_when_asked() -> None:
    with deferred_signals() as deferral:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run: nothing was raised
        assert deferral.signum == signal.SIGTERM and not deferral.escalated
    with pytest.raises(Terminated):
        deferral.raise_pending()
    assert exit_status_for(Terminated()) == 143 and exit_status_for(KeyboardInterrupt()) == 130


def test_a_second_signal_escalates_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), deferred_signals() as deferral:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert deferral.escalated


def test_a_stop_that_hangs_escalates_after_the_grace_period() -> None:
    started = time.monotonic()
    with pytest.raises(Terminated), deferred_signals(grace_s=0.2) as deferral:
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(5)  # a blocked wait, like Lava's channel recv: the alarm interrupts it
    assert deferral.escalated and time.monotonic() - started < 2
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored


def test_cli_entry_turns_sigterm_into_exit_143_after_cleanup(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"

    @cli_entry
    def main() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            marker.write_text("yes")
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert main() == 143
    assert marker.read_text() == "yes"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.lava
@pytest.mark.slow
def test_a_worker_killed_from_outside_still_ends_in_130_without_orphans(tmp_path: Path) -> None:
    """A dead worker never answers STOP: the deferral escalates after its grace period and the rest are killed by
    PID (the resource tracker may warn about the shared memory it then unlinks, so stderr is not checked here)."""

    def kill_one_worker_then_interrupt(proc: subprocess.Popen) -> None:
        os.kill(max(descendant_pids(proc.pid)), signal.SIGKILL)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)

    rc, elapsed, stderr, workers, scratch, out = _interrupt(tmp_path, SIMULATE_LAVA, RUNNING,
                                                            kill_one_worker_then_interrupt)
    assert rc == 130 and elapsed < 10, (rc, elapsed, stderr[-2000:])
    assert "spikereg-simulate: interrupted" in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]
    assert sorted(p.name for p in scratch.iterdir()) == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == PREVIOUS


@pytest.mark.lava
@pytest.mark.slow
def test_ctrl_c_during_a_sweep_on_lava_workers(tmp_path: Path) -> None:
    """Lava inside two Dask workers: the workers ignore the group's SIGINT, the coordinator ends them and their
    Lava processes, and exits with one line."""
    command = ["spikereg-sweep", "--engine", "lava", "--workers", "2", "--pairs", "4", "--input-shape", "16", "16",
               "16", "--results-db", ":memory:"]
    before = set(Path("/tmp").glob("spikereg-workers-*"))  # where worker folders go when TMPDIR is too deep
    rc, elapsed, stderr, workers, scratch, out = _interrupt(
        tmp_path, command, re.compile(r"pairs:\s+\d+%\|[^|]*\|\s*[1-9]/4"),
        lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert len(workers) > 2, "no Lava processes below the workers"
    _check_clean_exit(rc, 130, elapsed, stderr, "spikereg-sweep: interrupted", workers, scratch, out, "pairs:")
    assert set(Path("/tmp").glob("spikereg-workers-*")) == before, "a worker scratch folder was left in /tmp"
