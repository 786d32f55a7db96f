"""Converting a QCFS teacher to the sigma-delta U-Net (variant neuron `sd`): thresholds from the teacher's step,
activations in their own scale, the readout gain that the T-step sum of deltas needs, and a short fine-tune through
the sigma-delta training module."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_qcfs import _qcfs_teacher

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.training import conversion
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.variants import Variant, build_variant

LEVELS = 8


@pytest.fixture(scope="module")
def teacher():
    return _qcfs_teacher(LEVELS)


@pytest.mark.parametrize(("input_mode", "time_steps"), [("bias", 1), ("bias", 3), ("analog", 2)])
def test_conversion_thresholds_scales_and_readout_gain(teacher, monkeypatch, input_mode, time_steps):
    ann, images = teacher
    fitted: list[tuple[float, float]] = []
    fit = conversion._fit_readout_gain

    def record_fit(snn, calibration, target):  # the gain conversion sets, then the least-squares one
        before = snn.config.readout_gain
        fit(snn, calibration, target)
        fitted.append((before, snn.config.readout_gain))

    monkeypatch.setattr(conversion, "_fit_readout_gain", record_fit)
    config = dataclasses.replace(ann.config, neuron_model="SDNN", input_mode=input_mode, time_steps=time_steps)
    snn, report = conversion.convert(ann, images, snn_config=config)
    assert {layer.neuron.netx_type for layer in snn.spec.layers if layer.neuron is not None} == {"SDNN"}
    for row in report:
        assert 0 < row.weight_scale <= conversion.SD_ACTIVATION_MAX
        mant = max(1, int(np.floor(0.5 * row.weight_scale / LEVELS * 64)))  # half the teacher's step
        assert row.threshold == mant / 64 == snn.spec.layer(row.name).neuron.vth_mant / 64
        # the payloads summed over T carry the layer's normalised activation (T x it with the analog ramp)
        ramp = time_steps if input_mode == "analog" else 1
        assert abs(row.rate / ramp - row.target_rate) < 0.04, row
    (before, after), = fitted
    assert after == pytest.approx(before, rel=0.1)  # the readout-gain rule is right; the fit only refines it
    with torch.no_grad():
        want = ann(images)
        result = snn(images)
        got = result.displacement
    peak = max(float(spikes.abs().max()) for spikes in result.spikes.values())
    # the unclipped peaks kept near half the 16-bit message (the float teacher's estimate; 8-bit weights move it)
    assert 4096 < peak <= 1.25 * conversion.SD_PEAK * 4096 < 32767
    assert float((got - want).norm() / want.norm()) < 0.3  # CUBA-MT at T = 1 on this teacher: 0.18; SDNN 0.20


def test_threshold_learning_is_refused_for_sigma_delta(tmp_path, teacher):
    ann, _ = teacher
    teacher_path = tmp_path / "qcfs.pt"
    save_checkpoint(teacher_path, ann)
    with pytest.raises(SpikeRegError, match="^threshold_lr: .*a sigma-delta threshold is not such a scale"):
        build_variant(Variant.parse("q:sd:bias:1:ft1"), teacher_path, tmp_path / "v", (16, 16, 16),
                      {"threshold_lr": 0.01})


@pytest.mark.slow
def test_variant_sd_converts_and_fine_tunes(tmp_path, teacher):
    ann, _ = teacher
    teacher_path = tmp_path / "qcfs.pt"
    save_checkpoint(teacher_path, ann)
    variant = Variant.parse("qcfs8:sd:bias:1:ft2")
    assert variant.model_keys() == {"neuron_model": "SDNN", "input_mode": "bias"}
    converted = build_variant(Variant.parse("qcfs8:sd:bias:1"), teacher_path, tmp_path / "v", (16, 16, 16), {})
    tuned = build_variant(variant, teacher_path, tmp_path / "v", (16, 16, 16), {"lr": 1e-3})
    before, after = load_checkpoint(converted), load_checkpoint(tuned)
    assert after.config.neuron_model == "SDNN" and after.config.time_steps == 1 and after.spec.input_mode == "bias"
    moved = [name for name, syn in after.synapses.items()
             if not torch.equal(syn.weight, before.synapses[name].weight)]
    assert set(moved) == set(after.synapses)  # the sigma-delta module's gradient reached every layer's weights
