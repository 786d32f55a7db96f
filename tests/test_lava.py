"""Lava fixed_pt runs equal the integer model spike for spike (pipeline shift removed), counts included."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.simulators.lava_builder import run_lava
from spikereg_deploy.training.snn import seeded_model


def _assert_same(spec, weights, image):
    ref = IntegerNetwork(spec, weights).run(image, record_spikes=True)
    lava = run_lava(spec, weights, image, record_spikes=True, progress=False)
    assert lava.run_steps == spec.run_steps == spec.time_steps + spec.pipeline_depth - (spec.input_mode == "bias")
    for name, steps in lava.spikes.items():
        np.testing.assert_array_equal(np.stack(steps), np.stack(ref.spikes[name]), err_msg=name)
    np.testing.assert_array_equal(lava.readout_sum, ref.readout_sum)
    np.testing.assert_array_equal(lava.displacement, ref.displacement)
    for name, c in ref.counts.items():
        got = lava.counts[name]
        assert (got.spikes, got.input_spikes, got.synops, got.input_macs, got.neuron_updates) == (
            c.spikes, c.input_spikes, c.synops, c.input_macs, c.neuron_updates), name
        assert got.synops_per_step == c.synops_per_step, name
        assert (got.graded_synops, got.payload_sum) == (c.graded_synops, c.payload_sum), name
    return ref, lava


def _assert_slayer_same(model, image, lava) -> None:
    """The quantized torch (SLAYER) model gives the same spikes as Lava."""
    with torch.no_grad():
        result = model.eval()(torch.as_tensor(image)[None])
    for name, steps in lava.spikes.items():  # spikes as 0/1, graded spikes as their payloads
        trained = np.moveaxis(result.spikes[name][0].numpy(), -1, 0)
        np.testing.assert_array_equal(trained, np.stack(steps).astype(trained.dtype))


@pytest.mark.lava
def test_default_unet_bit_exact_in_lava(pair16):
    model = seeded_model(seed=0)
    ref, lava = _assert_same(model.spec, model.integer_weights(), pair16)
    assert sum(c.spikes for c in ref.counts.values()) > 10_000
    _assert_slayer_same(model, pair16, lava)


@pytest.mark.lava
def test_small_net_odd_shape_bit_exact(small_config):
    model = seeded_model(small_config, seed=2)
    image = np.random.default_rng(1).random((2, 8, 12, 16)).astype(np.float32)
    _assert_same(model.spec, model.integer_weights(), image)


@pytest.mark.lava
def test_lava_synops_against_fanout_by_autograd(tiny_skip_net):
    """One stride-2 padded conv and one transposed conv: SynOps == recorded spikes x autograd fan-out."""
    spec, weights, rng = tiny_skip_net
    image = rng.random((1, 6, 8, 10)).astype(np.float32)
    ref, lava = _assert_same(spec, weights, image)
    geo = spec.geometry(image.shape[1:])
    for layer in spec.layers[2:]:
        expected = 0
        for src in layer.inputs:
            x = torch.ones((1, spec.channels_of(src), *geo[src].out_shape), dtype=torch.float64, requires_grad=True)
            if layer.kind == "convT":
                y = torch.nn.functional.conv_transpose3d(
                    x, torch.ones(spec.channels_of(src), layer.out_channels, *layer.kernel, dtype=torch.float64),
                    stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
            else:
                y = torch.nn.functional.conv3d(
                    x, torch.ones(layer.out_channels, spec.channels_of(src), *layer.kernel, dtype=torch.float64),
                    stride=layer.stride, padding=layer.padding)
            y.sum().backward()
            expected += int((np.stack(lava.spikes[src]) * x.grad[0].numpy()[None]).sum())
        assert lava.counts[layer.name].synops == expected, layer.name
        assert expected > 0


@pytest.mark.lava
def test_floating_pt_runs_and_tracks_fixed(pair16, small_config):
    model = seeded_model(small_config, seed=2)
    image = pair16[:, :8, :8, :8]
    fixed = run_lava(model.spec, model.integer_weights(), image, progress=False)
    floating = run_lava(model.spec, model.integer_weights(), image, tag="floating_pt", progress=False)
    assert floating.tag == "floating_pt" and floating.displacement.shape == fixed.displacement.shape
    assert np.isfinite(floating.displacement).all()
    corr = np.corrcoef(fixed.displacement.ravel(), floating.displacement.ravel())[0, 1]
    assert corr > 0.5


def test_unknown_tag_refused(small_config, pair16):
    from spikereg_deploy.errors import SpikeRegError

    model = seeded_model(small_config)
    with pytest.raises(SpikeRegError, match="tag"):
        run_lava(model.spec, model.integer_weights(), pair16, tag="loihi3")


@pytest.mark.lava
@pytest.mark.slow
def test_embedded_trained_model_bit_exact_in_lava(pair16):
    """The committed default model (graded CUBA-MT neurons, input as bias) is what Lava runs, payload for payload."""
    from spikereg_deploy.training.default_model import embedded_checkpoint_path, load_default_model

    assert embedded_checkpoint_path() is not None, "the trained default model is not installed with the package"
    model, description = load_default_model()
    assert description.startswith("embedded trained model")
    ref, lava = _assert_same(model.spec, model.integer_weights(), pair16)
    assert sum(c.spikes for c in ref.counts.values()) > 1_000
    _assert_slayer_same(model, pair16, lava)


def test_lava_imports_after_a_progress_bar():
    """A progress bar shown first (e.g. mapping before simulating) must not break Lava's fork start method."""
    import subprocess
    import sys

    code = ("import spikereg_deploy\nfrom tqdm import tqdm\nlist(tqdm(range(2)))\n"
            "import lava.magma.runtime.message_infrastructure.multiprocessing\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
