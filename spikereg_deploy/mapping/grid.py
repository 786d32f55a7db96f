"""Index arithmetic on one axis of a layer's output: balanced parts and which inputs reach which part.

The tiler (`tiling.py`) and the traffic graph (`traffic.py`) both cut axes into nearly equal parts and ask which
input indices have a synapse into each part; the arithmetic lives here once.
"""

from __future__ import annotations

import numpy as np

from ..connectivity import axis_fan_in, axis_reach
from ..network import LayerSpec, NetworkSpec


def reach_matrix(lo: np.ndarray, hi: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """reach[d, i]: input index i has a synapse into output part d = [bounds[d], bounds[d+1])."""
    starts, stops = bounds[:-1, None], bounds[1:, None] - 1
    return (lo[None, :] <= stops) & (hi[None, :] >= starts) & (lo <= hi)[None, :]


def part_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of `values` (last axis) over each part [bounds[j], bounds[j+1])."""
    cum = np.concatenate(
        [np.zeros(values.shape[:-1] + (1,), dtype=np.int64), np.cumsum(values, axis=-1)], axis=-1
    )
    return cum[..., bounds[1:]] - cum[..., bounds[:-1]]


def balanced_bounds(n: int, parts: int) -> np.ndarray:
    """Boundaries of `parts` nearly equal parts of range(n) (sizes differ by at most one)."""
    return (np.arange(parts + 1, dtype=np.int64) * n) // parts


def part_counts(n: int) -> np.ndarray:
    """Part counts worth trying on an axis of length n: the fewest parts for each distinct largest part."""
    return np.unique(np.array([-(-n // size) for size in range(1, n + 1)], dtype=np.int64))


class AxisFacts:
    """One axis of a layer's output: the inputs each index reads and, per consumer segment, the destination
    parts each index reaches (a segment is a grid over a sub-box of the consumer, `tiling.Segment`)."""

    def __init__(self, spec: NetworkSpec, geo: dict, layer: LayerSpec, axis: int, tilings: dict) -> None:
        g = geo[layer.name]
        self.n = g.out_shape[axis]
        self.lo, self.hi = axis_reach(layer, axis, g.in_shape[axis], self.n)
        self.rf = axis_fan_in(layer, axis, g.in_shape[axis], self.n)  # receptive field clipped to the map
        self.max_fanout = int(np.maximum(self.hi - self.lo + 1, 0).max(initial=0))
        self.dest_counts: list[np.ndarray] = []  # per (consumer, segment): parts reached by each output index
        self.dest_weights: list[int] = []  # that segment's channel groups (each group is another core)
        self.dest_any: list[np.ndarray] = []  # per consumer: the output index has a synapse into it at all
        for consumer in spec.consumers(layer.name):
            dlo, dhi = axis_reach(spec.layer(consumer), axis, self.n, geo[consumer].out_shape[axis])
            self.dest_any.append(dlo <= dhi)
            for seg in tilings[consumer].segments:
                self.dest_counts.append(reach_matrix(dlo, dhi, seg.axis_bounds[axis]).sum(axis=0))
                self.dest_weights.append(seg.n_groups)

    def in_reach(self, bounds: np.ndarray) -> np.ndarray:
        """Input indices with a synapse into each part (the tile's receptive field along this axis)."""
        return reach_matrix(self.lo, self.hi, bounds).sum(axis=1)
