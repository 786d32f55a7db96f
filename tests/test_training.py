"""Conversion fidelity, fine-tuning progress, resumable deterministic training, config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.training.ann import AnnUNet
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.conversion import convert
from spikereg_deploy.training.losses import spike_rate
from spikereg_deploy.training.train import LearnedThresholds, TrainConfig, train, training_step
from spikereg_deploy.unet import UNetConfig

SMALL = {"encoder": [4, 8, 8], "decoder": [8, 4, 4], "time_steps": 3}


def _smooth_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, size, size, size, generator=gen)
    return torch.nn.functional.avg_pool3d(x, 5, 1, 2)


@pytest.mark.slow
def test_conversion_preserves_teacher_at_large_t():
    """At T=32 the converted SNN's displacement tracks the teacher's: correlation > 0.9 (stated tolerance)."""
    torch.manual_seed(0)
    ann = AnnUNet(UNetConfig(encoder=(8, 16, 16), decoder=(16, 8, 8), time_steps=32))
    torch.nn.init.normal_(ann.convs["readout"].weight, std=0.05)
    images = _smooth_images(2)
    snn, report = convert(ann, images)
    with torch.no_grad():
        teacher, student = ann(images), snn(images).displacement
    corr = np.corrcoef(teacher.flatten(), student.flatten())[0, 1]
    assert corr > 0.9, corr
    for row in report:  # calibration hits each layer's target rate
        assert abs(row.rate - row.target_rate) < 0.02, row
    for w in snn.integer_weights().values():
        assert fx.check_weight_mantissa(w) is None


def test_connection_vs_layer_normalisation_differ_on_skip_layers():
    torch.manual_seed(1)
    ann = AnnUNet(UNetConfig(**{**SMALL, "encoder": (4, 8, 8)}))
    images = _smooth_images(2, seed=1)
    a, _ = convert(ann, images, normalisation="connection", bisection_steps=3)
    b, _ = convert(ann, images, normalisation="layer", bisection_steps=3)
    assert not np.array_equal(a.integer_weights()["dec1"], b.integer_weights()["dec1"])
    np.testing.assert_array_equal(a.integer_weights()["enc1"], b.integer_weights()["enc1"])


def test_fine_tuning_lowers_the_loss_and_stays_exportable():
    torch.manual_seed(2)
    ann = AnnUNet(UNetConfig(**SMALL))
    images = _smooth_images(2, seed=2)
    snn, _ = convert(ann, images, bisection_steps=4)
    snn.train()
    cfg = TrainConfig(stage="snn", lr=3e-3, sparsity_weight=0.1, reg_weight=0.1, ncc_window=5)
    opt = torch.optim.Adam(snn.parameters(), lr=cfg.lr)
    fixed, moving = images[:, :1], images[:, 1:]
    losses = [float(training_step(snn, opt, fixed, moving, cfg)[0]) for _ in range(8)]
    assert min(losses[-3:]) < losses[0]
    weights = snn.integer_weights()
    for w in weights.values():
        assert fx.check_weight_mantissa(w) is None
    image = images[0].numpy()
    with torch.no_grad():
        result = snn.eval()(images[:1])
    run = IntegerNetwork(snn.spec, weights).run(image, record_spikes=True)
    for name, spikes in result.spikes.items():  # the trained model is exactly what gets exported
        np.testing.assert_array_equal(np.moveaxis(spikes[0].numpy() > 0, -1, 0), np.stack(run.spikes[name]))


def _gaps_while_fine_tuning(distill_weight: float, steps: int = 20) -> list[float]:
    """SNN-teacher displacement gap (quantized eval model, voxels^2) after each fine-tuning step."""
    torch.manual_seed(3)
    ann = AnnUNet(UNetConfig(**SMALL)).eval()
    torch.nn.init.normal_(ann.convs["readout"].weight, std=0.05)
    images = _smooth_images(2, seed=3)
    snn, _ = convert(ann, images, bisection_steps=4)
    cfg = TrainConfig(stage="snn", lr=3e-3, reg_weight=0.0, distill_weight=distill_weight, ncc_window=5)
    opt = torch.optim.Adam(snn.parameters(), lr=cfg.lr)
    gaps = []
    for _ in range(steps):
        training_step(snn.train(), opt, images[:, :1], images[:, 1:], cfg, teacher=ann)
        with torch.no_grad():
            gaps.append(float((snn.eval()(images).displacement - ann(images)).pow(2).mean()))
    return gaps


@pytest.mark.slow
def test_distillation_keeps_the_snn_near_its_teacher():
    """NCC alone lets the fine-tuned SNN drift from the teacher; the distillation term pulls it back below
    where conversion left it (the quantized weights move only once a level is crossed, hence 20 steps)."""
    plain, distilled = _gaps_while_fine_tuning(0.0), _gaps_while_fine_tuning(1000.0)
    assert plain[-1] > 1.5 * plain[0]
    assert distilled[-1] < 0.6 * plain[-1] and distilled[-1] < distilled[0]


def test_readout_gain_learns_from_the_loss_and_is_exported(tmp_path):
    """The gain follows the registration loss (a larger diffusion weight shrinks it) and travels with the model."""
    torch.manual_seed(4)
    ann = AnnUNet(UNetConfig(**SMALL)).eval()
    torch.nn.init.normal_(ann.convs["readout"].weight, std=0.05)
    images = _smooth_images(2, seed=4)
    snn, _ = convert(ann, images, bisection_steps=4)
    start = snn.config.readout_gain
    cfg = TrainConfig(stage="snn", lr=1e-6, reg_weight=1e4, gain_lr=0.05, ncc_window=5)
    log_gain = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([{"params": list(snn.parameters())}, {"params": [log_gain], "lr": cfg.gain_lr}], lr=cfg.lr)
    for _ in range(5):
        _, parts = training_step(snn.train(), opt, images[:, :1], images[:, 1:], cfg, log_gain=log_gain)
    assert parts["readout_gain"] == snn.config.readout_gain < 0.85 * start  # diffusion dominates: shrink
    assert snn.spec.readout_scale == snn.config.readout_gain / 64
    save_checkpoint(tmp_path / "g.pt", snn)
    assert load_checkpoint(tmp_path / "g.pt").spec.readout_scale == snn.spec.readout_scale


def test_learned_thresholds_follow_the_loss_and_stay_exact(tmp_path):
    """Zero probes leave the forward pass bit-identical, and a probe's gradient is exactly that of a common scale
    on its layer's weights (sum of -w * dL/dw: a higher threshold spikes like smaller weights). Training lowers the
    rate under a dominant sparsity term; learned thresholds are exported on the mantissa grid and the integer engine
    still matches spike for spike."""
    torch.manual_seed(6)
    ann = AnnUNet(UNetConfig(**SMALL)).eval()
    images = _smooth_images(2, seed=6)
    snn, _ = convert(ann, images, bisection_steps=4)
    probes = LearnedThresholds(snn)
    with torch.no_grad():
        plain, probed = snn.eval()(images), snn(images, threshold_probes=probes)
    assert torch.equal(plain.readout_sum, probed.readout_sum)
    assert all(torch.equal(plain.spikes[n], probed.spikes[n]) for n in plain.spikes)
    result = snn.train()(images, threshold_probes=probes)
    (result.displacement.pow(2).mean() + spike_rate(result.spikes)).backward()
    for name, probe in probes.items():
        syn = snn.synapses[name]
        scale_grad = -float((syn.quantized_weight().detach().double() * syn.weight.grad.double()).sum())
        assert float(probe.grad) == pytest.approx(scale_grad, rel=1e-4, abs=1e-9), name
    snn.zero_grad()
    start = {n: snn.threshold_of(n) for n in probes}
    cfg = TrainConfig(stage="snn", lr=1e-6, reg_weight=0.0, sparsity_weight=100.0, threshold_lr=0.05, ncc_window=5)
    opt = torch.optim.Adam([{"params": list(snn.parameters())},
                            {"params": list(probes.values()), "lr": cfg.threshold_lr}], lr=cfg.lr)
    rates = [float(training_step(snn.train(), opt, images[:, :1], images[:, 1:], cfg, thresholds=probes)[1]
                   ["spike_rate"]) for _ in range(6)]
    assert rates[-1] < 0.95 * rates[0]
    for name in probes:
        assert snn.threshold_of(name) != start[name], name
        assert snn.spec.layer(name).neuron.vth_mant == int(snn.threshold_of(name) * 64)
    save_checkpoint(tmp_path / "t.pt", snn)
    loaded = load_checkpoint(tmp_path / "t.pt").eval()
    with torch.no_grad():
        result = loaded(images[:1])
    run = IntegerNetwork(loaded.spec, loaded.integer_weights()).run(images[0].numpy(), record_spikes=True)
    for name, spikes in result.spikes.items():
        np.testing.assert_array_equal(np.moveaxis(spikes[0].numpy() > 0, -1, 0), np.stack(run.spikes[name]))


def test_distillation_needs_an_ann_teacher(tmp_path):
    with pytest.raises(SpikeRegError, match="distill_weight is for stage snn"):
        TrainConfig(stage="ann", distill_weight=1.0).validate()
    with pytest.raises(SpikeRegError, match=">= 0"):
        TrainConfig(stage="snn", distill_weight=-1.0).validate()
    with pytest.raises(SpikeRegError, match="are for stage snn"):
        TrainConfig(stage="ann", gain_lr=0.01).validate()
    with pytest.raises(SpikeRegError, match="are for stage snn"):
        TrainConfig(stage="ann", threshold_lr=0.01).validate()
    with pytest.raises(SpikeRegError, match=">= 0"):
        TrainConfig(stage="snn", threshold_lr=-0.01).validate()


@pytest.mark.parametrize("how", ["interrupted", "extended"])
def test_training_resumes_deterministically(tmp_path, how):
    """An interrupted run, or a finished run given more steps, ends exactly where a straight run does."""
    cfg = TrainConfig(stage="ann", model=SMALL, shape=(16, 16, 16), steps=4, batch_size=1, checkpoint_every=2)
    train(cfg, tmp_path / "straight.pt", progress=False, log=lambda m: None)
    half = TrainConfig(**{**cfg.__dict__, "steps": 2})
    train(half, tmp_path / "resumed.pt", progress=False, log=lambda m: None)
    if how == "interrupted":
        payload = torch.load(tmp_path / "resumed.pt", weights_only=True)
        payload["training_state"]["finished"] = False
        torch.save(payload, tmp_path / "resumed.pt")
    messages: list[str] = []
    train(half, tmp_path / "resumed.pt", progress=False, log=messages.append)
    assert how == "interrupted" or "nothing to do" in messages[-1]
    train(cfg, tmp_path / "resumed.pt", progress=False, log=lambda m: None)
    a = load_checkpoint(tmp_path / "straight.pt", kind="ann").state_dict()
    b = load_checkpoint(tmp_path / "resumed.pt", kind="ann").state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("stage = 'ann'\n[optim]\nstepz = 3\n")
    with pytest.raises(SpikeRegError, match="stepz"):
        TrainConfig.from_toml(bad)
    with pytest.raises(SpikeRegError, match="no such"):
        TrainConfig.from_toml(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("stage = \n")
    with pytest.raises(SpikeRegError, match="broken.toml"):
        TrainConfig.from_toml(broken)
    odd = tmp_path / "odd.toml"
    odd.write_text("stage = 'snn'\n[model]\nencoder = [4, 8, 16]\ndecoder = [8]\n")
    with pytest.raises(SpikeRegError, match="decoder"):
        TrainConfig.from_toml(odd)


def test_zero_steps_means_convert_only():
    TrainConfig(stage="snn", steps=0, init="ann.pt").validate()
    with pytest.raises(SpikeRegError, match="convert only"):
        TrainConfig(stage="ann", steps=0).validate()
    with pytest.raises(SpikeRegError, match=r"key 'steps' in \[optim\] must be an integer >= 0, got -1"):
        TrainConfig(stage="snn", steps=-1).validate()


def test_resuming_with_a_changed_gain_lr_is_a_clean_error(tmp_path):
    torch.manual_seed(5)
    snn, _ = convert(AnnUNet(UNetConfig(**SMALL)), _smooth_images(1, seed=5), bisection_steps=2)
    save_checkpoint(tmp_path / "init.pt", snn)
    cfg = TrainConfig(stage="snn", model=SMALL, shape=(16, 16, 16), steps=1, batch_size=1,
                      init=str(tmp_path / "init.pt"))
    train(cfg, tmp_path / "run.pt", progress=False, log=lambda m: None)
    extended = TrainConfig(**{**cfg.__dict__, "steps": 2, "gain_lr": 0.01})
    with pytest.raises(SpikeRegError, match="threshold_lr changed"):
        train(extended, tmp_path / "run.pt", progress=False, log=lambda m: None)
