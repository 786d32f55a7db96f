"""Per-pair tasks on Dask and the results database: serial = parallel, nothing finished is lost when the coordinator
or a worker is killed, a failed pair is recorded and does not stop the others, and bad databases or schedulers are
one line with exit 2."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikereg_deploy.cli import evaluate_cli, sweep_cli
from spikereg_deploy.sweep.results_db import ResultsDB

SHAPE = ["--input-shape", "16", "16", "16"]


def _sweep(tmp_path: Path, name: str, net: Path, *extra: str, pairs: int = 4) -> tuple[int, dict]:
    out = tmp_path / name
    code = sweep_cli.main([str(net), "--pairs", str(pairs), *SHAPE, "-o", str(out), *extra])
    return code, json.loads((out / "sweep.json").read_text())


def _without_run(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "run"}


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


@pytest.mark.slow
def test_serial_and_two_workers_give_identical_results(tmp_path, small_net):
    code1, serial = _sweep(tmp_path, "serial", small_net)
    code2, parallel = _sweep(tmp_path, "parallel", small_net, "--workers", "2")
    assert code1 == code2 == 0
    assert parallel["run"]["workers"] == 2 and parallel["run"]["tasks_run"] == 4
    assert _without_run(serial) == _without_run(parallel)
    model = serial["models"][0]
    assert model["pairs"] == 4 and not model["failed"]
    assert model["energy"]["synops_measured"] + model["energy"]["graded_synops"] > 0
    # the same numbers through spikereg-evaluate's path (the integer engine on a .net), serial
    assert evaluate_cli.main([str(small_net), "--pairs", "4", *SHAPE, "-o", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert ev["aggregate"] == model["aggregate"] and ev["per_pair"] == model["per_pair"]


def test_a_rerun_skips_finished_pairs(tmp_path, small_net):
    db = tmp_path / "r.sqlite"
    _, first = _sweep(tmp_path, "a", small_net, "--results-db", str(db), pairs=2)
    _, second = _sweep(tmp_path, "b", small_net, "--results-db", str(db), pairs=3)
    assert first["run"]["tasks_run"] == 2
    assert (second["run"]["tasks_run"], second["run"]["tasks_skipped_finished"]) == (1, 2)
    assert second["models"][0]["per_pair"][:2] == first["models"][0]["per_pair"]
    assert ResultsDB(db).count() == 3


def _coordinator(tmp_path: Path, net: Path, db: Path, workers: int, pairs: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "spikereg_deploy.cli.sweep_cli", str(net), "--pairs", str(pairs),
           "--input-shape", "24", "24", "24", "--results-db", str(db), "--workers", str(workers),
           "-o", str(tmp_path / "killed")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _ok_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM pair_results WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow
def test_sigkill_of_the_coordinator_loses_no_finished_pair(tmp_path, small_net):
    db = tmp_path / "r.sqlite"
    proc = _coordinator(tmp_path, small_net, db, workers=1, pairs=6)
    _wait_for(lambda: _ok_rows(db) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    finished = _ok_rows(db)
    assert 2 <= finished < 6
    code, resumed = _sweep(tmp_path, "resumed", small_net, "--results-db", str(db), "--input-shape", "24", "24",
                           "24", pairs=6)
    assert code == 0
    assert (resumed["run"]["tasks_run"], resumed["run"]["tasks_skipped_finished"]) == (6 - finished, finished)
    _, clean = _sweep(tmp_path, "clean", small_net, "--input-shape", "24", "24", "24", pairs=6)
    assert _without_run(resumed) == _without_run(clean)


@pytest.mark.slow
def test_a_killed_worker_has_its_pair_retried(tmp_path, small_net):
    db = tmp_path / "r.sqlite"
    proc = _coordinator(tmp_path, small_net, db, workers=2, pairs=8)
    _wait_for(lambda: _ok_rows(db) >= 1)
    workers = [c for c in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    assert proc.wait(timeout=240) == 0
    with sqlite3.connect(db) as conn:
        states = conn.execute("SELECT status, count(*) FROM pair_results GROUP BY status").fetchall()
    assert states == [("ok", 8)]
    assert not [c for c in _children(proc.pid)]


def test_a_failed_pair_is_recorded_and_the_others_finish(tmp_path, small_net, capsys):
    from test_evaluate_native import _save, _subject

    for i, name in enumerate(("s0", "s1", "s2")):  # neurite layout: every ordered pair of the three subjects
        image, labels = _subject(i, shape=(16, 16, 16))
        _save(tmp_path / "neurite" / name / "aligned_norm.nii.gz", image)
        _save(tmp_path / "neurite" / name / "aligned_seg35.nii.gz", labels)
    broken = tmp_path / "neurite" / "s2" / "aligned_norm.nii.gz"
    broken.write_bytes(b"not a nifti")
    out = tmp_path / "o"
    code = sweep_cli.main([str(small_net), "--data", f"neurite:{tmp_path / 'neurite'}", *SHAPE,
                           "--results-db", str(tmp_path / "r.sqlite"), "-o", str(out)])
    assert code == 1
    result = json.loads((out / "sweep.json").read_text())
    model = result["models"][0]
    assert result["pairs_total"] == 6 and model["pairs"] == 2 and len(model["failed"]) == 4  # 4 pairs hold s2
    assert all(str(broken) in f["error"] and "not readable as NIfTI" in f["error"] for f in model["failed"])
    assert all("\n" not in f["error"] for f in model["failed"])
    assert "FAILED" in capsys.readouterr().out


def test_corrupt_or_foreign_database_is_one_line(tmp_path, small_net, capsys):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    before = junk.read_bytes()
    code = sweep_cli.main([str(small_net), "--pairs", "1", *SHAPE, "--results-db", str(junk), "-o",
                           str(tmp_path / "o")])
    assert code == 2
    _one_line(capsys, str(junk), "cannot open results database")
    assert junk.read_bytes() == before and not (tmp_path / "o").exists()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE spikereg_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO spikereg_meta VALUES ('format', 'something-else'), ('version', '7')")
    assert sweep_cli.main([str(small_net), "--pairs", "1", *SHAPE, "--results-db", str(foreign), "-o",
                           str(tmp_path / "o")]) == 2
    _one_line(capsys, str(foreign), "not a spikereg-results v1 database")


def test_unwritable_database_is_refused_before_any_pair(tmp_path, small_net, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder and mode & os.W_OK
                        else real_access(p, mode, **kw))  # root ignores folder modes: say what a user would see
    assert sweep_cli.main([str(small_net), "--pairs", "1", *SHAPE, "--results-db", str(folder / "r.sqlite"), "-o",
                           str(tmp_path / "o")]) == 2
    _one_line(capsys, "not writable")
    assert list(folder.iterdir()) == [] and not (tmp_path / "o").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address, needle", [(None, "cannot reach the Dask scheduler"),
                                             ("localhost:8786", "tcp://HOST:PORT")])
def test_unreachable_or_malformed_scheduler(tmp_path, small_net, capsys, address, needle):
    address = address or f"tcp://127.0.0.1:{_free_port()}"
    db = tmp_path / "r.sqlite"
    code = evaluate_cli.main([str(small_net), "--pairs", "1", *SHAPE, "--scheduler", address, "--results-db", str(db),
                              "-o", str(tmp_path / "o")])
    assert code == 2
    _one_line(capsys, needle)
    assert ResultsDB(db).count() == 0 and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_an_existing_cluster_by_address(tmp_path, small_net):
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        code, remote = _sweep(tmp_path, "remote", small_net, "--scheduler", cluster.scheduler_address, pairs=2)
    _, serial = _sweep(tmp_path, "serial", small_net, pairs=2)
    assert code == 0 and _without_run(remote) == _without_run(serial)
