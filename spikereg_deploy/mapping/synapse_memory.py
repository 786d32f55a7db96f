"""Synaptic memory of one core as the hardware stores it: synapse lists with headers, index and delay bits, words.

The encoding is nengo-loihi's (`SynapseConfig.bits_per_axon`, the only public one; `SynapseEncoding` holds its
constants, which come from the profile). A list of n synapses costs, per group of at most `synapses_per_group`,
n x (weight + index + delay bits) + the group header, rounded up to whole memory words. Delay bits are the
narrowest field that holds the edge's axonal delay (the skips' 3, 5 and 7 steps need 2, 3 and 3 bits).

Which lists a core stores (docs/hardware-facts.md, "Synaptic memory"):
  shared weights: the core's kernel slice once, one list per input channel (the channel is the population atom
    a spike selects) holding every tap to every output channel of the block: k^3 x Cout-in-block synapses. Every
    axon, per-channel or population, reuses these lists with a compartment offset, so the count does not depend
    on the axon model.
  no sharing: one list per source neuron with a synapse into the block, holding all its synapses there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..connectivity import axis_reach
from ..network import LayerSpec, NetworkSpec
from .profiles import CoreProfile


@dataclass(frozen=True)
class EdgeSynapses:
    """One input edge of a layer as synaptic memory sees it: its input channels and the bits of one synapse."""

    src: str
    channels: int
    delay: int
    bits_per_synapse: float


def edge_synapses(spec: NetworkSpec, layer: LayerSpec, profile: CoreProfile) -> list[EdgeSynapses]:
    """Per input edge: weight + index bits, plus delay bits where the edge carries an axonal delay."""
    enc = profile.synapse_encoding
    base = profile.bits_per_weight + enc.index_bits
    return [
        EdgeSynapses(e.src, e.channels, e.delay, base + enc.delay_bits(e.delay, profile.path or profile.name))
        for e in spec.edges_into(layer.name)
    ]


def shared_bits(edges: list[EdgeSynapses], k3: int, block_channels: np.ndarray, profile: CoreProfile) -> np.ndarray:
    """Shared-weight memory of blocks with `block_channels` output channels: per edge, Cin lists of k^3 x Cout."""
    enc = profile.synapse_encoding
    size = np.asarray(block_channels, dtype=np.int64)
    return sum(e.channels * enc.list_bits(k3 * size, e.bits_per_synapse) for e in edges)  # type: ignore[return-value]


def axis_fanout_in_parts(layer: LayerSpec, axis: int, n_in: int, n_out: int, bounds: np.ndarray) -> np.ndarray:
    """counts[d, i]: output indices of part d that input index i has a synapse into, along one axis."""
    lo, hi = axis_reach(layer, axis, n_in, n_out)
    start, stop = bounds[:-1, None], bounds[1:, None] - 1
    return np.maximum(np.minimum(hi[None, :], stop) - np.maximum(lo[None, :], start) + 1, 0)


def unshared_bound(
    edges: list[EdgeSynapses], rows_per_channel: np.ndarray, max_fanout: int, block_channels: int,
    profile: CoreProfile,
) -> np.ndarray:
    """Upper bound of the no-sharing memory: every source neuron's list as long as the longest one."""
    enc = profile.synapse_encoding
    return sum(
        e.channels * rows_per_channel * enc.list_bits(block_channels * max_fanout, e.bits_per_synapse) for e in edges
    )  # type: ignore[return-value]


def unshared_block_bits(
    edges: list[EdgeSynapses], counts: list[np.ndarray], block_channels: np.ndarray, profile: CoreProfile
) -> np.ndarray:
    """Exact no-sharing memory of every block, (channel groups, z, y, x) parts.

    A source neuron at (i, j, l) has size x cz[i] x cy[j] x cx[l] synapses into a block; neurons with equal
    per-axis counts have lists of equal length, so a histogram of the counts per axis and part replaces a loop
    over neurons.
    """
    enc = profile.synapse_encoding
    hists = []
    for c in counts:  # c: (parts, n_in) per-axis fan-out into each part
        top = int(c.max(initial=0))
        hists.append(np.stack([(c == v).sum(axis=1) for v in range(top + 1)], axis=1).astype(np.int64))
    hz, hy, hx = hists
    vz, vy, vx = (np.arange(h.shape[1]) for h in hists)
    product = vz[:, None, None] * vy[None, :, None] * vx[None, None, :]
    out = np.zeros((len(block_channels), hz.shape[0], hy.shape[0], hx.shape[0]), dtype=np.int64)
    for g, size in enumerate(np.asarray(block_channels, dtype=np.int64)):
        for e in edges:
            lengths = enc.list_bits(size * product, e.bits_per_synapse) * (product > 0)
            out[g] += e.channels * np.einsum("za,yb,xc,abc->zyx", hz, hy, hx, lengths)
    return out


def whole_layer_bits(edges: list[EdgeSynapses], k3: int, channels: int, profile: CoreProfile,
                     synapses_per_channel: int) -> int:
    """The lower bound's synapse term: bits no cut of the layer can go below.

    Shared weights: every input channel's lists, over all channel groups, hold k^3 x Cout synapses and at least
    ceil(k^3 x Cout / group size) group headers; word rounding is left out because a cut can round more cheaply
    than one long list (a short last group wastes less than a full one). No sharing: the synapses' bits alone.
    """
    enc = profile.synapse_encoding
    if profile.shared_weights:
        n = k3 * channels
        headers = -(-n // enc.synapses_per_group) * enc.group_header_bits
        return int(math.ceil(sum(e.channels * (n * e.bits_per_synapse + headers) for e in edges)))
    return int(math.ceil(sum(e.channels * synapses_per_channel * channels * e.bits_per_synapse for e in edges)))
