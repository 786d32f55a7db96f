"""Training configs respect their TOML tables: each key has one home, anything else is a one-line error."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from spikereg_deploy.cli import train_cli
from spikereg_deploy.errors import EXIT_USER_ERROR, SpikeRegError
from spikereg_deploy.training.train import TABLE_KEYS, TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def test_every_config_field_has_exactly_one_home():
    homes = [key for keys in TABLE_KEYS.values() for key in keys]
    assert len(homes) == len(set(homes))
    assert set(homes) == {f.name for f in fields(TrainConfig)} - {"model"}


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = TrainConfig.from_toml(path)
    assert cfg.stage in ("ann", "snn") and (cfg.steps > 0 or cfg.stage == "snn")  # snn, steps 0: convert only


def test_shipped_configs_are_read_from_their_tables():
    cfg = TrainConfig.from_toml(CONFIG_DIR / "snn.toml")
    assert (cfg.time_steps, cfg.percentile, cfg.steps, cfg.gain_lr, cfg.init) == (32, 99.9, 20, 0.005, "runs/ann.pt")


def test_every_table_is_accepted_in_its_place(tmp_path):
    cfg = TrainConfig.from_toml(_write(tmp_path, (
        "stage = 'snn'\ninit = 'a.pt'\n[model]\nencoder = [4, 8, 8]\ndecoder = [8, 4, 4]\nthresholds = {enc0 = 1.5}\n"
        "[data]\ndata_seed_offset = 20000\n[optim]\nteacher = 'b.pt'\ndistill_weight = 0.1\n"
        "[conversion]\ntime_steps = 8\n")))
    assert cfg.model["thresholds"] == {"enc0": 1.5} and cfg.data_seed_offset == 20000
    assert (cfg.teacher, cfg.distill_weight, cfg.time_steps) == ("b.pt", 0.1, 8)


@pytest.mark.parametrize(("text", "message"), [
    ("[trainer]\nsteps = 3\n", r"cfg\.toml: unknown table \[trainer\]"),
    ("[optim]\nstepz = 3\n", r"cfg\.toml: unknown key 'stepz' in \[optim\]"),
    ("seeed = 3\n", r"cfg\.toml: unknown key 'seeed' at the top level"),
    ("[model]\nencodr = [4]\n", r"cfg\.toml: unknown key 'encodr' in \[model\]"),
    ("[optim]\npercentile = 99.0\n", r"cfg\.toml: key 'percentile' in \[optim\] belongs in \[conversion\]"),
    ("steps = 3\n", r"cfg\.toml: key 'steps' at the top level belongs in \[optim\]"),
    ("[conversion]\nseed = 1\n", r"cfg\.toml: key 'seed' in \[conversion\] belongs at the top level"),
    ("[model]\nlr = 0.1\n", r"cfg\.toml: key 'lr' in \[model\] belongs in \[optim\]"),
    ("[optim.extra]\nlr = 0.1\n", r"cfg\.toml: unknown key 'extra' in \[optim\]"),
    ("optim = 3\n", r"cfg\.toml: \[optim\] must be a table"),
    ("steps = {value = 3}\n", r"cfg\.toml: key 'steps' at the top level belongs in \[optim\]"),
], ids=["unknown-table", "unknown-key", "unknown-top-level-key", "unknown-model-key", "wrong-table",
        "top-level-key-of-a-table", "table-key-of-the-top-level", "model-holds-a-training-key", "sub-table",
        "table-as-value", "key-as-table"])
def test_a_key_outside_its_table_is_refused(tmp_path, text, message):
    with pytest.raises(SpikeRegError, match=message):
        TrainConfig.from_toml(_write(tmp_path, text))


def test_cli_refuses_a_misplaced_key_with_one_line(tmp_path, capsys):
    bad = _write(tmp_path, "stage = 'ann'\n[conversion]\nsteps = 3\n")
    out = tmp_path / "x.pt"
    assert train_cli.main(["--config", str(bad), "-o", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cfg.toml" in err[0] and "'steps' in [conversion] belongs in [optim]" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(("text", "message"), [
    ("[optim]\nsteps = 'ten'\n", r"key 'steps' in \[optim\] must be an integer >= 0, got 'ten'"),
    ("shape = 5\n", r"key 'shape' at the top level must be a list of 3 positive integers, got 5"),
    ("shape = [16, 16]\n", r"key 'shape' at the top level must be a list of 3 positive integers"),
    ("[model]\nencoder = 'abc'\n", r"key 'encoder' in \[model\] must be a list of one or more positive integers"),
    ("[model]\nbottleneck = 1\n", r"key 'bottleneck' in \[model\] must be true or false, got 1"),
    ("[optim]\ncheckpoint_every = 0\n", r"key 'checkpoint_every' in \[optim\] must be an integer >= 1, got 0"),
    ("[optim]\nncc_window = 0\n", r"key 'ncc_window' in \[optim\] must be an integer >= 1, got 0"),
    ("[optim]\nlr = nan\n", r"key 'lr' in \[optim\] must be a number > 0, got nan"),
    ("[conversion]\npercentile = 200\n", r"key 'percentile' in \[conversion\] must be a number > 0 and <= 100"),
    ("[conversion]\nnormalisation = 'bogus'\n", r"key 'normalisation' in \[conversion\] must be one of "
                                                r"'connection', 'layer', got 'bogus'"),
    ("[conversion]\ncalibration_pairs = 0\n", r"key 'calibration_pairs' in \[conversion\] must be an integer >= 1"),
    ("[conversion]\ntime_steps = 1e9\n", r"key 'time_steps' in \[conversion\] must be an integer >= 0 and <= 1,024"),
    ("[model]\ntime_steps = 1000000\n", r"key 'time_steps' in \[model\] must be an integer >= 1 and <= 1,024"),
    ("seed = -1\n", r"key 'seed' at the top level must be an integer >= 0, got -1"),
    ("stage = 3\n", r"key 'stage' at the top level must be one of 'ann', 'snn', got 3"),
], ids=["steps-text", "shape-number", "shape-two", "encoder-text", "bool-as-int", "checkpoint-every-0",
        "ncc-window-0", "lr-nan", "percentile-200", "normalisation", "calibration-0", "time-steps-float",
        "model-time-steps-huge", "seed-negative", "stage-number"])
def test_a_value_of_the_wrong_type_or_range_names_file_table_and_key(tmp_path, text, message):
    with pytest.raises(SpikeRegError, match=r"cfg\.toml: " + message):
        TrainConfig.from_toml(_write(tmp_path, text))


def test_cli_refuses_a_bad_value_with_one_line_before_any_work(tmp_path, capsys):
    bad = _write(tmp_path, "stage = 'ann'\n[optim]\ncheckpoint_every = 0\n")
    out = tmp_path / "x.pt"
    assert train_cli.main(["--config", str(bad), "-o", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cfg.toml: key 'checkpoint_every' in [optim] must be an integer >= 1" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", "x"])
def test_every_tool_refuses_a_negative_seed_as_training_does(seed, capsys):
    from spikereg_deploy.cli import evaluate_cli, map_cli, run_cli, simulate_cli

    for main in (evaluate_cli.main, map_cli.main, run_cli.main, simulate_cli.main):
        with pytest.raises(SystemExit) as stop:
            main(["--seed", seed, "-o", "never-written"])
        assert stop.value.code == 2
        assert "--seed" in capsys.readouterr().err
    assert not Path("never-written").exists()
