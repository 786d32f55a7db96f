"""The energy of an accuracy: spikereg-evaluate prices the events of the very runs it scores, with the same numbers
spikereg-simulate + spikereg-energy give for one pair; the frontier's variants parse and build."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from spikereg_deploy.cli.evaluate_cli import main as evaluate_main
from spikereg_deploy.energy.accuracy import ENERGY_FIELDS, energy_at_accuracy
from spikereg_deploy.energy.report import build_energy_report
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.imaging.synthetic import embedded_pairs
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.predict import IntegerEnginePredictor
from spikereg_deploy.simulators.simulation import SimulationResult, build_report
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.predict import SnnPredictor
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.training.variants import NEURONS, Variant, build_variant


@pytest.fixture
def bias_sr_model(small_config):
    return seeded_model(dataclasses.replace(small_config, neuron_model="CUBA-SR", current_decay=1.0,
                                            voltage_decay=0.0, half_threshold_start=True, input_mode="bias"), seed=3)


def test_slayer_counts_equal_the_engines_and_price_the_same(bias_sr_model):
    profile = load_profile("loihi2")
    pairs = embedded_pairs(2, shape=(16, 16, 16), seed=0)
    snn = SnnPredictor(bias_sr_model, "small")
    engine = IntegerEnginePredictor(bias_sr_model.spec, bias_sr_model.integer_weights(), "small (engine)")
    for pair in pairs:
        snn.predict(pair.fixed, pair.moving)
        engine.predict(pair.fixed, pair.moving)
    for (_, a), (_, b) in zip(snn.tally.inferences, engine.tally.inferences, strict=True):
        assert {n: c.to_dict() for n, c in a.items()} == {n: c.to_dict() for n, c in b.items()}
    fields = energy_at_accuracy(snn.tally, bias_sr_model.spec, profile, "slayer")
    assert fields == energy_at_accuracy(engine.tally, bias_sr_model.spec, profile, "slayer")
    # by hand: one energy report per pair (what spikereg-simulate + spikereg-energy write), then the mean
    spec, weights = bias_sr_model.spec, bias_sr_model.integer_weights()
    summaries = []
    for pair in pairs:
        run = IntegerNetwork(spec, weights).run(np.stack([pair.fixed, pair.moving]))
        result = SimulationResult(run.displacement, run.counts, run.time_steps, run.time_steps, "reference",
                                  "fixed_pt", 0.0)
        summaries.append(build_energy_report(build_report(result, spec, (16, 16, 16)), spec, profile)["summary"])
    for key in ENERGY_FIELDS:
        if key == "event_cost_model":
            assert fields[key] == summaries[0][key] == "int_mac"
            continue
        expected = np.mean([s[key] for s in summaries])
        if key.startswith("ratio_"):  # a ratio of mean energies, not a mean of ratios
            e_snn = np.mean([s["ann_macs"] * 4.6 / s[key] for s in summaries])
            expected = summaries[0]["ann_macs"] * 4.6 / e_snn
        assert fields[key] == pytest.approx(expected, rel=1e-12), key
    assert fields["analog_macs"] == summaries[0]["analog_macs"] > 0  # bias: once per inference
    assert fields["inferences"] == 2


def test_evaluate_reports_the_fields_and_prints_them(tmp_path, bias_sr_model, capsys):
    path = tmp_path / "m.pt"
    save_checkpoint(path, bias_sr_model, meta={"stage": "snn"})
    assert evaluate_main([str(path), "--pairs", "2", "--input-shape", "16", "16", "16", "-o", str(tmp_path / "e")]
                         ) == 0
    doc = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert set(ENERGY_FIELDS) <= set(doc["energy"]) and doc["energy"]["inferences"] == 2
    assert all(doc["energy"]["units"][k] for k in ENERGY_FIELDS)
    out = capsys.readouterr().out
    assert "(measured counts, 45 nm proxy)" in out and "uJ per inference (projected" in out


def test_variant_names_round_trip_and_bad_ones_are_one_line():
    v = Variant.parse("qcfs4:if-sr-half:bias:4:ft20")
    assert (v.teacher, v.neuron, v.input_mode, v.time_steps, v.fine_tune_steps) == ("qcfs4", "if-sr-half", "bias",
                                                                                     4, 20)
    assert Variant.parse(v.name) == v and v.model_keys()["half_threshold_start"] is True
    for bad in ("relu:lif:bias:4", "relu:cuba:dense:4", "relu:cuba:bias:0", "relu:cuba:bias"):
        with pytest.raises(SpikeRegError, match="TEACHER:NEURON:INPUT:T"):
            Variant.parse(bad)
    assert set(NEURONS) == {"cuba", "if-sr", "if-sr-half", "mt", "sd"}


@pytest.mark.slow
def test_build_variant_converts_then_fine_tunes_and_caches(tmp_path, small_config):
    from spikereg_deploy.training.ann import AnnUNet

    teacher = tmp_path / "t.pt"
    save_checkpoint(teacher, AnnUNet(dataclasses.replace(small_config, activation="qcfs", activation_levels=2)),
                    meta={"stage": "ann"})
    variant = Variant.parse("q:if-sr-half:bias:2:ft1")
    path = build_variant(variant, teacher, tmp_path / "v", (16, 16, 16), {"accumulate": 2})
    model = load_checkpoint(path, kind="snn")
    assert model.spec.input_mode == "bias" and model.config.time_steps == 2
    assert model.config.activation == "qcfs" and model.config.half_threshold_start
    mtime = path.stat().st_mtime_ns
    assert build_variant(variant, teacher, tmp_path / "v", (16, 16, 16), {"accumulate": 2}) == path
    assert path.stat().st_mtime_ns == mtime  # cached: a finished run is not redone
