"""Connectivity along an axis and the counting rules: hand-counted small cases, then independent torch counts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikereg_deploy.connectivity import axis_fan_in, axis_fanout, axis_reach, max_fan_in_taps, reach
from spikereg_deploy.counting import analog_macs_per_step, neuron_updates, projected_synops, step_synops
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.fanout import fanout_map, fanout_total
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec

NEURON = NeuronSpec(i_decay=1024, v_decay=128, vth_mant=40)


def _layer(kind: str, k: int, s: int, p: int, op: int = 0, cout: int = 1) -> LayerSpec:
    neuron = None if kind == "readout" else NEURON
    return LayerSpec("x", kind, cout, inputs=("input",), kernel=k, stride=s, padding=p, output_padding=op,
                     neuron=neuron)


def test_conv_reach_by_hand():
    """n=5, k=3, s=2, p=1 -> 3 outputs; output o reads inputs 2o-1..2o+1 (index -1 and 5 are padding)."""
    lo, hi = reach(False, 5, 3, 3, 2, 1)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    layer = _layer("conv", 3, 2, 1)
    assert axis_fanout(layer, 0, 5, 3).tolist() == [1, 2, 1, 2, 1]
    assert axis_fan_in(layer, 0, 5, 3).tolist() == [2, 3, 2]


def test_conv_stride_skips_inputs():
    """k=1, s=2: odd inputs reach nothing (hi < lo), even ones one output each."""
    layer = _layer("conv", 1, 2, 0)
    lo, hi = axis_reach(layer, 0, 4, 2)
    assert (hi < lo).tolist() == [False, True, False, True]
    assert axis_fanout(layer, 0, 4, 2).tolist() == [1, 0, 1, 0]
    assert axis_fan_in(layer, 0, 4, 2).tolist() == [1, 1]


def test_conv_transpose_reach_by_hand():
    """n=3, k=3, s=2, p=1, output padding 1 -> 6 outputs; input i writes outputs 2i-1..2i+1, clipped."""
    layer = _layer("convT", 3, 2, 1, op=1)
    lo, hi = axis_reach(layer, 0, 3, 6)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (1, 3), (3, 5)]
    assert axis_fanout(layer, 0, 3, 6).tolist() == [2, 3, 3]
    assert axis_fan_in(layer, 0, 3, 6).tolist() == [1, 2, 1, 2, 1, 1]


@pytest.mark.parametrize(("kind", "k", "s", "p", "op", "n"), [
    ("conv", 3, 1, 1, 0, 7), ("conv", 3, 2, 1, 0, 8), ("conv", 5, 3, 2, 0, 11), ("conv", 2, 2, 0, 0, 6),
    ("convT", 2, 2, 0, 0, 4), ("convT", 3, 2, 1, 1, 5), ("convT", 4, 3, 1, 0, 4),
])
def test_axis_fan_in_equals_conv_of_ones(kind, k, s, p, op, n):
    """Receptive field per output index == a 1-D conv of ones (every in-bounds tap adds 1)."""
    layer = _layer(kind, k, s, p, op)
    x, w = torch.ones(1, 1, n, dtype=torch.float64), torch.ones(1, 1, k, dtype=torch.float64)
    if kind == "convT":
        y = F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op)
    else:
        y = F.conv1d(x, w, stride=s, padding=p)
    assert axis_fan_in(layer, 0, n, y.shape[-1]).tolist() == y[0, 0].long().tolist()


def test_fanout_map_is_the_outer_product_and_its_total():
    layer = LayerSpec("x", "conv", 3, inputs=("input",), kernel=(3, 1, 5), stride=(2, 1, 2), padding=(1, 0, 2),
                      neuron=NEURON)
    in_shape, out_shape = (5, 4, 7), (3, 4, 4)
    fan = fanout_map(layer, in_shape, out_shape)
    z, y, x = (axis_fanout(layer, a, in_shape[a], out_shape[a]) for a in range(3))
    assert fan.shape == in_shape and fan[1, 2, 3] == 3 * z[1] * y[2] * x[3]
    assert fanout_total(layer, in_shape, out_shape) == int(fan.sum())


@pytest.mark.parametrize(("kind", "k", "s", "p", "op"), [("conv", 3, 1, 1, 0), ("conv", 3, 2, 1, 0),
                                                          ("readout", 3, 1, 1, 0), ("convT", 3, 2, 1, 1)])
def test_real_taps_equal_conv_of_ones(kind, k, s, p, op):
    """Analog MACs per step == the sum of a conv of ones (padded taps add nothing), for 2 input channels."""
    neuron = None if kind == "readout" else NEURON
    spec = NetworkSpec(layers=(
        LayerSpec("input", "input", 2, kernel=1, padding=0),
        LayerSpec("x", kind, 3, inputs=("input",), kernel=k, stride=s, padding=p, output_padding=op, neuron=neuron),
        *(() if kind == "readout" else (LayerSpec("readout", "readout", 1, inputs=("x",), kernel=1, padding=0),)),
    ), time_steps=2)
    shape = (5, 6, 7)
    geo = spec.geometry(shape)
    ones = torch.ones(1, 2, *shape, dtype=torch.float64)
    weight = torch.ones(spec.weight_shape("x"), dtype=torch.float64)
    if kind == "convT":
        taps = F.conv_transpose3d(ones, weight, stride=s, padding=p, output_padding=op)
    else:
        taps = F.conv3d(ones, weight, stride=s, padding=p)
    (edge,) = spec.edges_into("x")
    assert analog_macs_per_step(spec, geo, edge) == int(taps.sum())
    if kind != "convT" and p:
        assert analog_macs_per_step(spec, geo, edge) < geo["x"].macs  # the dense count includes padded taps


def test_default_unet_analog_macs_at_16x24x16():
    """The issue's independent count: 151,674,880 real taps over T = 32 (the dense count was 169,869,312)."""
    spec = build_unet_spec(UNetConfig(time_steps=32))
    geo = spec.geometry((16, 24, 16))
    (edge,) = spec.edges_into("enc0")
    assert analog_macs_per_step(spec, geo, edge) * 32 == 151_674_880
    assert geo["enc0"].macs * 32 == 169_869_312


def test_step_synops_numpy_and_torch_by_hand():
    spikes = np.array([[[2, 0], [1, 0]]])  # spikes per position, summed over channels
    fan = np.array([[[8, 12], [12, 18]]])
    assert step_synops(spikes, fan) == 2 * 8 + 12 == step_synops(torch.as_tensor(spikes), torch.as_tensor(fan))
    assert step_synops(torch.as_tensor(spikes, dtype=torch.int32), torch.as_tensor(fan, dtype=torch.int32)) == 28


def test_neuron_updates_and_projection():
    spec = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4,), time_steps=3))
    geo = spec.geometry((8, 8, 8))
    assert neuron_updates(geo["enc1"].neurons, 3) == 3 * 8 * 4 ** 3
    edge = spec.edges_into("enc1")[0]
    exact = edge.channels * int(fanout_map(spec.layer("enc1"), geo["enc0"].out_shape, geo["enc1"].out_shape).sum())
    assert projected_synops(spec, geo, edge, 0.5, 4) == pytest.approx(2 * exact)
    with pytest.raises(SpikeRegError, match="binary events, not the analog input"):
        analog_macs_per_step(spec, geo, edge)


def test_max_fan_in_on_a_one_voxel_axis():
    """A 3-tap conv on a 1-voxel axis reaches one input, not three; interior maps reach k."""
    layer = _layer("conv", 3, 1, 1)
    assert max_fan_in_taps(layer, (1, 5, 5), (1, 5, 5)) == 1 * 3 * 3
    assert max_fan_in_taps(_layer("convT", 2, 2, 0), (4, 4, 4), (8, 8, 8)) == 1
