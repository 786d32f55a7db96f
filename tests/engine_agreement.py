"""One check shared by the neuron-model tests: a SLAYER model in eval mode, the reference engine and Lava fixed_pt
agree spike for spike (graded neurons: payload for payload) in every layer and step, in readout sum, displacement
and every count."""
from __future__ import annotations

import numpy as np
import torch

from spikereg_deploy.engine import IntegerNetwork, IntegerRun
from spikereg_deploy.simulators.lava_builder import run_lava
from spikereg_deploy.training.snn import SpikingUNet, exact_displacement


def assert_three_engines_agree(model: SpikingUNet, image: np.ndarray, min_spikes: int = 100) -> IntegerRun:
    """Run `image` (C, D, H, W) through all three engines; returns the reference run for further checks."""
    spec, weights = model.spec, model.integer_weights()
    with torch.no_grad():
        result = model.eval()(torch.as_tensor(image)[None])
    ref = IntegerNetwork(spec, weights).run(image, record_spikes=True)
    lava = run_lava(spec, weights, image, record_spikes=True, progress=False)
    assert set(lava.spikes) == {layer.name for layer in spec.layers if layer.spiking}
    total = 0
    for name, steps in lava.spikes.items():
        ours = np.stack(ref.spikes[name]).astype(np.int64)  # spikes as 0/1, graded spikes as their payloads
        trained = np.moveaxis(result.spikes[name][0].numpy(), -1, 0)
        np.testing.assert_array_equal(trained, ours.astype(trained.dtype), err_msg=name)
        np.testing.assert_array_equal(np.stack(steps).astype(np.int64), ours, err_msg=name)
        total += int((ours != 0).sum())
    assert total > min_spikes  # enough spikes for the comparison to mean something
    np.testing.assert_array_equal(result.readout_sum[0].numpy(), ref.readout_sum)
    np.testing.assert_array_equal(lava.readout_sum, ref.readout_sum)
    np.testing.assert_array_equal(exact_displacement(result, spec)[0], ref.displacement)
    np.testing.assert_array_equal(lava.displacement, ref.displacement)
    for name, c in ref.counts.items():
        got = lava.counts[name]
        assert (got.spikes, got.input_spikes, got.synops, got.input_macs, got.neuron_updates) == (
            c.spikes, c.input_spikes, c.synops, c.input_macs, c.neuron_updates), name
        assert got.synops_per_step == c.synops_per_step and got.spikes_per_step == c.spikes_per_step, name
        assert (got.graded_synops, got.graded_synops_per_step, got.payload_sum) == (
            c.graded_synops, c.graded_synops_per_step, c.payload_sum), name
    return ref
