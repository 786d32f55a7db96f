"""Predictors: the ANN, the SNN and the integer engine behind one interface give what the direct calls give."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy.cli.common import load_predictor
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import CheckpointError
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.predict import IntegerEnginePredictor, Predictor, SpikeTally
from spikereg_deploy.training import predict as torch_predict
from spikereg_deploy.training.ann import AnnUNet
from spikereg_deploy.training.checkpoint import save_checkpoint
from spikereg_deploy.training.snn import exact_displacement, seeded_model


@pytest.fixture
def models(small_config):
    torch.manual_seed(3)
    return AnnUNet(small_config).eval(), seeded_model(small_config, seed=4).eval()


def direct(model, pair16):
    with torch.no_grad():
        return model(torch.as_tensor(pair16)[None])


def test_ann_and_snn_predictors_equal_the_direct_forward(models, pair16):
    ann, snn = models
    ann_p, snn_p = torch_predict.AnnPredictor(ann, "ann"), torch_predict.SnnPredictor(snn, "snn")
    for predictor in (ann_p, snn_p):
        assert isinstance(predictor, Predictor)
    got_ann = ann_p.predict(pair16[0], pair16[1])
    assert got_ann.dtype == np.float64 and got_ann.shape == (3, 16, 16, 16)
    np.testing.assert_array_equal(got_ann, direct(ann, pair16)[0].double().numpy())
    out = direct(snn, pair16)
    np.testing.assert_array_equal(snn_p.predict(pair16[0], pair16[1]), out.displacement[0].double().numpy())
    assert ann_p.tally is None and ann_p.kind == "ann" and snn_p.kind == "snn"
    assert snn_p.tally.spikes == {name: int(s.sum()) for name, s in out.spikes.items()}


def test_engine_predictor_equals_the_engine_and_the_snn(models, pair16):
    _, snn = models
    engine_p = IntegerEnginePredictor(snn.spec, snn.integer_weights(), "engine")
    got = engine_p.predict(pair16[0], pair16[1])
    run = IntegerNetwork(snn.spec, snn.integer_weights()).run(pair16)
    np.testing.assert_array_equal(got, run.displacement)
    np.testing.assert_array_equal(got, exact_displacement(direct(snn, pair16), snn.spec)[0])  # three engines agree
    snn_p = torch_predict.SnnPredictor(snn, "snn")
    snn_p.predict(pair16[0], pair16[1])
    assert engine_p.tally == snn_p.tally  # same spikes, same neuron-steps, layer by layer
    assert engine_p.tally.rate() == pytest.approx(sum(c.spikes for c in run.counts.values())
                                                  / sum(n for n in engine_p.tally.neuron_steps.values()))


def test_tally_sums_over_calls_and_clears():
    tally = SpikeTally()
    assert tally.rate() is None
    tally.add("a", 3, 10)
    tally.add("a", 1, 10)
    tally.add("b", 0, 20)
    assert tally.rates() == {"a": 0.2, "b": 0.0} and tally.rate() == pytest.approx(0.1)
    tally.clear()
    assert tally.rate() is None and tally.rates() == {}


def test_load_predictor_picks_by_file_and_checkpoint_kind(tmp_path, models, pair16):
    ann, snn = models
    save_checkpoint(tmp_path / "a.pt", ann)
    save_checkpoint(tmp_path / "s.pt", snn)
    write_net(tmp_path / "s.net", snn.spec, snn.integer_weights(), (16, 16, 16))
    loaded = {name: load_predictor(tmp_path / name) for name in ("a.pt", "s.pt", "s.net")}
    assert {n: p.kind for n, p in loaded.items()} == {"a.pt": "ann", "s.pt": "snn", "s.net": "integer"}
    assert loaded["a.pt"].name == f"{tmp_path / 'a.pt'} (ANN teacher)"
    assert loaded["s.net"].name == f"{tmp_path / 's.net'} (integer engine)"
    np.testing.assert_array_equal(loaded["a.pt"].predict(pair16[0], pair16[1]),
                                  torch_predict.AnnPredictor(ann, "").predict(pair16[0], pair16[1]))
    np.testing.assert_array_equal(loaded["s.net"].predict(pair16[0], pair16[1]),
                                  exact_displacement(direct(snn, pair16), snn.spec)[0])
    default = load_predictor(None)
    assert default.kind == "snn" and ("embedded" in default.name or "seeded" in default.name)


def test_load_predictor_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_predictor(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
