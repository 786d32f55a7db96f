"""spikereg-tune: an interrupted study resumes from its storage, the Pareto front file is the study's, the chosen
point is a config spikereg-train accepts, a study of another teacher is refused; threshold_scale scales thresholds."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from spikereg_deploy.cli import train_cli, tune_cli

SMALL_ANN = ('stage = "ann"\nseed = {seed}\nshape = [16, 16, 16]\n[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\n'
             'time_steps = 3\n[optim]\nsteps = 2\nbatch_size = 1\n')
SPACE = 'neuron = ["if-sr-half", "mt"]\ntime_steps = [1, 3]\n'


def _teacher(folder: Path, seed: int = 0) -> Path:
    cfg = folder / f"ann{seed}.toml"
    cfg.write_text(SMALL_ANN.format(seed=seed))
    path = folder / f"teacher{seed}.pt"
    assert train_cli.main(["--config", str(cfg), "-o", str(path)]) == 0
    return path


@pytest.fixture
def teacher(tmp_path) -> Path:
    return _teacher(tmp_path)


def _args(tmp_path: Path, teacher: Path, trials: int, *extra: str) -> list[str]:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return [str(teacher), "--trials", str(trials), "--pairs", "2", "--input-shape", "16", "16", "16", "--space",
            str(space), "--storage", str(tmp_path / "study.sqlite"), "--state", str(tmp_path / "state"),
            "-o", str(tmp_path / "tune"), *extra]


def _complete(storage: Path) -> int:
    try:
        with sqlite3.connect(storage) as conn:
            return conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_killed_study_resumes_and_front_matches_the_study(tmp_path, teacher):
    cmd = [sys.executable, "-m", "spikereg_deploy.cli.tune_cli", *_args(tmp_path, teacher, 6)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while _complete(tmp_path / "study.sqlite") < 1:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = _complete(tmp_path / "study.sqlite")
    assert 1 <= before < 6
    assert tune_cli.main(_args(tmp_path, teacher, 4)) == 0
    study = optuna.load_study(study_name="spikereg-tune", storage=f"sqlite:///{tmp_path / 'study.sqlite'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4  # the killed run's trials were kept, only the rest were run
    result = json.loads((tmp_path / "tune" / "pareto.json").read_text())
    assert result["trials_run_now"] == 4 - before
    front = {(r["trial"], r["dice"], r["ratio_measured_45nm"]) for r in result["pareto_front"]}
    assert front == {(t.number, t.values[0], t.values[1]) for t in study.best_trials}
    assert result["chosen"]["trial"] in {r[0] for r in front}
    assert (tmp_path / "tune" / "pareto.png").stat().st_size > 0


def test_chosen_config_trains_and_reproduces_the_trial(tmp_path, teacher):
    assert tune_cli.main(_args(tmp_path, teacher, 2)) == 0
    result = json.loads((tmp_path / "tune" / "pareto.json").read_text())
    chosen = next(r for r in result["pareto_front"] if r["trial"] == result["chosen"]["trial"])
    rebuilt = tmp_path / "rebuilt.pt"
    assert train_cli.main(["--config", str(tmp_path / "tune" / "chosen.toml"), "-o", str(rebuilt)]) == 0
    import torch

    a = torch.load(rebuilt, weights_only=True)["state_dict"]
    b = torch.load(chosen["checkpoint"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_study_of_another_teacher_is_refused(tmp_path, teacher, capsys):
    assert tune_cli.main(_args(tmp_path, teacher, 1)) == 0
    other = _teacher(tmp_path, seed=1)
    before = (tmp_path / "study.sqlite").read_bytes()
    capsys.readouterr()
    assert tune_cli.main(_args(tmp_path, other, 2)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was made for teacher" in err[0] and "study.sqlite" in err[0]
    assert (tmp_path / "study.sqlite").read_bytes() == before


def test_bad_input_is_one_line(tmp_path, teacher, capsys):
    assert tune_cli.main([*_args(tmp_path, teacher, 1), "--seed", "0"]) == 2
    assert "held-out" in capsys.readouterr().err
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"garbage" * 500)
    assert tune_cli.main([*_args(tmp_path, teacher, 1), "--storage", str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open Optuna storage" in err[0]
    bad_space = tmp_path / "bad.toml"
    bad_space.write_text('neuron = ["lif"]\n')
    assert tune_cli.main([*_args(tmp_path, teacher, 1), "--space", str(bad_space)]) == 2
    assert "'lif' is not one of" in capsys.readouterr().err


def test_threshold_scale_scales_every_threshold(tmp_path, teacher):
    from spikereg_deploy.training.checkpoint import load_checkpoint
    from spikereg_deploy.training.train import train
    from spikereg_deploy.training.train_config import TrainConfig

    thresholds = {}
    for scale in (1.0, 2.0):
        cfg = TrainConfig(stage="snn", shape=(16, 16, 16), init=str(teacher), steps=0, threshold_scale=scale,
                          model={"neuron_model": "CUBA-SR", "current_decay": 1.0, "voltage_decay": 0.0})
        train(cfg, tmp_path / f"s{scale}.pt", progress=False, log=lambda _m: None)
        thresholds[scale] = load_checkpoint(tmp_path / f"s{scale}.pt").config.thresholds
    assert thresholds[1.0].keys() == thresholds[2.0].keys() and thresholds[1.0]
    for name, t in thresholds[1.0].items():
        assert thresholds[2.0][name] == pytest.approx(2 * t)
