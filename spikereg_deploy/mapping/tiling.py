"""Cut every on-core layer into blocks that fit one core: 3-D spatial tiles x output-channel groups.

Conv and transposed-conv connectivity is a product of three 1-D connectivities, so every per-tile quantity
(neurons, input axons = receptive field x Cin, output axons = destination cores reached, overlaps between
tiles) is a product of per-axis sums over at most a few hundred indices. The planner reasons over tiles this
way and never over synapses, which is what lets the full 160x192x224 OASIS volume plan in seconds.

Layers are tiled consumers first (reverse topological order): a tile's output axons depend on how its
consumers are cut, its input axons only on its own receptive field.

Whole-layer lower bound (nengo-loihi's splitter formula), with the terms defined as:
  neurons      = Cout x output voxels (compartments; the readout's non-spiking ones included, whose values
                 the host reads, so they need no output axons)
  in_axons     = per_channel: source neurons with at least one synapse into the layer, summed over its input
                 edges; population: source pixels with a synapse into the layer x the source layer's channel
                 groups (one population axon per pixel and source core), summed over input edges
  out_axons    = per_channel: the layer's neurons with at least one synapse into a consumer, summed over
                 consumer layers; population: the layer's pixels with a synapse into a consumer (the cut with one
                 channel group, the fewest output axons any cut can have)
  synapse_bits = one copy of the whole kernel as synapse lists (synapse_memory.py), shared weights, or every
                 synapse x its bits (no sharing)
  cores >= max(ceil(neurons / cap), ceil(in_axons / cap), ceil(out_axons / cap), ceil(synapse_bits / mem))
The neuron cap is stated: `lower_bound` divides by all compartments of a core (100 % fill), `fill_lower_bound`
by the profile's fill target (`fill_factor`), which is what the tiler itself fills to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..connectivity import axis_fan_in, axis_reach
from ..errors import SpikeRegError
from ..network import LayerSpec, NetworkSpec, Triple
from .grid import balanced_bounds, part_counts, part_sums, reach_matrix
from .profiles import CoreProfile
from .synapse_memory import (
    EdgeSynapses,
    axis_fanout_in_parts,
    edge_synapses,
    shared_bits,
    unshared_block_bits,
    unshared_bound,
    whole_layer_bits,
)

RESOURCES = ("neurons", "synaptic_memory_bits", "input_axons", "output_axons")
RESOURCE_LABELS = {
    "neurons": "neurons (compartments)",
    "synaptic_memory_bits": "synaptic memory (bits)",
    "input_axons": "input axons",
    "output_axons": "output axons",
}


@dataclass(eq=False)
class LayerTiling:
    """One layer cut into a grid of blocks: channel groups x z x y x parts, block order (c, z, y, x)."""

    name: str
    kind: str
    layer_index: int
    channels: int
    out_shape: Triple
    channel_bounds: np.ndarray
    axis_bounds: tuple[np.ndarray, np.ndarray, np.ndarray]
    first_block: int
    resources: dict[str, np.ndarray] = field(default_factory=dict)
    layer_totals: dict[str, int] = field(default_factory=dict)
    lower_bound: int = 0
    fill_lower_bound: int = 0
    binding: str = ""
    receptive_field: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # source pixels/block

    @property
    def grid(self) -> tuple[int, int, int, int]:
        return (len(self.channel_bounds) - 1, *(len(b) - 1 for b in self.axis_bounds))

    @property
    def n_blocks(self) -> int:
        return math.prod(self.grid)

    def block_ranges(self) -> np.ndarray:
        """(n_blocks, 8) int array of [c0, c1, z0, z1, y0, y1, x0, x1] in block order."""
        grids = np.meshgrid(*(np.arange(n) for n in self.grid), indexing="ij")
        cols = []
        for bounds, idx in zip((self.channel_bounds, *self.axis_bounds), grids, strict=True):
            cols += [bounds[idx.ravel()], bounds[idx.ravel() + 1]]
        return np.stack(cols, axis=1).astype(np.int64)


@dataclass(eq=False)
class NetworkTiling:
    """Every on-core layer's tiling (topological order) plus per-block arrays concatenated over layers."""

    spec: NetworkSpec
    input_shape: Triple
    profile: CoreProfile
    layers: list[LayerTiling]

    @property
    def n_blocks(self) -> int:
        return sum(t.n_blocks for t in self.layers)

    @property
    def lower_bound(self) -> int:
        """Per-layer bounds summed, neurons divided by all of a core's compartments (100 % fill)."""
        return sum(t.lower_bound for t in self.layers)

    @property
    def fill_lower_bound(self) -> int:
        """Per-layer bounds summed, neurons divided by the fill target (`fill_factor` of the compartments)."""
        return sum(t.fill_lower_bound for t in self.layers)

    def layer(self, name: str) -> LayerTiling:
        for tiling in self.layers:
            if tiling.name == name:
                return tiling
        raise SpikeRegError(f"no tiled layer named {name!r}")

    def block_layer(self) -> np.ndarray:
        """Index into `layers` of every block."""
        return np.repeat(np.arange(len(self.layers)), [t.n_blocks for t in self.layers])

    def resource(self, name: str) -> np.ndarray:
        return np.concatenate([t.resources[name] for t in self.layers])


class _Axis:
    """Per-axis facts of one layer's output: its own receptive field and, per consumer, destination parts
    reached."""

    def __init__(
        self, spec: NetworkSpec, geo: dict, layer: LayerSpec, axis: int, tilings: dict[str, LayerTiling]
    ) -> None:
        g = geo[layer.name]
        self.n = g.out_shape[axis]
        lo, hi = axis_reach(layer, axis, g.in_shape[axis], self.n)
        # For each output index: how many input indices reach it (receptive field clipped to the map).
        self.rf = axis_fan_in(layer, axis, g.in_shape[axis], self.n)
        self.lo, self.hi, self.n_in = lo, hi, g.in_shape[axis]
        self.max_fanout = int(np.maximum(hi - lo + 1, 0).max(initial=0))
        # Per consumer: how many of its parts (along this axis) each output index has a synapse into.
        self.dest_counts: list[np.ndarray] = []
        for consumer in spec.consumers(layer.name):
            dst = spec.layer(consumer)
            dlo, dhi = axis_reach(dst, axis, self.n, geo[consumer].out_shape[axis])
            self.dest_counts.append(reach_matrix(dlo, dhi, tilings[consumer].axis_bounds[axis]).sum(axis=0))

    def in_reach(self, bounds: np.ndarray) -> np.ndarray:
        """Input indices with a synapse into each part (the tile's receptive field along this axis)."""
        return reach_matrix(self.lo, self.hi, bounds).sum(axis=1)

    def candidates(self) -> dict[str, np.ndarray]:
        """For every candidate part count: largest part, largest receptive field, largest output fan per
        consumer."""
        counts = part_counts(self.n)
        size, rf, total_rf = [], [], []
        dest: list[list[int]] = [[] for _ in self.dest_counts]
        for parts in counts:
            bounds = balanced_bounds(self.n, int(parts))
            size.append(int(np.diff(bounds).max()))
            reach = self.in_reach(bounds)
            rf.append(int(reach.max()))
            total_rf.append(int(reach.sum()))
            for j, cnt in enumerate(self.dest_counts):
                dest[j].append(int(part_sums(cnt, bounds).max()))
        return {
            "parts": counts,
            "size": np.array(size),
            "rf": np.array(rf),
            "total_rf": np.array(total_rf),
            "dest": np.array(dest, dtype=np.int64).reshape(len(dest), len(counts)),
        }


def _fail(layer: LayerSpec, need: dict[str, float], profile: CoreProfile) -> SpikeRegError:
    limits = profile.limits()
    over = [(need[r] / limits[r], r) for r in RESOURCES if need[r] > limits[r]]
    _, worst = max(over) if over else (0.0, "neurons")
    where = profile.path or profile.name
    return SpikeRegError(
        f"layer {layer.name!r} cannot fit in any core: one output neuron with its kernel needs "
        f"{need[worst]:,.0f} {RESOURCE_LABELS[worst]}, {need[worst] - limits[worst]:,.0f} over the limit of "
        f"{limits[worst]:,} per core ({where})"
    )


def in_axon_factor(edges: list[EdgeSynapses], profile: CoreProfile, src_groups: dict[str, int]) -> int:
    """Input axons per source pixel of the receptive field, summed over input edges.

    per_channel: one axon per source channel; population: one per source core holding the pixel, i.e. the source
    layer's channel groups (the host's analog input counts as one population).
    """
    if profile.axon_model == "per_channel":
        return sum(e.channels for e in edges)
    return sum(src_groups.get(e.src, 1) for e in edges)


def tile_layer(
    spec: NetworkSpec,
    geo: dict,
    layer: LayerSpec,
    profile: CoreProfile,
    tilings: dict[str, LayerTiling],
    layer_index: int,
    src_groups: dict[str, int] | None = None,
) -> LayerTiling:
    """Choose the grid with the fewest blocks that keeps every block within the profile's limits.

    Ties go to the grid with the smallest summed receptive fields (least halo, so least duplicated traffic).
    `src_groups` are the channel groups of the layer's sources (population axons: an axon per source core).
    """
    groups_of = src_groups or {}
    g = geo[layer.name]
    axes = [_Axis(spec, geo, layer, a, tilings) for a in range(3)]
    cands = [ax.candidates() for ax in axes]
    cout = layer.out_channels
    k3 = math.prod(layer.kernel)
    edges = edge_synapses(spec, layer, profile)
    in_factor = in_axon_factor(edges, profile, groups_of)
    per_channel_out = profile.axon_model == "per_channel"
    n_consumers = len(axes[0].dest_counts)
    consumer_groups = [len(tilings[c].channel_bounds) - 1 for c in spec.consumers(layer.name)]
    # Broadcast the three axes: shapes (Z,1,1), (1,Y,1), (1,1,X).
    shp = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    vol = math.prod(c["size"].reshape(s) for c, s in zip(cands, shp, strict=True))
    rf = math.prod(c["rf"].reshape(s) for c, s in zip(cands, shp, strict=True))
    total_rf = math.prod(c["total_rf"].reshape(s) for c, s in zip(cands, shp, strict=True))
    n_spatial = math.prod(c["parts"].reshape(s) for c, s in zip(cands, shp, strict=True))
    out_per_channel = np.zeros_like(vol)
    for j in range(n_consumers):
        out_per_channel = out_per_channel + consumer_groups[j] * math.prod(
            c["dest"][j].reshape(s) for c, s in zip(cands, shp, strict=True)
        )
    max_fanout = math.prod(ax.max_fanout for ax in axes)
    in_axons = in_factor * rf
    best: tuple | None = None
    for groups in part_counts(cout):
        size = -(-cout // int(groups))
        neurons = size * vol
        if profile.shared_weights:
            syn = shared_bits(edges, k3, np.array(size), profile)
        else:
            syn = unshared_bound(edges, rf, max_fanout, size, profile)
        ok = (
            (neurons <= profile.neuron_budget)
            & (syn <= profile.synaptic_memory_bits)
            & (in_axons <= profile.input_axons)
            & ((size if per_channel_out else 1) * out_per_channel <= profile.output_axons)
        )
        if not ok.any():
            continue
        blocks = np.where(ok, int(groups) * n_spatial, np.iinfo(np.int64).max)
        halo = np.where(ok, int(groups) * total_rf, np.iinfo(np.int64).max)
        flat = np.lexsort((halo.ravel(), blocks.ravel()))[0]
        key = (int(blocks.ravel()[flat]), int(halo.ravel()[flat]), int(groups))
        if best is None or key < best[0]:
            best = (key, int(groups), np.unravel_index(flat, blocks.shape))
    if best is None:
        # The finest grid (one voxel, one channel per block) needs the least of everything: say what it lacks.
        rf_one = math.prod(int(c["rf"][-1]) for c in cands)
        one = {
            "neurons": 1,
            "input_axons": in_factor * rf_one,
            "synaptic_memory_bits": float(
                shared_bits(edges, k3, np.array(1), profile)
                if profile.shared_weights
                else unshared_bound(edges, np.array(rf_one), max_fanout, 1, profile)
            ),
            "output_axons": int(out_per_channel[-1, -1, -1]),
        }
        raise _fail(layer, one, profile)
    _, groups, (iz, iy, ix) = best
    bz, by, bx = (
        balanced_bounds(ax.n, int(c["parts"][i])) for ax, c, i in zip(axes, cands, (iz, iy, ix), strict=True)
    )
    tiling = LayerTiling(
        name=layer.name,
        kind=layer.kind,
        layer_index=layer_index,
        channels=cout,
        out_shape=g.out_shape,
        channel_bounds=balanced_bounds(cout, groups),
        axis_bounds=(bz, by, bx),
        first_block=0,
    )
    fill_resources(tiling, spec, geo, layer, profile, tilings, groups_of)
    return tiling


def fill_resources(
    tiling: LayerTiling,
    spec: NetworkSpec,
    geo: dict,
    layer: LayerSpec,
    profile: CoreProfile,
    tilings: dict[str, LayerTiling],
    src_groups: dict[str, int],
) -> None:
    """Exact per-block use of every resource, and the whole-layer lower bounds (at 100 % and at the fill
    target)."""
    axes = [_Axis(spec, geo, layer, a, tilings) for a in range(3)]
    consumer_groups = [len(tilings[c].channel_bounds) - 1 for c in spec.consumers(layer.name)]
    edges = edge_synapses(spec, layer, profile)
    k3 = math.prod(layer.kernel)
    in_factor = in_axon_factor(edges, profile, src_groups)
    shp = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    sizes = [np.diff(b).reshape(s) for b, s in zip(tiling.axis_bounds, shp, strict=True)]
    reach = [ax.in_reach(b).reshape(s) for ax, b, s in zip(axes, tiling.axis_bounds, shp, strict=True)]
    channel_sizes = np.diff(tiling.channel_bounds)
    groups = channel_sizes.reshape(-1, 1, 1, 1)
    vol = math.prod(sizes)[None]
    neurons = groups * vol
    receptive_field = np.broadcast_to(math.prod(reach)[None], neurons.shape)
    tiling.receptive_field = receptive_field.ravel().astype(np.int64)
    in_axons = in_factor * receptive_field
    out_pc = np.zeros(vol.shape, dtype=np.int64)
    for j, n_groups in enumerate(consumer_groups):
        out_pc = out_pc + n_groups * math.prod(
            part_sums(ax.dest_counts[j], b).reshape(s)
            for ax, b, s in zip(axes, tiling.axis_bounds, shp, strict=True)
        )
    out_axons = (groups if profile.axon_model == "per_channel" else 1) * np.broadcast_to(out_pc, neurons.shape)
    if profile.shared_weights:
        syn = np.broadcast_to(shared_bits(edges, k3, groups, profile), neurons.shape)
    else:
        g = geo[layer.name]
        counts = [
            axis_fanout_in_parts(layer, a, g.in_shape[a], g.out_shape[a], tiling.axis_bounds[a]) for a in range(3)
        ]
        syn = unshared_block_bits(edges, counts, channel_sizes, profile)
    tiling.resources = {
        "neurons": neurons.ravel().astype(np.int64),
        "synaptic_memory_bits": np.ceil(syn).ravel().astype(np.int64),
        "input_axons": in_axons.ravel().astype(np.int64),
        "output_axons": out_axons.ravel().astype(np.int64),
    }
    # Whole-layer totals for the lower bound (see the module docstring for what each term means).
    reached_inputs = math.prod(int((ax.lo <= ax.hi).sum()) for ax in axes)
    useful_outputs = 0
    for j in range(len(consumer_groups)):
        useful_outputs += math.prod(int((ax.dest_counts[j] > 0).sum()) for ax in axes)
    cout = layer.out_channels
    totals = {
        "neurons": cout * int(math.prod(ax.n for ax in axes)),
        "input_axons": in_factor * reached_inputs,
        "output_axons": (cout if profile.axon_model == "per_channel" else 1) * useful_outputs,
        "synaptic_memory_bits": whole_layer_bits(
            edges, k3, cout, profile, math.prod(int(ax.rf.sum()) for ax in axes)
        ),
    }
    limits = profile.limits()
    tiling.layer_totals = totals
    others = [-(-totals[r] // int(limits[r])) for r in RESOURCES if r != "neurons"]
    tiling.lower_bound = max(1, -(-totals["neurons"] // profile.neurons), *others)
    tiling.fill_lower_bound = max(1, -(-totals["neurons"] // profile.neuron_budget), *others)
    use = {r: float(tiling.resources[r].max()) / limits[r] for r in RESOURCES}
    use["neurons"] = float(tiling.resources["neurons"].max()) / profile.neuron_budget
    tiling.binding = max(use, key=use.get)  # type: ignore[arg-type]


def tile_network(spec: NetworkSpec, input_shape: tuple[int, int, int], profile: CoreProfile) -> NetworkTiling:
    """Tile every layer that lives on cores (all but the analog input), consumers first.

    Population axons make a layer's input axons depend on its sources' channel groups, which are cut after it
    (consumers first): the layers are tiled again with the groups found, taking the larger of assumed and found
    (so the assumption only grows and the loop ends), and the resources are finally counted with the groups
    the sources really have (never more than assumed, so every block stays within its limits).
    """
    geo = spec.geometry(input_shape)
    on_core = [layer for layer in spec.layers if layer.kind != "input"]
    assumed: dict[str, int] = {layer.name: 1 for layer in on_core}
    while True:
        tilings: dict[str, LayerTiling] = {}
        for index in reversed(range(len(on_core))):
            layer = on_core[index]
            tilings[layer.name] = tile_layer(spec, geo, layer, profile, tilings, index, assumed)
        found = {name: len(t.channel_bounds) - 1 for name, t in tilings.items()}
        if profile.axon_model == "per_channel" or found == assumed:
            break
        if all(found[n] <= assumed[n] for n in found):
            for layer in on_core:
                fill_resources(tilings[layer.name], spec, geo, layer, profile, tilings, found)
            break
        assumed = {n: max(assumed[n], found[n]) for n in found}
    ordered = [tilings[layer.name] for layer in on_core]
    first = 0
    for tiling in ordered:
        tiling.first_block = first
        first += tiling.n_blocks
    return NetworkTiling(spec=spec, input_shape=geo["input"].out_shape, profile=profile, layers=ordered)
