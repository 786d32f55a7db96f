"""checkpoint -> .net -> reader -> integer engine equals the checkpoint's quantized model, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy.cli import export_cli
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.snn import exact_displacement, seeded_model


@pytest.mark.parametrize("which", ["default", "small"])
def test_checkpoint_net_reader_bit_identical(tmp_path, which, small_config, pair16):
    model = seeded_model(None if which == "default" else small_config, seed=11)
    ckpt = save_checkpoint(tmp_path / "m.pt", model)
    net = tmp_path / "m.net"
    assert export_cli.main([str(ckpt), "-o", str(net), "--input-shape", "16", "16", "16"]) == 0
    loaded = read_net(net)
    restored = load_checkpoint(ckpt)
    with torch.no_grad():
        result = restored(torch.as_tensor(pair16)[None])
    run = IntegerNetwork(loaded.spec, loaded.weights).run(pair16, record_spikes=True)
    for name, spikes in result.spikes.items():
        np.testing.assert_array_equal(np.moveaxis(spikes[0].numpy() > 0, -1, 0), np.stack(run.spikes[name]))
    np.testing.assert_array_equal(exact_displacement(result, restored.spec)[0], run.displacement)
    assert loaded.spec == model.spec


def test_export_cli_errors(tmp_path, capsys):
    out = tmp_path / "x.net"
    assert export_cli.main([str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err and not out.exists()
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    assert export_cli.main([str(junk), "-o", str(out)]) == 2
    assert "junk.pt" in capsys.readouterr().err and not out.exists()
    assert export_cli.main(["--check", str(junk)]) == 2
    assert "junk.pt" in capsys.readouterr().err
    assert export_cli.main(["-o", str(out), "--input-shape", "12", "16", "16"]) == 2
    assert not out.exists() and not list(tmp_path.glob(".x.net*"))


def test_export_default_and_check(tmp_path, capsys):
    out = tmp_path / "d.net"
    assert export_cli.main(["-o", str(out), "--input-shape", "16", "16", "16"]) == 0
    captured = capsys.readouterr()
    assert "embedded trained model" in captured.err  # the committed model, not the seeded fallback
    assert export_cli.main(["--check", str(out)]) == 0
    table = capsys.readouterr().out
    assert "dec1" in table and "enc2(3)" in table  # skip input with its axonal delay
