"""The SLAYER model in eval mode is the quantized model: the integer engine reproduces it bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.fanout import fanout_map
from spikereg_deploy.network import LayerSpec, NeuronSpec
from spikereg_deploy.training.snn import exact_displacement, seeded_model


def _compare(model, image):
    with torch.no_grad():
        result = model.eval()(torch.as_tensor(image)[None])
    run = IntegerNetwork(model.spec, model.integer_weights()).run(image, record_spikes=True)
    total = 0
    for name, spikes in result.spikes.items():
        ours = np.stack(run.spikes[name], -1)
        np.testing.assert_array_equal(spikes[0].numpy() > 0, ours, err_msg=name)
        total += int(ours.sum())
    np.testing.assert_array_equal(exact_displacement(result, model.spec)[0], run.displacement)
    return total, run


def test_default_model_matches_engine(pair16):
    total, run = _compare(seeded_model(seed=0), pair16)
    assert total > 1000
    assert np.abs(run.displacement).max() > 0


def test_small_random_model_matches_engine(small_config):
    rng = np.random.default_rng(3)
    image = rng.random((2, 8, 16, 8)).astype(np.float32)
    total, _ = _compare(seeded_model(small_config, seed=5), image)
    assert total > 100


def test_synops_equal_spikes_times_autograd_fanout(pair16):
    """Engine SynOps == recorded spikes x fan-out obtained independently (gradient of a conv of ones)."""
    model = seeded_model(seed=1)
    run = IntegerNetwork(model.spec, model.integer_weights()).run(pair16, record_spikes=True)
    geo = model.spec.geometry(pair16.shape[1:])
    for layer in model.spec.layers[1:]:
        expected = 0
        for src in layer.inputs:
            if src == "input":
                continue
            x = torch.ones((1, model.spec.channels_of(src), *geo[src].out_shape), requires_grad=True,
                           dtype=torch.float64)
            w = torch.ones(model.synapses[layer.name].weight.shape, dtype=torch.float64)
            w = w[:model.spec.channels_of(src)] if layer.kind == "convT" else w[:, :model.spec.channels_of(src)]
            syn = model.synapses[layer.name]
            syn.conv(x, w).sum().backward()
            fan = x.grad[0].numpy()  # synapses reached by each presynaptic neuron
            spikes = np.stack(run.spikes[src], 0)  # (T, C, D, H, W)
            expected += int((spikes * fan[None]).sum())
        assert run.counts[layer.name].synops == expected, layer.name


@pytest.mark.parametrize("kind,stride,pad,kernel", [("conv", 1, 1, 3), ("conv", 2, 1, 3), ("conv", 2, 0, 3),
                                                    ("convT", 2, 0, 2), ("convT", 2, 1, 3), ("conv", 1, 2, 5)])
def test_fanout_map_against_autograd(kind, stride, pad, kernel):
    neuron = NeuronSpec(1024, 100, 64)
    layer = LayerSpec("l", kind, 3, inputs=("x",), kernel=kernel, stride=stride, padding=pad,
                      output_padding=1 if (kind == "convT" and kernel == 3) else 0, neuron=neuron)
    in_shape = (7, 8, 5)
    out_shape = layer.output_shape(in_shape)
    x = torch.ones((1, 1, *in_shape), dtype=torch.float64, requires_grad=True)
    if kind == "convT":
        y = torch.nn.functional.conv_transpose3d(x, torch.ones(1, 3, kernel, kernel, kernel, dtype=torch.float64),
                                                 stride=stride, padding=pad, output_padding=layer.output_padding)
    else:
        y = torch.nn.functional.conv3d(x, torch.ones(3, 1, kernel, kernel, kernel, dtype=torch.float64),
                                       stride=stride, padding=pad)
    assert tuple(y.shape[2:]) == out_shape
    y.sum().backward()
    np.testing.assert_array_equal(fanout_map(layer, in_shape, out_shape), x.grad[0, 0].numpy().astype(np.int64))
