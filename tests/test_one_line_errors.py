"""Issue 19, items 8 and 9: a user's mistake is exactly one line on stderr (no progress line before it), exit 2, and
leaves nothing behind; spikereg-run never leaves a partial folder and reports Ctrl-C as 130, not "stage failed".

The tools run in-process on real inputs; faults inside a stage are injected where the stage's library call is made.
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.cli import energy_cli, map_cli, run_cli, simulate_cli, train_cli
from spikereg_deploy.errors import DataError, SpikeRegError
from spikereg_deploy.imaging.nifti import load_volume
from spikereg_deploy.signals import Terminated

SHAPE16 = ["--input-shape", "16", "16", "16"]
PREVIOUS = {"summary.json": b'{"previous": true}\n', "simulation/report.json": b'{"previous": true}\n'}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every entry under `root` (hidden ones too) with its bytes; folders map to b"<dir>"."""
    return {str(p.relative_to(root)): b"<dir>" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _previous_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    for name, data in PREVIOUS.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    return out


def _only_line(capsys: pytest.CaptureFixture[str], code: int, expected_code: int = 2) -> str:
    """The one stderr line of a refusal: nothing before it (no progress, no note), no traceback."""
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    prog, sep, message = lines[0].partition(": error: ")  # prog: the tool's name (pytest's, in-process)
    assert sep and prog and " " not in prog, lines[0]
    return message


def _untouched(out: Path, before: dict[str, bytes]) -> None:
    assert snapshot(out) == before, "the previous run's folder changed"
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == [], "a stage was left"


# --- item 8: spikereg-run ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, needle", [(("0", "0", "0"), "positive"), (("12", "12", "12"), "does not fit"),
                                          (("16", "16", "15"), "does not fit")])
def test_run_refuses_a_bad_size_before_any_stage(shape, needle, tmp_path, capsys) -> None:
    out = _previous_run(tmp_path)
    before = snapshot(out)
    code = run_cli.main(["--engine", "reference", "--input-shape", *shape, "-o", str(out)])
    line = _only_line(capsys, code)
    assert needle in line, line
    _untouched(out, before)


def test_run_refuses_a_missing_profile_file_before_any_stage(tmp_path, capsys) -> None:
    out = _previous_run(tmp_path)
    before = snapshot(out)
    missing = tmp_path / "mine.toml"
    code = run_cli.main(["--engine", "reference", *SHAPE16, "--profile", str(missing), "-o", str(out)])
    line = _only_line(capsys, code)
    assert line == f"{missing}: no such profile file", line
    _untouched(out, before)


def _fail_in_the_map_stage(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[bool]:
    """The map stage raises `error` after export and simulation have written into the run's stage."""
    from spikereg_deploy.mapping import plan

    reached: list[bool] = []

    def plan_mapping(*_args, **_kwargs):
        reached.append(True)
        raise error

    monkeypatch.setattr(plan, "plan_mapping", plan_mapping)
    return reached


@pytest.mark.slow
@pytest.mark.parametrize("error, expected_code, last_line", [
    (SpikeRegError("the stage refused its input", "mapping.json"), 2,
     ": error: mapping.json: the stage refused its input"),
    (KeyboardInterrupt(), 130, ": interrupted"),
    (Terminated(), 143, ": terminated"),
], ids=["stage error", "ctrl-c", "sigterm"])
def test_a_stage_that_fails_late_leaves_the_previous_run_whole(error, expected_code, last_line, tmp_path, capsys,
                                                                monkeypatch) -> None:
    """Export and simulation done, then the map stage fails: the previous folder stays byte for byte (no model.net,
    no simulation/ of the new run), no stage is left, and Ctrl-C / SIGTERM are 130 / 143 (not "stage failed", 2)."""
    out = _previous_run(tmp_path)
    before = snapshot(out)
    reached = _fail_in_the_map_stage(monkeypatch, error)
    code = run_cli.main(["--engine", "reference", *SHAPE16, "-o", str(out)])
    err = capsys.readouterr().err
    assert reached, "the map stage was never reached: " + err[-2000:]
    assert code == expected_code, err[-2000:]
    assert "Traceback" not in err and "== simulate done" in err
    assert err.splitlines()[-1].endswith(last_line), err[-500:]
    _untouched(out, before)


# --- item 9: one line, naming what the user gave -------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan"])
def test_a_bad_fill_factor_names_the_option_not_the_profile_file(value, tmp_path, capsys) -> None:
    code = map_cli.main(["--fill-factor", value, "-o", str(tmp_path / "m" / "mapping.json")])
    line = _only_line(capsys, code)
    assert line.startswith("--fill-factor must be in (0, 1], got "), line
    assert ".toml" not in line
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--assumed-rate", "2"], "--assumed-rate must be in [0, 1]"),
    (["--input-shape", "15", "16", "16"], "does not fit the network"),
])
def test_map_refusals_come_before_its_progress_lines(argv, needle, tmp_path, capsys) -> None:
    code = map_cli.main([*argv, "-o", str(tmp_path / "mapping.json")])
    assert needle in _only_line(capsys, code)
    assert not list(tmp_path.iterdir())


def test_map_refuses_a_traffic_report_of_another_size_before_its_progress_lines(small_net, tmp_path, capsys) -> None:
    sim = tmp_path / "sim"
    assert simulate_cli.main([str(small_net), "--engine", "reference", "--input-shape", "8", "8", "8",
                              "-o", str(sim)]) == 0
    capsys.readouterr()
    code = map_cli.main([str(small_net), "--traffic", str(sim / "report.json"), *SHAPE16,
                         "-o", str(tmp_path / "m" / "mapping.json")])
    line = _only_line(capsys, code)
    assert str(sim / "report.json") in line and "measured at input [8, 8, 8]" in line, line
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("shape", [("15", "16", "16"), ("0", "16", "16")])
def test_simulate_of_the_embedded_model_refuses_a_size_in_one_line(shape, tmp_path, capsys) -> None:
    """The "no .net given" note used to come first: two lines for one refusal."""
    code = simulate_cli.main(["--engine", "reference", "--input-shape", *shape, "-o", str(tmp_path / "sim")])
    assert "multiples of 8" in _only_line(capsys, code)
    assert not list(tmp_path.iterdir())


def test_energy_of_the_embedded_model_refuses_a_missing_report_in_one_line(tmp_path, capsys) -> None:
    missing = tmp_path / "report.json"
    code = energy_cli.main([str(missing), "-o", str(tmp_path / "energy")])
    assert _only_line(capsys, code) == f"{missing}: no such report file"
    assert not (tmp_path / "energy").exists()


def test_the_note_still_comes_when_the_embedded_model_runs(tmp_path, capsys) -> None:
    assert simulate_cli.main(["--engine", "reference", "--input-shape", "8", "8", "8",
                              "-o", str(tmp_path / "sim")]) == 0
    assert "no .net given: using the embedded" in capsys.readouterr().err


def test_train_refuses_a_missing_config_in_one_line(tmp_path, capsys) -> None:
    missing = tmp_path / "cfg.toml"
    code = train_cli.main(["--config", str(missing), "-o", str(tmp_path / "a.pt")])
    assert _only_line(capsys, code) == f"{missing}: no such config file"


# --- item 9: a complex-valued NIfTI ----------------------------------------------------------------------------------
def _complex_image(path: Path) -> Path:
    rng = np.random.default_rng(3)
    data = (rng.random((16, 16, 16)) + 1j * rng.random((16, 16, 16))).astype(np.complex64)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def test_a_complex_nifti_is_refused_not_cast_with_a_warning(tmp_path) -> None:
    path = _complex_image(tmp_path / "complex.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would surface here as an exception
        with pytest.raises(DataError) as err:
            load_volume(path)
    assert str(err.value) == f"{path}: voxel type complex64 is not a real number (one real intensity per voxel " \
                             "expected)"


def test_simulate_refuses_a_complex_pair_in_one_line(small_net, tmp_path, capsys) -> None:
    fixed = _complex_image(tmp_path / "fixed.nii.gz")
    moving = _complex_image(tmp_path / "moving.nii.gz")
    code = simulate_cli.main([str(small_net), "--engine", "reference", "--fixed", str(fixed), "--moving", str(moving),
                              "-o", str(tmp_path / "sim")])
    line = _only_line(capsys, code)
    assert str(fixed) in line and "complex64" in line
    assert not (tmp_path / "sim").exists()


# --- item 9: output modes follow the umask -------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


@pytest.mark.slow
def test_outputs_are_0644_under_umask_022(small_net, tmp_path, umask_022) -> None:
    """Simulation outputs (NIfTI, report, PNG), the energy PNGs and a checkpoint used to be 0600 (mkstemp)."""
    sim, energy, ckpt = tmp_path / "sim", tmp_path / "energy", tmp_path / "ckpt" / "a.pt"
    assert simulate_cli.main([str(small_net), "--engine", "reference", "-o", str(sim)]) == 0
    assert energy_cli.main([str(sim / "report.json"), "--net", str(small_net), "-o", str(energy)]) == 0
    config = tmp_path / "ann.toml"
    config.write_text("stage = 'ann'\nshape = [16, 16, 16]\n[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\n"
                      "time_steps = 3\n[optim]\nsteps = 1\nbatch_size = 1\n")
    assert train_cli.main(["--config", str(config), "-o", str(ckpt)]) == 0
    modes = {**{f"sim/{k}": v for k, v in _modes(sim).items()}, **{f"energy/{k}": v for k, v in _modes(energy).items()},
             "a.pt": stat.S_IMODE(ckpt.stat().st_mode)}
    assert {"sim/rates.png", "sim/displacement.nii.gz", "sim/report.json", "energy/spike_rates.png",
            "a.pt"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}
    for folder in (sim, energy, ckpt.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
