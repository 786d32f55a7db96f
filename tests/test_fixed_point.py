"""The CUBA integer model: SLAYER's CUBA computes it exactly; wrap/saturation as lava-nc's bit-accurate LIF."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from lava.lib.dl.slayer.neuron import cuba

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.network import NeuronSpec


def _core_run(a_in: np.ndarray, neuron: NeuronSpec, xp=np):
    state = neuron.init_state(a_in.shape[:-1], xp)
    out = []
    for t in range(a_in.shape[-1]):
        state, s = neuron.step(state, xp.asarray(a_in[..., t]) if xp is np else a_in[..., t])
        out.append(s)
    return np.stack([np.asarray(s) for s in out], -1)


def test_slayer_cuba_equals_core_integer_model():
    rng = np.random.default_rng(0)
    neuron = NeuronSpec.from_float(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    # integer synaptic sums (weight mantissa units) like a layer with fan-in ~100 receives
    a_in = rng.integers(-300, 400, size=(1, 64, 40)).astype(np.int64)
    slayer_neuron = cuba.Neuron(threshold=neuron.threshold, current_decay=neuron.i_decay / 4096,
                                voltage_decay=neuron.v_decay / 4096)
    with torch.no_grad():
        spikes = slayer_neuron(torch.as_tensor(a_in, dtype=torch.float32) / fx.WEIGHT_SCALE).numpy() > 0
    core = _core_run(a_in, neuron)
    core_torch = _core_run(torch.as_tensor(a_in), neuron, xp=torch)
    assert spikes.sum() > 100  # the test means something
    np.testing.assert_array_equal(spikes, core)
    np.testing.assert_array_equal(core, core_torch)


def test_strict_threshold():
    neuron = NeuronSpec(i_decay=4096, v_decay=4096, vth_mant=64)  # no memory: v == u == a_in << 6
    a_in = np.array([63, 64, 65])
    (u, v), s = neuron.step((np.zeros(3, np.int64), np.zeros(3, np.int64)), a_in)
    assert list(s) == [False, False, True]  # 64 << 6 == vth << 6 is not > threshold
    assert list(v) == [63 << 6, 64 << 6, 0]  # spiking compartment resets to zero


def test_decay_rounds_toward_zero():
    assert list(fx.decay(np.array([-4097, 4097]), 2048)) == [-2048, 2048]


@pytest.mark.parametrize("xp", [np, torch])
def test_current_wraps_and_voltage_saturates_at_24_bits(xp):
    def arr(x):
        return np.array(x, dtype=np.int64) if xp is np else torch.tensor(x, dtype=torch.int64)

    neuron = NeuronSpec(i_decay=1, v_decay=1, vth_mant=(1 << 17) - 1)
    big = arr([(1 << 17)])  # << 6 == 2^23: lands exactly on the wrap limit
    (u, v), _ = neuron.step((arr([1 << 22]), arr([0])), big)
    assert u[0] == fx.decay(np.array([1 << 22]), 1)[0] + (1 << 23) - (1 << 24)
    low = -(1 << 23) + 10
    (u, v), s = neuron.step((arr([low]), arr([low])), arr([0]))
    assert v[0] == -(1 << 23) + 1 and not s[0]  # saturates (a positive overflow would spike and reset)


def test_input_quantization():
    x = np.array([-0.1, 0.0, 0.5, 0.999, 1.0, 2.0])
    assert list(fx.quantize_input(x)) == [0, 0, 128, 255, 255, 255]
    assert fx.analog_current(np.array([511, -1, 256])).tolist() == [1, -1, 1]


def test_weight_mantissa_check():
    assert fx.check_weight_mantissa(np.array([-256, 0, 254])) is None
    assert "range" in fx.check_weight_mantissa(np.array([256]))
    assert "NaN" in fx.check_weight_mantissa(np.array([np.nan]))
    assert "integer" in fx.check_weight_mantissa(np.array([1.5]))
