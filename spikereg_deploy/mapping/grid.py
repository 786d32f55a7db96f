"""Index arithmetic on one axis of a layer's output: balanced parts and which inputs reach which part.

The tiler (`tiling.py`) and the traffic graph (`traffic.py`) both cut axes into nearly equal parts and ask which
input indices have a synapse into each part; the arithmetic lives here once.
"""

from __future__ import annotations

import numpy as np


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
