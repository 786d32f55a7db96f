"""spikereg-train does what it is asked: an `-o` checkpoint made by another config (another stage, another
architecture) is refused with one line, never resumed or called finished."""
from __future__ import annotations

import pytest

from spikereg_deploy.cli import train_cli
from spikereg_deploy.errors import EXIT_USER_ERROR
from spikereg_deploy.training.checkpoint import read_checkpoint

SMALL = "[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\ntime_steps = 3\n"


@pytest.fixture
def finished_ann(tmp_path):
    cfg = tmp_path / "ann.toml"
    cfg.write_text(f"stage = 'ann'\nshape = [16, 16, 16]\n{SMALL}[optim]\nsteps = 1\nbatch_size = 1\n")
    out = tmp_path / "ann.pt"
    assert train_cli.main(["--config", str(cfg), "-o", str(out)]) == 0
    return out, out.read_bytes()


def _refused(capsys, out, before, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and needle in err[0], err
    assert out.read_bytes() == before


def test_stage_snn_config_on_a_finished_ann_checkpoint(tmp_path, finished_ann, capsys):
    out, before = finished_ann
    cfg = tmp_path / "snn.toml"
    cfg.write_text(f"stage = 'snn'\ninit = '{out}'\nshape = [16, 16, 16]\n{SMALL}[optim]\nsteps = 1\n")
    capsys.readouterr()
    assert train_cli.main(["--config", str(cfg), "-o", str(out)]) == EXIT_USER_ERROR
    _refused(capsys, out, before, "holds a finished or started stage-ann model, the config trains stage snn")


@pytest.mark.parametrize(("model", "needle"), [
    ("[model]\nencoder = [8, 16, 16]\ndecoder = [16, 8, 8]\ntime_steps = 3\n", "encoder = [4, 8, 8]"),
    ("", "encoder = [4, 8, 8], the config asks for [16, 32, 64, 128]"),  # no [model]: the default U-Net
    ("[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\ntime_steps = 5\n", "time_steps = 3"),
], ids=["other-encoder", "default-model", "other-T"])
def test_another_architecture_is_not_resumed(tmp_path, finished_ann, capsys, model, needle):
    out, before = finished_ann
    cfg = tmp_path / "other.toml"
    cfg.write_text(f"stage = 'ann'\nshape = [16, 16, 16]\n{model}[optim]\nsteps = 2\nbatch_size = 1\n")
    capsys.readouterr()
    assert train_cli.main(["--config", str(cfg), "-o", str(out)]) == EXIT_USER_ERROR
    _refused(capsys, out, before, needle)


def test_the_same_config_still_resumes_and_fresh_replaces(tmp_path, finished_ann, capsys):
    out, _ = finished_ann
    cfg = tmp_path / "ann.toml"
    assert train_cli.main(["--config", str(cfg), "--steps", "2", "-o", str(out)]) == 0
    assert read_checkpoint(out)["training_state"]["step"] == 2
    other = tmp_path / "other.toml"
    other.write_text("stage = 'ann'\nshape = [16, 16, 16]\n[model]\nencoder = [4, 4]\ndecoder = [4, 4]\n"
                     "time_steps = 3\n[optim]\nsteps = 1\nbatch_size = 1\n")
    assert train_cli.main(["--config", str(other), "--fresh", "-o", str(out)]) == 0
    assert read_checkpoint(out)["config"]["encoder"] == [4, 4]


def test_a_folder_given_as_a_checkpoint(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    cfg = tmp_path / "snn.toml"
    cfg.write_text(f"stage = 'snn'\ninit = '{tmp_path / 'ckpt'}'\nshape = [16, 16, 16]\n[optim]\nsteps = 1\n")
    assert train_cli.main(["--config", str(cfg), "-o", str(tmp_path / "s.pt")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"{tmp_path / 'ckpt'}: is a folder, not a checkpoint file"), err
