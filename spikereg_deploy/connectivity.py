"""Which output indices one input index of a conv or transposed conv reaches, along one axis: written once.

Conv and transposed-conv connectivity is separable per axis and, along an axis, every input index reaches one
contiguous range of output indices. From that range follow the exact fan-out of every presynaptic position
(`fanout.py`; what SynOps count: a spike at a padded border or at a position a stride skips reaches fewer than
k^3 x Cout synapses), the receptive field of every output index (fan-in, a mapper tile's input halo) and the
number of real taps (a tap whose input lies in the padding has no synapse). Nothing here touches single synapses.
"""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np

Triple = tuple[int, int, int]


class SynapseAxes(Protocol):
    """What connectivity needs of a layer: its kind and per-axis kernel, stride and padding (a `LayerSpec`)."""

    kind: str
    kernel: Triple
    stride: Triple
    padding: Triple


def reach(transposed: bool, n_in: int, n_out: int, k: int, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """For each input index i in [0, n_in): the first and last output index it has a synapse into (hi < lo: none).

    Conv (torch `conv3d`): output o reads inputs o*s - p .. o*s - p + k - 1, so i reaches the o with
    ceil((i + p - k + 1) / s) <= o <= floor((i + p) / s). Transposed conv: i writes outputs i*s - p + j, 0 <= j < k.
    Both are clipped to [0, n_out).
    """
    i = np.arange(n_in, dtype=np.int64)
    if transposed:
        lo, hi = i * s - p, i * s - p + k - 1
    else:
        lo, hi = -((-(i + p - k + 1)) // s), (i + p) // s
    return np.maximum(lo, 0), np.minimum(hi, n_out - 1)


def axis_reach(layer: SynapseAxes, axis: int, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`reach` for one axis of a layer (readout convs are convs)."""
    return reach(layer.kind == "convT", n_in, n_out, layer.kernel[axis], layer.stride[axis], layer.padding[axis])


def axis_fanout(layer: SynapseAxes, axis: int, n_in: int, n_out: int) -> np.ndarray:
    """Per input index: how many output indices it reaches along this axis (0 where a stride skips it)."""
    lo, hi = axis_reach(layer, axis, n_in, n_out)
    return np.maximum(hi - lo + 1, 0)


def axis_fan_in(layer: SynapseAxes, axis: int, n_in: int, n_out: int) -> np.ndarray:
    """Per output index: how many input indices reach it along this axis (its receptive field clipped to the map)."""
    lo, hi = axis_reach(layer, axis, n_in, n_out)
    marks = np.zeros(n_out + 1, dtype=np.int64)
    valid = lo <= hi
    np.add.at(marks, lo[valid], 1)
    np.add.at(marks, hi[valid] + 1, -1)
    return np.cumsum(marks)[:-1]


def max_fan_in_taps(layer: SynapseAxes, in_shape: Triple, out_shape: Triple) -> int:
    """Most input positions that reach one output position (times Cin: the largest fan-in of one neuron)."""
    return math.prod(int(axis_fan_in(layer, a, in_shape[a], out_shape[a]).max(initial=0)) for a in range(3))
