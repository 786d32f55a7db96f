"""Exact synaptic fan-out of every presynaptic position, for counting SynOps where they happen.

A spike at the border of a padded conv, or at a position a stride skips over, reaches fewer than k^3 x Cout
synapses; counting k^3 x Cout for every spike over-counts. Conv and transposed-conv connectivity is separable per axis,
so the map is an outer product of three small 1-D count vectors: no need to touch individual synapses.
"""
from __future__ import annotations

import numpy as np

from .network import LayerSpec, Triple


def _conv_axis_counts(n_in: int, n_out: int, k: int, s: int, p: int) -> np.ndarray:
    """For each input index i: how many output indices o in [0, n_out) have o*s - p <= i <= o*s - p + k - 1."""
    i = np.arange(n_in)
    lo = np.maximum(0, -((-(i + p - k + 1)) // s))  # ceil((i + p - k + 1) / s)
    hi = np.minimum(n_out - 1, (i + p) // s)
    return np.maximum(0, hi - lo + 1)


def _conv_transpose_axis_counts(n_in: int, n_out: int, k: int, s: int, p: int) -> np.ndarray:
    """For each input index i: how many o = i*s - p + j (0 <= j < k) fall inside [0, n_out)."""
    i = np.arange(n_in)
    lo = np.maximum(i * s - p, 0)
    hi = np.minimum(i * s - p + k - 1, n_out - 1)
    return np.maximum(0, hi - lo + 1)


def fanout_map(layer: LayerSpec, in_shape: Triple, out_shape: Triple) -> np.ndarray:
    """Synapses reached per presynaptic neuron, per spatial position (int64, shape in_shape), for ONE input channel.

    Multiply by nothing else: the count already includes all `layer.out_channels` postsynaptic channels.
    """
    axis_fn = _conv_transpose_axis_counts if layer.kind == "convT" else _conv_axis_counts
    per_axis = [
        axis_fn(n_in, n_out, k, s, p)
        for n_in, n_out, k, s, p in zip(in_shape, out_shape, layer.kernel, layer.stride, layer.padding, strict=True)
    ]
    counts = per_axis[0][:, None, None] * per_axis[1][None, :, None] * per_axis[2][None, None, :]
    return counts.astype(np.int64) * layer.out_channels
