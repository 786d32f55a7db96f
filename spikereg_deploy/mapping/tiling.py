"""Cut every on-core layer into blocks that fit one core: 3-D spatial tiles x output-channel groups, as one grid
or as a few boxes (segments) with a grid each where that saves cores (the search: `tile_search.py`).

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

from ..errors import SpikeRegError
from ..network import LayerSpec, NetworkSpec, Triple
from .grid import AxisFacts, balanced_bounds, part_sums
from .profiles import CoreProfile
from .synapse_memory import (
    axis_fanout_in_parts,
    edge_synapses,
    shared_bits,
    unshared_block_bits,
    unshared_bound,
    whole_layer_bits,
)
from .tile_search import LayerSearch, in_axon_factor

RESOURCES = ("neurons", "synaptic_memory_bits", "input_axons", "output_axons")
RESOURCE_LABELS = {
    "neurons": "neurons (compartments)",
    "synaptic_memory_bits": "synaptic memory (bits)",
    "input_axons": "input axons",
    "output_axons": "output axons",
}


@dataclass(eq=False)
class Segment:
    """A grid of blocks over one box of a layer's output: channel groups x z x y x parts, bounds absolute."""

    channel_bounds: np.ndarray
    axis_bounds: tuple[np.ndarray, np.ndarray, np.ndarray]

    @property
    def grid(self) -> tuple[int, int, int, int]:
        return (len(self.channel_bounds) - 1, *(len(b) - 1 for b in self.axis_bounds))

    @property
    def n_groups(self) -> int:
        return len(self.channel_bounds) - 1

    @property
    def n_blocks(self) -> int:
        return math.prod(self.grid)

    def block_ranges(self) -> np.ndarray:
        """(n_blocks, 8) int array of [c0, c1, z0, z1, y0, y1, x0, x1] in block order (c, z, y, x)."""
        grids = np.meshgrid(*(np.arange(n) for n in self.grid), indexing="ij")
        cols = []
        for bounds, idx in zip((self.channel_bounds, *self.axis_bounds), grids, strict=True):
            cols += [bounds[idx.ravel()], bounds[idx.ravel() + 1]]
        return np.stack(cols, axis=1).astype(np.int64)

    def to_dict(self) -> dict[str, list[int]]:
        return {"grid": list(self.grid), "channel_bounds": self.channel_bounds.tolist(),
                **{f"{a}_bounds": b.tolist() for a, b in zip("zyx", self.axis_bounds, strict=True)}}


@dataclass(eq=False)
class LayerTiling:
    """One layer cut into blocks: one or more segments (boxes that tile the output, each with its own grid),
    blocks numbered segment after segment."""

    name: str
    kind: str
    layer_index: int
    channels: int
    out_shape: Triple
    segments: list[Segment]
    first_block: int
    resources: dict[str, np.ndarray] = field(default_factory=dict)
    layer_totals: dict[str, int] = field(default_factory=dict)
    lower_bound: int = 0
    fill_lower_bound: int = 0
    binding: str = ""
    receptive_field: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # source pixels/block

    @property
    def grid(self) -> tuple[int, int, int, int]:
        """The grid of a one-segment layer (a segmented one has a grid per segment)."""
        if len(self.segments) != 1:
            raise SpikeRegError(f"layer {self.name!r} has {len(self.segments)} segments, each with its own grid")
        return self.segments[0].grid

    @property
    def max_groups(self) -> int:
        """Most channel groups of any segment (population axons: source cores per pixel, at most)."""
        return max(seg.n_groups for seg in self.segments)

    @property
    def n_blocks(self) -> int:
        return sum(seg.n_blocks for seg in self.segments)

    def segment_offsets(self) -> list[int]:
        """First block (within the layer) of every segment."""
        return [0, *np.cumsum([seg.n_blocks for seg in self.segments]).tolist()][:-1]

    def block_ranges(self) -> np.ndarray:
        """(n_blocks, 8) int array of [c0, c1, z0, z1, y0, y1, x0, x1] in block order."""
        return np.concatenate([seg.block_ranges() for seg in self.segments])


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


def tile_layer(
    spec: NetworkSpec,
    geo: dict,
    layer: LayerSpec,
    profile: CoreProfile,
    tilings: dict[str, LayerTiling],
    layer_index: int,
    src_groups: dict[str, int] | None = None,
) -> LayerTiling:
    """Cut the layer into the fewest blocks that keep every block within the profile's limits (tile_search.py:
    one grid, or a few boxes with a grid each where that saves blocks).

    `src_groups` are the channel groups of the layer's sources (population axons: an axon per source core).
    """
    groups_of = src_groups or {}
    search = LayerSearch(spec, geo, layer, profile, tilings, groups_of)
    choices = search.segments()
    if choices is None:
        # The finest grid (one voxel, one channel per block) needs the least of everything: say what it lacks.
        cands = [search.candidates(a, 0, ax.n) for a, ax in enumerate(search.axes)]
        rf_one = math.prod(int(c["rf"][-1]) for c in cands)
        one = {
            "neurons": 1,
            "input_axons": search.in_factor * rf_one,
            "synaptic_memory_bits": float(
                shared_bits(search.edges, search.k3, np.array(1), profile)
                if profile.shared_weights
                else unshared_bound(search.edges, np.array(rf_one), search.max_fanout, 1, profile)
            ),
            "output_axons": int(search.out_axons_per_channel(cands)[-1, -1, -1]),
        }
        raise _fail(layer, one, profile)
    segments = [Segment(balanced_bounds(layer.out_channels, c.groups), c.axis_bounds()) for c in choices]
    tiling = LayerTiling(
        name=layer.name,
        kind=layer.kind,
        layer_index=layer_index,
        channels=layer.out_channels,
        out_shape=geo[layer.name].out_shape,
        segments=segments,
        first_block=0,
    )
    fill_resources(tiling, spec, geo, layer, profile, tilings, groups_of)
    return tiling


def _segment_resources(seg: Segment, axes: list[AxisFacts], layer: LayerSpec, geo: dict, profile: CoreProfile,
                       edges: list, in_factor: int) -> dict[str, np.ndarray]:
    """Exact per-block use of every resource in one segment, block order (c, z, y, x)."""
    shp = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    sizes = [np.diff(b).reshape(s) for b, s in zip(seg.axis_bounds, shp, strict=True)]
    reach = [ax.in_reach(b).reshape(s) for ax, b, s in zip(axes, seg.axis_bounds, shp, strict=True)]
    channel_sizes = np.diff(seg.channel_bounds)
    groups = channel_sizes.reshape(-1, 1, 1, 1)
    vol = math.prod(sizes)[None]
    neurons = groups * vol
    receptive_field = np.broadcast_to(math.prod(reach)[None], neurons.shape)
    out_pc = np.zeros(vol.shape, dtype=np.int64)
    for j, weight in enumerate(axes[0].dest_weights):
        out_pc = out_pc + weight * math.prod(
            part_sums(ax.dest_counts[j], b).reshape(s) for ax, b, s in zip(axes, seg.axis_bounds, shp, strict=True)
        )
    out_axons = (groups if profile.axon_model == "per_channel" else 1) * np.broadcast_to(out_pc, neurons.shape)
    if profile.shared_weights:
        syn = np.broadcast_to(shared_bits(edges, math.prod(layer.kernel), groups, profile), neurons.shape)
    else:
        g = geo[layer.name]
        counts = [
            axis_fanout_in_parts(layer, a, g.in_shape[a], g.out_shape[a], seg.axis_bounds[a]) for a in range(3)
        ]
        syn = unshared_block_bits(edges, counts, channel_sizes, profile)
    return {
        "neurons": neurons.ravel().astype(np.int64),
        "synaptic_memory_bits": np.ceil(syn).ravel().astype(np.int64),
        "input_axons": (in_factor * receptive_field).ravel().astype(np.int64),
        "output_axons": out_axons.ravel().astype(np.int64),
        "receptive_field": receptive_field.ravel().astype(np.int64),
    }


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
    axes = [AxisFacts(spec, geo, layer, a, tilings) for a in range(3)]
    edges = edge_synapses(spec, layer, profile)
    k3 = math.prod(layer.kernel)
    in_factor = in_axon_factor(edges, profile, src_groups)
    per_segment = [_segment_resources(seg, axes, layer, geo, profile, edges, in_factor) for seg in tiling.segments]
    tiling.receptive_field = np.concatenate([r["receptive_field"] for r in per_segment])
    tiling.resources = {r: np.concatenate([seg[r] for seg in per_segment]) for r in RESOURCES}
    # Whole-layer totals for the lower bound (see the module docstring for what each term means).
    reached_inputs = math.prod(int((ax.lo <= ax.hi).sum()) for ax in axes)
    useful_outputs = sum(
        math.prod(int(ax.dest_any[j].sum()) for ax in axes) for j in range(len(axes[0].dest_any))
    )
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
        found = {name: t.max_groups for name, t in tilings.items()}
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
