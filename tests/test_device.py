"""`--device cpu|cuda[:N]` for spikereg-train and spikereg-evaluate: the CPU path runs (and records its device), a
device this machine lacks or a bad name is one line with exit 2 before any work, and the integer engines refuse it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spikereg_deploy.cli import evaluate_cli, train_cli
from spikereg_deploy.cli.pair_tasks import DataSpec, ModelRef, load_task_predictor, settings_key
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.torch_device import torch_device

CONFIG = ("stage = 'ann'\nshape = [16, 16, 16]\n[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\ntime_steps = 3\n"
          "[optim]\nsteps = 1\nbatch_size = 1\n")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def _one_line_error(capsys, code: int, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_cpu_training_and_evaluation_record_the_device(tmp_path: Path, capsys) -> None:
    config, ckpt = tmp_path / "ann.toml", tmp_path / "a.pt"
    config.write_text(CONFIG)
    assert train_cli.main(["--config", str(config), "--device", "cpu", "-o", str(ckpt)]) == 0
    assert torch.load(ckpt, weights_only=True, map_location="cpu")["meta"]["device"] == "cpu"
    out = tmp_path / "eval"
    assert evaluate_cli.main([str(ckpt), "--pairs", "1", "--input-shape", "16", "16", "16", "--device", "cpu",
                              "-o", str(out)]) == 0
    assert json.loads((out / "evaluation.json").read_text())["run"]["device"] == "cpu"
    capsys.readouterr()


@no_cuda
def test_cuda_without_a_gpu_is_one_line_before_any_work(tmp_path: Path, capsys) -> None:
    config = tmp_path / "ann.toml"
    config.write_text(CONFIG)
    code = train_cli.main(["--config", str(config), "--device", "cuda", "-o", str(tmp_path / "a.pt")])
    _one_line_error(capsys, code, "--device cuda: no CUDA device is available", "use --device cpu")
    assert not (tmp_path / "a.pt").exists()
    code = evaluate_cli.main(["--pairs", "1", "--input-shape", "16", "16", "16", "--device", "cuda:1",
                              "-o", str(tmp_path / "e")])
    _one_line_error(capsys, code, "--device cuda:1: no CUDA device is available")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CUDA", "cuda:"])
def test_bad_device_names_are_refused(name: str) -> None:
    with pytest.raises(SpikeRegError, match=r"expected cpu, cuda or cuda:N"):
        torch_device(name)


def test_integer_engines_and_net_files_refuse_a_gpu(small_net: Path) -> None:
    with pytest.raises(SpikeRegError, match="the reference engine runs Loihi integers on the CPU"):
        load_task_predictor(ModelRef(None, engine="reference", device="cuda"))
    from spikereg_deploy.cli.common import load_predictor

    with pytest.raises(SpikeRegError, match="a .net runs on the integer reference engine, which is CPU-only"):
        load_predictor(small_net, "cuda")


def test_a_gpu_run_has_its_own_results_key() -> None:
    """Cached results of a CPU run are not reused for a GPU run (not bit-identical), and CPU keys are unchanged."""
    data = DataSpec("embedded", (16, 16, 16), seed=0, count=2)
    assert settings_key(ModelRef(None), data) == settings_key(ModelRef(None, device="cpu"), data)
    assert settings_key(ModelRef(None), data) != settings_key(ModelRef(None, device="cuda"), data)
