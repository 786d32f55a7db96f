"""checkpoint.pt round trip and refusal of broken or foreign checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy.errors import CheckpointError
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig


def test_round_trip_identical_spikes(tmp_path, small_config, pair16):
    model = seeded_model(small_config, seed=3)
    path = save_checkpoint(tmp_path / "ckpt.pt", model, meta={"note": "test"})
    again = load_checkpoint(path)
    assert again.config == model.config
    x = torch.as_tensor(pair16[:, :8, :8, :8])[None]
    with torch.no_grad():
        a, b = model.eval()(x), again(x)
    for name in a.spikes:
        assert torch.equal(a.spikes[name], b.spikes[name])
    assert torch.equal(a.readout_sum, b.readout_sum)
    for name in model.integer_weights():
        np.testing.assert_array_equal(model.integer_weights()[name], again.integer_weights()[name])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind


def test_missing_and_garbage(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)


def test_truncated(tmp_path, small_config):
    path = save_checkpoint(tmp_path / "c.pt", seeded_model(small_config))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="c.pt"):
        load_checkpoint(path)


def test_other_architecture_refused(tmp_path, small_config):
    path = save_checkpoint(tmp_path / "c.pt", seeded_model(small_config))
    payload = torch.load(path, weights_only=True)
    payload["config"]["encoder"] = [4, 8, 16]  # config no longer matches the stored weights
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path)


def test_nan_weights_refused(tmp_path, small_config):
    model = seeded_model(small_config)
    with torch.no_grad():
        model.synapses["enc0"].weight[0, 0, 0, 0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "c.pt", model)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(path)


def test_unknown_config_key(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", seeded_model(UNetConfig(encoder=(4, 8), decoder=(4, 4))))
    payload = torch.load(path, weights_only=True)
    payload["config"]["depth_of_field"] = 3
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unknown U-Net config"):
        load_checkpoint(path)
