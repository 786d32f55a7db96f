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
    assert cfg.stage in ("ann", "snn") and cfg.steps > 0


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
