"""The tiler's search: the cheapest grid of blocks for a box of a layer's output, and the cut of the layer into
a few boxes (segments) that each take their own grid.

One balanced grid over the whole layer wastes compartments whenever the axes do not divide into tiles that fill
a core (64^3 x 16 channels: 1,248 blocks of 3,520 neurons where 1,171 of 3,584 would do). A guillotine cut along
one axis into a box that divides exactly and a remainder, each with its own grid, removes most of that waste;
the remainder may be cut again (at most `MAX_SEGMENTS` boxes) while a cut saves `SPLIT_MIN_GAIN` of its blocks.
Every per-block quantity stays a product of per-axis sums inside a segment, so the search and the traffic graph
still never look at single synapses.

Within a box the grid with the fewest blocks that keeps every block within every limit wins; ties go to the least
summed receptive field (least halo, so least duplicated traffic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..network import LayerSpec, NetworkSpec
from .grid import AxisFacts, balanced_bounds, part_counts, part_sums
from .profiles import CoreProfile
from .synapse_memory import EdgeSynapses, edge_synapses, shared_bits, unshared_bound

Region = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
MAX_SEGMENTS = 4
#: A cut must save this fraction of the box's blocks (and at least one): remainder slabs are thin and talk to more
# neighbours, so a cut that saves a few cores in thousands costs more spike-hops than it is worth (full size:
# 2 % keeps 121,156 cores at 2.04e9 placed spike-hops per step, any saving 121,086 at 2.13e9, 5 % 121,120 at 2.08e9).
SPLIT_MIN_GAIN = 0.02
EXACT_CHECKS = 64  # grids counted exactly per box before the best surely fitting one is taken
_SHAPES = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]  # broadcast z, y, x candidates against each other


@dataclass(frozen=True)
class GridChoice:
    """A grid over one box: channel groups x parts per axis, and what it costs."""

    region: Region
    groups: int
    parts: tuple[int, int, int]
    blocks: int
    halo: int  # summed receptive fields over the blocks (input pixels)

    def axis_bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Absolute part boundaries on each axis (balanced inside the box)."""
        return tuple(lo + balanced_bounds(hi - lo, p) for (lo, hi), p in zip(self.region, self.parts, strict=True))


def in_axon_factor(edges: list[EdgeSynapses], profile: CoreProfile, src_groups: dict[str, int]) -> int:
    """Input axons per source pixel of the receptive field, summed over input edges.

    per_channel: one axon per source channel; population: one per source core holding the pixel, i.e. the source
    layer's channel groups (the host's analog input counts as one population).
    """
    if profile.axon_model == "per_channel":
        return sum(e.channels for e in edges)
    return sum(src_groups.get(e.src, 1) for e in edges)


class LayerSearch:
    """The facts the search needs about one layer (its consumers already tiled), computed once per layer."""

    def __init__(self, spec: NetworkSpec, geo: dict, layer: LayerSpec, profile: CoreProfile, tilings: dict,
                 src_groups: dict[str, int]) -> None:
        self.layer, self.profile = layer, profile
        self.axes = [AxisFacts(spec, geo, layer, a, tilings) for a in range(3)]
        self.edges = edge_synapses(spec, layer, profile)
        self.in_factor = in_axon_factor(self.edges, profile, src_groups)
        self.k3 = math.prod(layer.kernel)
        self.max_fanout = math.prod(ax.max_fanout for ax in self.axes)
        self.full: Region = tuple((0, ax.n) for ax in self.axes)  # type: ignore[assignment]
        self._cands: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}
        self._grids: dict[Region, GridChoice | None] = {}

    def candidates(self, axis: int, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Per candidate part count of [lo, hi): largest part, largest and summed receptive field, and per
        consumer segment the largest number of its parts one part reaches (summed over the part's indices)."""
        key = (axis, lo, hi)
        if key not in self._cands:
            ax = self.axes[axis]
            counts = part_counts(hi - lo)
            size, rf, total_rf, dest = [], [], [], []
            for parts in counts:
                bounds = lo + balanced_bounds(hi - lo, int(parts))
                size.append(int(np.diff(bounds).max()))
                reach = ax.in_reach(bounds)
                rf.append(int(reach.max()))
                total_rf.append(int(reach.sum()))
                dest.append([int(part_sums(c, bounds).max()) for c in ax.dest_counts])
            self._cands[key] = {
                "parts": counts, "size": np.array(size), "rf": np.array(rf), "total_rf": np.array(total_rf),
                "dest": np.array(dest, dtype=np.int64).reshape(len(counts), len(ax.dest_counts)).T,
            }
        return self._cands[key]

    def _product(self, cands: list[dict[str, np.ndarray]], key: str, row: int | None = None) -> np.ndarray:
        return math.prod((c[key] if row is None else c[key][row]).reshape(s) for c, s in zip(cands, _SHAPES,
                                                                                             strict=True))

    def out_axons_per_channel(self, cands: list[dict[str, np.ndarray]], optimistic: bool = False) -> np.ndarray:
        """A block's output axons per channel (destination cores over its pixels), bounded from above: the
        per-axis maxima of every consumer segment, summed. `optimistic`: the largest single segment's term
        instead, a bound from below (no grid under it fits)."""
        out = np.zeros_like(self._product(cands, "size"))
        for j, weight in enumerate(self.axes[0].dest_weights):
            term = weight * self._product(cands, "dest", j)
            out = np.maximum(out, term) if optimistic else out + term
        return out

    def exact_out_axons(self, region: Region, parts: tuple[int, int, int]) -> int:
        """The largest output axons per channel of any block of one grid, counted exactly."""
        bounds = [lo + balanced_bounds(hi - lo, p) for (lo, hi), p in zip(region, parts, strict=True)]
        total = np.zeros(parts, dtype=np.int64)
        for j, weight in enumerate(self.axes[0].dest_weights):
            z, y, x = (part_sums(ax.dest_counts[j], b) for ax, b in zip(self.axes, bounds, strict=True))
            total += weight * z[:, None, None] * y[None, :, None] * x[None, None, :]
        return int(total.max(initial=0))

    def grid(self, region: Region) -> GridChoice | None:
        """The cheapest grid over `region` whose every block fits, or None if none does.

        Output axons of a block are bounded from below and above per candidate; where the two disagree the
        grid is counted exactly, cheapest candidates first (segmented consumers make the upper bound loose)."""
        if region in self._grids:
            return self._grids[region]
        prof, cout = self.profile, self.layer.out_channels
        cands = [self.candidates(a, lo, hi) for a, (lo, hi) in enumerate(region)]
        vol, rf = self._product(cands, "size"), self._product(cands, "rf")
        total_rf, n_spatial = self._product(cands, "total_rf"), self._product(cands, "parts")
        out_hi, out_lo = self.out_axons_per_channel(cands), self.out_axons_per_channel(cands, optimistic=True)
        in_ok = self.in_factor * rf <= prof.input_axons
        per_channel_out = prof.axon_model == "per_channel"
        keys: list[np.ndarray] = []  # per group count: blocks, halo, groups, flat index, surely fits
        for groups in part_counts(cout):
            size = -(-cout // int(groups))
            if prof.shared_weights:
                syn = shared_bits(self.edges, self.k3, np.array(size), prof)
            else:
                syn = unshared_bound(self.edges, rf, self.max_fanout, size, prof)
            factor = size if per_channel_out else 1
            ok = (size * vol <= prof.neuron_budget) & (syn <= prof.synaptic_memory_bits) & in_ok
            flat = np.flatnonzero(ok & (factor * out_lo <= prof.output_axons))
            sure = (factor * out_hi.ravel()[flat] <= prof.output_axons).astype(np.int64)
            keys.append(np.stack([int(groups) * n_spatial.ravel()[flat], int(groups) * total_rf.ravel()[flat],
                                  np.full(len(flat), int(groups)), flat, sure]))
        table = np.concatenate(keys, axis=1) if keys else np.zeros((5, 0), dtype=np.int64)
        table = table[:, np.lexsort(table[:3][::-1])]
        first_sure = np.flatnonzero(table[4])
        stop = int(first_sure[0]) + 1 if len(first_sure) else table.shape[1]
        choice = None
        for col in range(min(stop, EXACT_CHECKS)):  # cheapest first; an unsure one is counted exactly
            blocks, halo, groups, flat, sure = (int(v) for v in table[:, col])
            idx = np.unravel_index(flat, vol.shape)
            parts = tuple(int(c["parts"][i]) for c, i in zip(cands, idx, strict=True))
            factor = -(-cout // groups) if per_channel_out else 1
            if sure or factor * self.exact_out_axons(region, parts) <= prof.output_axons:  # type: ignore[arg-type]
                choice = GridChoice(region, groups, parts, blocks, halo)  # type: ignore[arg-type]
                break
        if choice is None and len(first_sure):
            blocks, halo, groups, flat, _ = (int(v) for v in table[:, first_sure[0]])
            idx = np.unravel_index(flat, vol.shape)
            parts = tuple(int(c["parts"][i]) for c, i in zip(cands, idx, strict=True))
            choice = GridChoice(region, groups, parts, blocks, halo)  # type: ignore[arg-type]
        self._grids[region] = choice
        return choice

    def floor(self, region: Region) -> int:
        """Fewest blocks the box's neurons alone need at the fill target (no cut can do better)."""
        vol = math.prod(hi - lo for lo, hi in region)
        return -(-self.layer.out_channels * vol // self.profile.neuron_budget)

    def segments(self) -> list[GridChoice] | None:
        """The layer's boxes: one grid, or a guillotine cut into boxes where that saves blocks."""
        base = self.grid(self.full)
        if base is None:
            return None
        chosen = [base]
        while len(chosen) < MAX_SEGMENTS:
            last = chosen[-1]
            if last.blocks <= self.floor(last.region):
                break
            split = self._best_split(last)
            if split is None:
                break
            chosen[-1:] = split
        return chosen

    def _best_split(self, whole: GridChoice) -> list[GridChoice] | None:
        """The cut of one box into an exactly dividing part and a remainder that saves the most blocks."""
        best_key, best = (whole.blocks, whole.halo), None
        for axis in range(3):
            lo, hi = whole.region[axis]
            for cut in cut_points(hi - lo):
                first, second = list(whole.region), list(whole.region)
                first[axis], second[axis] = (lo, lo + cut), (lo + cut, hi)
                a, b = self.grid(tuple(first)), self.grid(tuple(second))  # type: ignore[arg-type]
                if a is None or b is None:
                    continue
                key = (a.blocks + b.blocks, a.halo + b.halo)
                if key[0] < best_key[0] or (key[0] == best_key[0] and best is not None and key < best_key):
                    best_key, best = key, [a, b]
        if best is not None and whole.blocks - best_key[0] < SPLIT_MIN_GAIN * whole.blocks:
            return None
        return best


def cut_points(n: int) -> list[int]:
    """Where to cut an axis of length n: after whole multiples of each candidate part size (the part that
    divides exactly), the last multiple and the one before it."""
    cuts = set()
    for parts in part_counts(n):
        size = -(-n // int(parts))
        whole = n // size
        cuts.update(size * k for k in (whole, whole - 1) if 0 < size * k < n)
    return sorted(cuts)
