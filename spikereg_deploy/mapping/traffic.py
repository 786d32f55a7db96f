"""Spike traffic between cores: per-layer rates and the block graph built from the tiling's geometry.

Traffic is counted per (source neuron, destination core) pair, the way Loihi routes: a spike crosses the mesh
once per core it targets and fans out inside that core, so the graph's edge weights are what placement
minimises and what the Loihi energy model prices as packets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from ..connectivity import axis_reach
from ..errors import SpikeRegError
from ..network import LayerSpec
from .grid import part_sums, reach_matrix
from .tiling import LayerTiling, NetworkTiling, Segment

DEFAULT_RATE = 0.128  # SpikeReg's reported mean spike rate (12.8 %), spikes per neuron per step


@dataclass(frozen=True)
class LayerRates:
    """Spikes per neuron per step of every spiking layer, and whether they were measured or assumed."""

    rates: dict[str, float]
    label: str  # "measured" or "assumed"
    source: str
    time_steps: int
    report: dict[str, Any] | None = None

    @classmethod
    def assumed(cls, tiling: NetworkTiling, rate: float = DEFAULT_RATE) -> LayerRates:
        if not (math.isfinite(rate) and 0 <= rate <= 1):
            raise SpikeRegError(
                f"assumed spike rate must be in [0, 1] spikes per neuron per step, got {rate}"
            )
        spiking = {layer.name: float(rate) for layer in tiling.spec.layers if layer.spiking}
        return cls(
            spiking,
            "assumed",
            f"assumed rate {rate:g} spikes/neuron/step for every spiking layer",
            tiling.spec.time_steps,
        )


@dataclass(eq=False)
class BlockGraph:
    """Directed block-to-block traffic: `neurons[i]` source neurons of block src[i] reach block dst[i]."""

    n_blocks: int
    src: np.ndarray
    dst: np.ndarray
    neurons: np.ndarray
    spikes: np.ndarray  # spikes per time step on the edge = rate of the source layer x neurons
    host_inputs: int  # (input value, core) pairs the analog input feeds each step: from the host, off-mesh
    host_outputs: int = 0  # readout values leaving the chip each step (the host reads them), off-mesh

    def to_networkx(self, tiling: NetworkTiling | None = None) -> nx.DiGraph:
        """The same graph as networkx (for inspection and tests; the planner works on the arrays)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.n_blocks))
        if tiling is not None:
            names = [t.name for t in tiling.layers]
            nx.set_node_attributes(graph, {b: names[i] for b, i in enumerate(tiling.block_layer())}, "layer")
        graph.add_weighted_edges_from(
            zip(self.src.tolist(), self.dst.tolist(), self.spikes.tolist(), strict=True), weight="spikes"
        )
        nx.set_edge_attributes(
            graph,
            {(int(s), int(d)): int(n) for s, d, n in zip(self.src, self.dst, self.neurons, strict=True)},
            "neurons",
        )
        return graph


def build_block_graph(tiling: NetworkTiling, rates: LayerRates) -> BlockGraph:
    """Traffic per tile pair from geometry: overlap of the dst block's receptive field with the src block."""
    srcs, dsts, counts, spikes = [], [], [], []
    host = 0
    for edge in tiling.spec.edges():
        if tiling.spec.layer(edge.src).kind == "input":
            # Every input value goes to every core whose receptive field holds its pixel, whatever the axon model.
            host += edge.channels * int(tiling.layer(edge.dst).receptive_field.sum())
            continue
        s, d, n = block_pairs(tiling, edge.src, edge.dst)
        srcs.append(s)
        dsts.append(d)
        counts.append(n)
        spikes.append(n * rates.rates[edge.src])

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return BlockGraph(
        tiling.n_blocks,
        cat(srcs, np.int64),
        cat(dsts, np.int64),
        cat(counts, np.int64),
        cat(spikes, np.float64),
        host,
        sum(t.channels * int(np.prod(t.out_shape)) for t in tiling.layers if t.kind == "readout"),
    )



def _axis_overlaps(
    dst: LayerSpec, axis: int, n_src: int, n_dst: int, src_bounds: np.ndarray, dst_bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero (src part, dst part, source indices of the src part with a synapse into the dst part) on one
    axis."""
    lo, hi = axis_reach(dst, axis, n_src, n_dst)
    # overlap[d, s]: indices of src part s with a synapse into dst part d.
    overlap = part_sums(reach_matrix(lo, hi, dst_bounds).astype(np.int64), src_bounds)
    d, s = np.nonzero(overlap)
    return s, d, overlap[d, s]


def block_pairs(tiling: NetworkTiling, src: str, dst: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (src block, dst block) pair joined by the synapse src -> dst, with the number of source neurons
    of the src block that have at least one synapse into the dst block (so each spike of such a neuron crosses
    the network once towards that core). Global block ids; computed per pair of segments, per axis, then
    combined."""
    s_t, d_t = tiling.layer(src), tiling.layer(dst)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s_seg, s_off in zip(s_t.segments, s_t.segment_offsets(), strict=True):
        for d_seg, d_off in zip(d_t.segments, d_t.segment_offsets(), strict=True):
            out.append(_segment_pairs(tiling.spec.layer(dst), s_t, d_t, s_seg, d_seg,
                                      s_t.first_block + s_off, d_t.first_block + d_off))
    return tuple(np.concatenate(col) for col in zip(*out, strict=True))  # type: ignore[return-value]


def _segment_pairs(dst_layer: LayerSpec, s_t: LayerTiling, d_t: LayerTiling, s_seg: Segment, d_seg: Segment,
                   s_first: int, d_first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`block_pairs` between one segment of the source layer and one of the destination layer."""
    per_axis = [
        _axis_overlaps(dst_layer, a, s_t.out_shape[a], d_t.out_shape[a], s_seg.axis_bounds[a], d_seg.axis_bounds[a])
        for a in range(3)
    ]
    (sz, dz, vz), (sy, dy, vy), (sx, dx, vx) = per_axis
    iz, iy, ix = (
        m.ravel()
        for m in np.meshgrid(np.arange(len(sz)), np.arange(len(sy)), np.arange(len(sx)), indexing="ij")
    )
    s_nc, s_nz, s_ny, s_nx = s_seg.grid
    d_nc, d_nz, d_ny, d_nx = d_seg.grid
    s_sp = (sz[iz] * s_ny + sy[iy]) * s_nx + sx[ix]
    d_sp = (dz[iz] * d_ny + dy[iy]) * d_nx + dx[ix]
    count = vz[iz] * vy[iy] * vx[ix]
    s_groups = np.diff(s_seg.channel_bounds)
    # Every output channel reads every input channel: all (src group, dst group) pairs are joined.
    gs, gd = np.meshgrid(np.arange(s_nc), np.arange(d_nc), indexing="ij")
    gs, gd = gs.ravel()[:, None], gd.ravel()[:, None]
    src_ids = s_first + gs * (s_nz * s_ny * s_nx) + s_sp[None, :]
    dst_ids = d_first + gd * (d_nz * d_ny * d_nx) + d_sp[None, :]
    neurons = s_groups[gs] * count[None, :]
    return src_ids.ravel(), dst_ids.ravel(), neurons.ravel()
