"""Exact synaptic fan-out of every presynaptic position, for counting SynOps where they happen.

A spike at the border of a padded conv, or at a position a stride skips over, reaches fewer than k^3 x Cout
synapses; counting k^3 x Cout for every spike over-counts. Connectivity is separable per axis (`connectivity.py`),
so the map is an outer product of three small 1-D count vectors: no need to touch individual synapses.
"""
from __future__ import annotations

import math

import numpy as np

from .connectivity import axis_fanout
from .network import LayerSpec, Triple


def fanout_map(layer: LayerSpec, in_shape: Triple, out_shape: Triple) -> np.ndarray:
    """Synapses reached per presynaptic neuron, per spatial position (int64, shape in_shape), for ONE input channel.

    Multiply by nothing else: the count already includes all `layer.out_channels` postsynaptic channels.
    """
    z, y, x = (axis_fanout(layer, a, in_shape[a], out_shape[a]) for a in range(3))
    return (z[:, None, None] * y[None, :, None] * x[None, None, :]) * layer.out_channels


def fanout_total(layer: LayerSpec, in_shape: Triple, out_shape: Triple) -> int:
    """`fanout_map(...).sum()` without building the map: the synapses one input channel has.

    It is also the number of real taps per input channel: every synapse joins one input position to one output.
    """
    per_axis = (int(axis_fanout(layer, a, in_shape[a], out_shape[a]).sum()) for a in range(3))
    return math.prod(per_axis) * layer.out_channels
