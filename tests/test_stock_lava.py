"""The stock-Lava baseline: its synapse matrices are the project's convolutions, and on a tiny network its
spikes and readout equal the reference engine's integers (the benchmark's claim)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.network import LayerSpec, NeuronSpec
from spikereg_deploy.simulators.stock_lava import conv_matrix, run_stock_lava, stock_nnz

NEURON = NeuronSpec(i_decay=1024, v_decay=128, vth_mant=40)


@pytest.mark.parametrize("kind", ["conv", "convT"])
def test_conv_matrix_is_the_convolution(kind):
    layer = LayerSpec("x", kind, 3, inputs=("input",), stride=2, padding=1, output_padding=1 if kind == "convT" else 0,
                      neuron=NEURON)
    in_shape = (5, 6, 7)
    out_shape = layer.output_shape(in_shape)
    rng = np.random.default_rng(0)
    weight = rng.integers(-5, 6, (3, 2, 3, 3, 3) if kind == "conv" else (2, 3, 3, 3, 3))
    x = rng.integers(0, 4, (2, *in_shape))
    matrix = conv_matrix(layer, weight, in_shape, out_shape)
    xt, wt = torch.as_tensor(x, dtype=torch.float64)[None], torch.as_tensor(weight, dtype=torch.float64)
    if kind == "conv":
        expected = F.conv3d(xt, wt, stride=2, padding=1)
    else:
        expected = F.conv_transpose3d(xt, wt, stride=2, padding=1, output_padding=1)
    assert matrix.shape == (3 * np.prod(out_shape), 2 * np.prod(in_shape))
    np.testing.assert_array_equal(matrix @ x.ravel(), expected.numpy().astype(np.int64).ravel())


def test_stock_nnz_counts_every_stored_synapse(tiny_skip_net):
    spec, weights, _ = tiny_skip_net
    nonzero = {name: np.where(w == 0, 2, w) for name, w in weights.items()}  # zero weights are not stored
    net, geo = IntegerNetwork(spec, nonzero), spec.geometry((8, 8, 8))
    stored = sum(conv_matrix(spec.layer(e.dst), net.edge_weights[(e.src, e.dst)], geo[e.src].out_shape,
                             geo[e.dst].out_shape).nnz for e in net.edges)
    assert stock_nnz(spec, 8) == stored


@pytest.mark.lava
def test_stock_graph_reproduces_the_reference_integers(tiny_skip_net):
    spec, weights, _ = tiny_skip_net
    image = np.random.default_rng(4).random((1, 6, 8, 10)).astype(np.float32)
    reference = IntegerNetwork(spec, weights).run(image, record_spikes=True)
    run = run_stock_lava(spec, weights, image)
    readout_equal, spikes_equal = run.agreement(reference)
    assert readout_equal and spikes_equal == {"a": True, "b": True, "c": True}
    assert all(counts.sum() > 0 for counts in run.spike_counts.values())  # every layer spikes: a real comparison
    assert run.nnz > 0 and run.step_s > 0
