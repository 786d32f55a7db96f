"""The QCFS teacher (clip-floor-shift, L levels, trainable clips) and its conversion to soft-reset neurons.

What is exact is tested as exact: the activation's values, the soft-reset IF neuron's spike count against the QCFS
level for a constant current (ties by the strict `>` included), CUBA-SR with input-as-bias in three engines. What is
approximate (rates of deeper layers at T = L) is measured against a stated tolerance.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.neurons import SoftResetNeuron
from spikereg_deploy.training.ann import AnnUNet
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.conversion import convert
from spikereg_deploy.training.qcfs import QcfsActivation, qcfs
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig

#: QCFS's IF neuron as CUBA-SR: no current memory, no leak, membrane starting at half the threshold.
IF_HALF = {"neuron_model": "CUBA-SR", "current_decay": 1.0, "voltage_decay": 0.0, "half_threshold_start": True}


def test_qcfs_values_and_straight_through_gradient():
    x = torch.tensor([-1.0, 0.1, 0.124, 0.126, 0.5, 0.9, 2.0], requires_grad=True)
    clip = torch.tensor(1.0, requires_grad=True)
    y = qcfs(x, clip, 4)  # levels at 0, 1/4, ..., 1; floor(4x + 1/2) rounds to the nearest level
    assert y.tolist() == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # straight through inside the clip only
    # d/dclip: q - x/clip inside (0, clip), 1 above it, 0 below
    expected = sum([0.0, 0.0 - 0.1, 0.0 - 0.124, 0.25 - 0.126, 0.0, 1.0 - 0.9, 1.0])
    assert float(clip.grad) == pytest.approx(expected, abs=1e-6)


def test_levels_must_be_positive():
    with pytest.raises(ValueError, match="levels must be >= 1"):
        QcfsActivation(0)
    with pytest.raises(SpikeRegError, match="activation_levels >= 1"):
        UNetConfig(activation="qcfs", activation_levels=0)
    with pytest.raises(SpikeRegError, match="activation must be one of relu, qcfs"):
        UNetConfig(activation="gelu")


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_soft_reset_if_counts_the_qcfs_level_of_a_constant_current(levels):
    """The identity conversion rests on: T = L steps of a constant integer current I into CUBA-SR (IF, half start,
    threshold theta) fire clamp(floor(L I / theta + 1/2), 0, L) times, but one fewer on an exact tie."""
    neuron = SoftResetNeuron(4096, 0, vth_mant=64, half_threshold_start=True)
    theta = 64  # a_in is in mantissa units: I / theta is the normalised activation
    currents = np.arange(-10, 3 * theta + 1)
    state = neuron.init_state(currents.shape, np)
    count = np.zeros(currents.shape, dtype=np.int64)
    for _ in range(levels):
        state, spikes = neuron.step(state, currents)
        count += spikes
    exact = currents * levels / theta + 0.5
    level = np.clip(np.floor(exact), 0, levels).astype(np.int64)
    tie = (exact == np.floor(exact)) & (level > 0) & (currents * levels < theta * (levels + 0.5))
    np.testing.assert_array_equal(count, level - tie)
    assert tie.any() and (~tie).sum() > 100


def _qcfs_teacher(levels: int, seed: int = 3) -> tuple[AnnUNet, torch.Tensor]:
    torch.manual_seed(seed)
    ann = AnnUNet(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=levels, activation="qcfs",
                             activation_levels=levels)).eval()
    images = torch.nn.functional.avg_pool3d(torch.rand(2, 2, 16, 16, 16, generator=torch.Generator().manual_seed(2)),
                                            3, 1, 1)
    with torch.no_grad():  # clips at the ReLU activations' 99th percentile, as a fine-tune from a ReLU teacher
        _, acts = ann(images, return_activations=True)
        for name, act in ann.activations.items():
            act.set_clip(float(torch.quantile(acts[name].flatten(), 0.99)) + 1e-3)
    return ann, images


def test_conversion_maps_clips_to_thresholds_and_first_layer_reproduces_the_teacher():
    ann, images = _qcfs_teacher(4)
    snn, report = convert(ann, images, snn_config=dataclasses.replace(ann.config, **IF_HALF))
    assert all(r.threshold == r.weight_scale and (r.threshold * 64).is_integer() for r in report)
    assert [r.percentile_activation for r in report] == [pytest.approx(c) for c in ann.clips().values()]
    with torch.no_grad():
        _, acts = ann(images, return_activations=True)
        rates = snn(images).spikes
    # enc0 sees a constant current: its spike counts are the teacher's levels up to 8-bit weight/input rounding
    level = (acts["enc0"] / ann.clips()["enc0"] * 4).round()
    count = rates["enc0"].sum(-1)
    assert float((count == level).float().mean()) > 0.97
    # deeper layers: rates x clip track the quantized teacher's mean activation (stated tolerance: 0.05 in rate)
    for row in report:
        assert abs(row.rate - row.target_rate) < 0.05, row


def test_reset_to_zero_from_a_qcfs_teacher_calibrates():
    ann, images = _qcfs_teacher(4)
    snn, report = convert(ann, images, bisection_steps=4)  # the teacher's own neuron: CUBA, reset to zero
    assert any(r.threshold != r.weight_scale for r in report)


def test_architecture_must_be_the_teachers():
    ann, images = _qcfs_teacher(2)
    with pytest.raises(SpikeRegError, match="must be the teacher's"):
        convert(ann, images, snn_config=dataclasses.replace(ann.config, encoder=(4, 8, 16)))


def test_qcfs_teacher_checkpoint_round_trip(tmp_path):
    ann, images = _qcfs_teacher(4)
    path = tmp_path / "qcfs.pt"
    save_checkpoint(path, ann, meta={"stage": "ann"})
    back = load_checkpoint(path, kind="ann")
    assert back.clips() == ann.clips() and back.config.activation == "qcfs"
    with torch.no_grad():
        torch.testing.assert_close(back(images), ann(images), rtol=0, atol=0)


# -- CUBA-SR with input as bias --------------------------------------------------------------------------------
def test_soft_reset_biased_step_by_hand():
    """IF, half start at 320, threshold 640, bias 5 << 6 = 320 plus input 2 << 6 = 128 per step."""
    neuron = SoftResetNeuron(4096, 0, vth_mant=10, half_threshold_start=True)
    state = neuron.init_state((1,), np)
    trace = []
    for _ in range(4):
        state, spikes = neuron.step_biased(state, np.array([2]), np.array([5]))
        trace.append((int(state[1][0]), bool(spikes[0])))
    # 320 + 448 = 768 > 640: 128; 576; 1024 > 640: 384; 832 > 640: 192
    assert trace == [(128, True), (576, False), (384, True), (192, True)]


@pytest.mark.lava
@pytest.mark.slow
def test_soft_reset_bias_unet_bit_exact_in_three_engines(small_config):
    model = seeded_model(dataclasses.replace(small_config, **IF_HALF, input_mode="bias"), seed=5)
    image = np.random.default_rng(1).random((2, 8, 12, 16)).astype(np.float32)
    ref = assert_three_engines_agree(model, image)
    assert ref.counts["enc0"].input_macs > 0 and ref.counts["enc0"].input_spikes == 0


def test_soft_reset_bias_equals_analog_for_if_neurons(small_config):
    """With iDecay 4096 the analog current enters v in the same step: bias and analog give the same spikes, and
    the bias path pays the input MACs once instead of T times."""
    image = np.random.default_rng(4).random((2, 8, 8, 8)).astype(np.float32)
    weights = seeded_model(dataclasses.replace(small_config, **IF_HALF), seed=5).integer_weights()
    runs = {mode: IntegerNetwork(seeded_model(dataclasses.replace(small_config, **IF_HALF, input_mode=mode),
                                              seed=5).spec, weights).run(image) for mode in ("analog", "bias")}
    assert [c.spikes_per_step for c in runs["bias"].counts.values()] == \
        [c.spikes_per_step for c in runs["analog"].counts.values()]
    assert runs["bias"].counts["enc0"].input_macs * small_config.time_steps == runs["analog"].counts["enc0"].input_macs


# -- the training CLI ----------------------------------------------------------------------------------------
def _train(tmp_path, toml: str, out: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / f"{out}.toml"
    cfg.write_text(toml)
    return subprocess.run([sys.executable, "-m", "spikereg_deploy.cli.train_cli", "--config", str(cfg), "-o",
                           str(tmp_path / out)], capture_output=True, text=True, cwd=tmp_path)


SMALL = 'shape = [16, 16, 16]\n[model]\nencoder = [4, 8]\ndecoder = [8, 4]\n'


@pytest.mark.slow
def test_relu_teacher_fine_tuned_into_qcfs_then_converted(tmp_path):
    relu = _train(tmp_path, f'stage = "ann"\n{SMALL}[optim]\nsteps = 2\n', "relu.pt")
    assert relu.returncode == 0, relu.stderr
    q = _train(tmp_path, f'stage = "ann"\ninit = "relu.pt"\n{SMALL}activation = "qcfs"\nactivation_levels = 4\n'
                         '[optim]\nsteps = 2\n', "qcfs.pt")
    assert q.returncode == 0, q.stderr
    assert "QCFS clips from relu.pt" in q.stderr
    teacher = load_checkpoint(tmp_path / "qcfs.pt", kind="ann")
    assert teacher.config.activation_levels == 4 and all(c > 0 for c in teacher.clips().values())
    snn = _train(tmp_path, 'stage = "snn"\ninit = "qcfs.pt"\nshape = [16, 16, 16]\n[model]\n'
                           'neuron_model = "CUBA-SR"\ncurrent_decay = 1.0\nvoltage_decay = 0.0\n'
                           'half_threshold_start = true\ninput_mode = "bias"\n'
                           '[conversion]\ntime_steps = 4\ncalibration_pairs = 2\n[optim]\nsteps = 0\n', "snn.pt")
    assert snn.returncode == 0, snn.stderr
    model = load_checkpoint(tmp_path / "snn.pt", kind="snn")
    assert model.spec.input_mode == "bias" and model.config.time_steps == 4
    assert {model.spec.layer(n).neuron.vth_mant for n in model.neurons} == \
        {int(round(model.threshold_of(n) * 64)) for n in model.neurons}


@pytest.mark.parametrize(("model_keys", "message"), [
    ('activation = "qcfs"\nactivation_levels = 0\n', "activation_levels >= 1"),
    ('activation = "qcfs"\n', "activation_levels >= 1"),
    ('activation_levels = 4\n', "activation_levels is for activation 'qcfs'"),
])
def test_bad_levels_one_line_exit_2(tmp_path, model_keys, message):
    run = _train(tmp_path, f'stage = "ann"\n{SMALL}{model_keys}[optim]\nsteps = 1\n', "bad.pt")
    assert run.returncode == 2 and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "bad.pt.toml" in run.stderr


def test_conversion_keeps_the_architecture_one_line(tmp_path):
    relu = _train(tmp_path, f'stage = "ann"\n{SMALL}[optim]\nsteps = 1\n', "relu.pt")
    assert relu.returncode == 0, relu.stderr
    run = _train(tmp_path, 'stage = "snn"\ninit = "relu.pt"\nshape = [16, 16, 16]\n[model]\nencoder = [4, 16]\n'
                           '[optim]\nsteps = 0\n', "snn.pt")
    assert run.returncode == 2 and "encoder = [4, 16] differs from the teacher's" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
